"""A private containerd for tests, driven with the real `ctr` (no mocks).

    with private_containerd(tmp_path / "containerd") as cd:
        image = cd.import_busybox()
        runtime = cd.runtime_wrapper("runc", "/usr/sbin/runc", ["--rootless", "true"])
        cd.run(runtime.path, image, "c1", "echo", "hi").stdout      # "hi\\n"
        cd.run_detached(runtime.path, image, "c2", "sleep", "600")
        cd.exec("c2", "e1", "hostname").stdout
        cd.kill("c2", "SIGKILL"); cd.wait_stopped("c2")
        cd.delete_task("c2"); cd.delete_container("c2")
        runtime.calls()      # the argv the shim gave the runtime, one list per call

It is how a test checks that an OCI runtime (runc, and later minict-oci)
can be driven by containerd through `ctr run --runc-binary PATH`: the
default runtime, io.containerd.runc.v2, starts containerd-shim-runc-v2,
which runs PATH with runc's command line.

Everything is under `workdir`: the daemon's config.toml, root/, state/,
its gRPC socket (containerd.sock), its log (containerd.log), TMPDIR (tmp/,
where the shim writes the process.json it gives `runc exec --process`).
The daemon runs with its own config only (never /etc/containerd), with the
plugins it does not need disabled: CRI, the opt plugin (it would make
/var/lib/containerd/opt) and the aufs/btrfs/zfs/devmapper snapshotters.

Cgroups. This host must never be written to under /sys/fs/cgroup (a cgroup
v1 hybrid layout shared with the machine). So, like bench/start, the daemon
runs in a private mount namespace (`unshare --mount --propagation
private`) in which /sys/fs/cgroup and every cgroup/cgroup2 mount are
bind-remounted read-only; the launcher checks that each one reads "ro"
before containerd starts, and refuses to start it otherwise. Everything
containerd starts (shims, the runtime, containers) inherits that
namespace, so a mkdir there fails with EROFS instead of touching the host.
What runc needs to live with that, found by trying:
  - plain runc: fails, "mkdir /sys/fs/cgroup/cpuset/minict-test:
    read-only file system" (ctr's default cgroupsPath is /<namespace>/<id>).
  - `ctr run --cgroup=` (empty: no linux.cgroupsPath in the spec) alone:
    runc still makes a cgroup named after the container id, and fails.
  - runc `--rootless true` (a wrapper script passed as --runc-binary, see
    runtime_wrapper) alone: runc ignores EPERM/EROFS from making cgroups
    only when no cgroupsPath was asked for, so it still fails.
  - `--rootless true` + `--cgroup=`: the cgroups are skipped, but ctr puts
    cpu.shares=1024 in every spec (its --cpu-shares default), and runc
    refuses a limit it has no cgroup for ("cannot set cpu limit: container
    could not join or create cgroup").
  - `--rootless true` + `--cgroup=` + `--cpu-shares 0`: works. Those two ctr
    flags are RUN_FLAGS, which run() and run_detached() add by default.
    `ctr task ps` (runc ps) and `ctr task pause` (freezer) then fail: they
    need the container's cgroup, which it does not have.

/run. containerd 1.6 puts shim sockets in /run/containerd/s/ whatever its
state dir, and ctr its stdio FIFOs in /run/containerd/fifo/. So the
namespace also binds workdir/run over /run: nothing is written to the
host's /run, and `ctr` is run in the same namespace (nsenter --mount), so
that it makes its FIFOs where the shim opens them.

Snapshotter: overlayfs (containerd's default) works as root here; pass
snapshotter="native" to private_containerd where it does not (e.g. when
workdir is itself on overlayfs). ctr gets it as $CONTAINERD_SNAPSHOTTER.

Processes. containerd-shim-runc-v2 daemonizes (its start command exits,
the shim is orphaned), and it makes itself a child subreaper: the runtime's
`create` exits and leaves the container's init to be reparented to the
shim, which learns its pid from --pid-file and reaps it (as with
`exec --detach`). So that orphaned shims are not reparented to the host's
pid 1, the namespace's first process is a small launcher (LAUNCHER) that is
a child subreaper itself: containerd, every shim, every container process
descends from it. On exit: tasks and containers are deleted through ctr
(best effort), containerd gets SIGTERM (SIGKILL after a timeout), what
still descends from the launcher (or names our socket or workdir on its
command line) gets SIGKILL, by pid; what is still mounted under workdir in
the namespace is unmounted, deepest first; the launcher, told by the end of
its stdin, exits and takes the namespace with it; then the same for
mounts under workdir in the caller's own namespace.

The argv containerd 1.6's shim gives the runtime, as recorded by
runtime_wrapper (B = state/io.containerd.runtime.v2.task/<ns>/<id>,
R = ctr's --runc-root/<ns>):
    --root R --log B/log.json --log-format json create --bundle B
        --pid-file B/init.pid [--console-socket tmp/ptyN/pty.sock] <id>
    --root R --log B/log.json --log-format json start <id>
    --root R --log B/log.json --log-format json exec --process tmp/runc-processN
        [--console-socket tmp/ptyN/pty.sock] --detach --pid-file B/<exec-id>.pid <id>
    --root R --log B/log.json --log-format json kill <id> <signal number>
    --root R --log B/log.json --log-format json delete <id>
    --root R --log B/log.json --log-format json delete --force <id>
        (the last from `containerd-shim-runc-v2 ... delete`, the cleanup run)
    --root R --log B/log.json --log-format json ps --format json <id>   (ctr task ps)
    --root R --log B/log.json --log-format json pause <id>              (ctr task pause)
No `state` call in these flows, no --systemd-cgroup (only with
--runc-systemd-cgroup). On failure the shim's error message is the last
error in B/log.json (runc writes JSON lines {"level","msg","time"}).
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.busybox import build_busybox_rootfs

NAMESPACE = "minict-test"
BUSYBOX_BASE = "docker.io/minict-test/busybox"
# `ctr run` flags without which a runtime here would need cgroups (see above).
RUN_FLAGS = ("--cgroup=", "--cpu-shares", "0")
NEEDED_TOOLS = ("containerd", "ctr", "containerd-shim-runc-v2", "unshare", "nsenter", "mount",
                "umount", "umoci", "tar")

# The namespace's first process: makes /sys/fs/cgroup read-only and binds
# workdir/run over /run (in the private mount namespace unshare made), checks
# the cgroup mounts are read-only, then starts containerd and reaps every
# orphan (it is a child subreaper) until none is left and its stdin is closed.
# The end of its stdin (the harness closing it, or dying) SIGTERMs containerd.
LAUNCHER = r"""
import ctypes, os, signal, subprocess, sys, threading
run_dir, log_path, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("launcher: cannot become a child subreaper")
def cgroup_mounts():
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fields[4] == "/sys/fs/cgroup" or fstype in ("cgroup", "cgroup2"):
                found.append((fields[4], fields[5].split(",")))
    return found
for target, _ in cgroup_mounts():
    subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)
writable = [target for target, opts in cgroup_mounts() if "ro" not in opts]
if writable:
    sys.exit(f"launcher: cgroup mounts still writable: {writable}; not starting containerd")
subprocess.run(["mount", "--bind", run_dir, "/run"], check=True)
with open(log_path, "ab") as log:
    daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
print(daemon.pid, flush=True)
closed = threading.Event()
def watch_stdin():
    sys.stdin.buffer.read()
    closed.set()
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
threading.Thread(target=watch_stdin, daemon=True).start()
while True:
    try:
        pid, _ = os.wait()
        if pid == daemon.pid:
            daemon.returncode = -1
    except ChildProcessError:
        if closed.wait(0.05):
            break
"""


def containerd_missing() -> str | None:
    """Why the containerd tests cannot run here, or None."""
    missing = [tool for tool in NEEDED_TOOLS if not shutil.which(tool)]
    if missing:
        return (f"{', '.join(missing)} not installed: run scripts/setup.sh as root "
                f"(apt-get install containerd umoci util-linux)")
    if os.geteuid() != 0:
        return "a private containerd needs root"
    return None


# ---- /proc ----------------------------------------------------------------

def _unescape(path: str) -> str:
    """A mountinfo path field, with its octal escapes (\\040 ...) decoded."""
    out, i = [], 0
    while i < len(path):
        if path[i] == "\\" and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def mounts_under(root: Path, pid: int | str = "self") -> list[str]:
    """Mount points at or under root in the mount namespace of pid."""
    root = str(root).rstrip("/")
    try:
        with open(f"/proc/{pid}/mountinfo") as f:
            points = [_unescape(line.split()[4]) for line in f]
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [p for p in points if p == root or p.startswith(root + "/")]


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a live pid, None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[1]), rest[0], int(rest[19])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of pid, parents first."""
    children: dict[int, list[int]] = {}
    for p in _all_pids():
        st = _stat(p)
        if st and st[1] != "Z":
            children.setdefault(st[0], []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass(frozen=True)
class ProcessId:
    """A pid with its start time, so that a reused pid is not mistaken for it."""

    pid: int
    start: int

    @classmethod
    def of(cls, pid: int) -> "ProcessId | None":
        st = _stat(pid)
        return cls(pid, st[2]) if st else None

    def alive(self) -> bool:
        st = _stat(self.pid)
        return bool(st) and st[2] == self.start and st[1] != "Z"


# ---- a runtime for --runc-binary -----------------------------------------------

@dataclass
class RuntimeWrapper:
    """A shell script for `ctr run --runc-binary`: records its argv (one file
    per call under calls_dir, NUL-separated) and execs binary with
    extra_args before the shim's own."""

    path: Path
    binary: str
    extra_args: tuple[str, ...]
    calls_dir: Path

    def calls(self) -> list[list[str]]:
        """The shim's argv of every call so far, oldest first (without extra_args)."""
        files = sorted(self.calls_dir.iterdir(), key=lambda p: tuple(map(int, p.name.split("-"))))
        return [[a.decode() for a in f.read_bytes().split(b"\0")[:-1]] for f in files]

    def calls_of(self, command: str) -> list[list[str]]:
        """The calls whose command (the first word after the global options) is command."""
        return [argv for argv in self.calls() if command_of(argv) == command]


def command_of(argv: list[str]) -> str | None:
    """The runtime command in an argv the shim passed (after --root R, --log L,
    --log-format F, --systemd-cgroup and the like)."""
    with_value = {"--root", "--log", "--log-format", "--criu", "--rootless"}
    i = 0
    while i < len(argv):
        if argv[i] in with_value:
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return argv[i]
    return None


def write_runtime_wrapper(path: Path, binary: str, extra_args=(), calls_dir: Path | None = None
                          ) -> RuntimeWrapper:
    calls_dir = calls_dir or path.parent / f"{path.name}.calls"
    calls_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "#!/bin/sh\n"
        "# written by tests/helpers/containerd.py: record the argv, run the real runtime\n"
        f"printf '%s\\0' \"$@\" > {shlex.quote(str(calls_dir))}/$(date +%s%N)-$$\n"
        f"exec {shlex.join([binary, *extra_args])} \"$@\"\n")
    path.chmod(0o755)
    return RuntimeWrapper(path, binary, tuple(extra_args), calls_dir)


# ---- the daemon -----------------------------------------------------------

def _config(workdir: Path) -> str:
    disabled = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
                "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
    quoted = ", ".join(f'"{p}"' for p in disabled)
    return (f'version = 2\n'
            f'root = "{workdir / "root"}"\n'
            f'state = "{workdir / "state"}"\n'
            f'disabled_plugins = [{quoted}]\n'
            f'[grpc]\n'
            f'  address = "{workdir / "containerd.sock"}"\n')


@dataclass
class Containerd:
    """A running private containerd; see the module docstring."""

    workdir: Path
    launcher: subprocess.Popen
    daemon: ProcessId
    snapshotter: str
    namespace: str = NAMESPACE
    # every process of ours seen (ProcessId), for a test to check after exit
    seen: set = field(default_factory=set)
    # what stopping had to force (SIGKILLed survivors, mounts it unmounted)
    forced: list = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.workdir / "containerd.sock"

    @property
    def log(self) -> Path:
        return self.workdir / "containerd.log"

    @property
    def runc_root(self) -> Path:
        return self.workdir / "runtime-root"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- ctr --------------------------------------------------------------

    def ctr(self, *args, timeout: float = 60, check: bool = False, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
        """`ctr --address SOCK --namespace minict-test ARGS`, in the daemon's
        mount namespace; CompletedProcess with text stdout/stderr."""
        argv = ["nsenter", f"--mount=/proc/{self.launcher.pid}/ns/mnt", f"--wd={self.workdir}",
                "ctr", "--address", str(self.socket), "--namespace", self.namespace,
                *map(str, args)]
        e = dict(os.environ, TMPDIR=str(self.workdir / "tmp"),
                 CONTAINERD_SNAPSHOTTER=self.snapshotter)
        e.update(env or {})
        result = subprocess.run(argv, input=input, capture_output=True, text=True, env=e,
                                timeout=timeout, stdin=None if input is not None
                                else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"ctr {shlex.join(map(str, args))} failed ({result.returncode}):"
                                 f"\n{result.stdout}{result.stderr}\ncontainerd log:\n"
                                 f"{self.log_tail()}")
        return result

    def import_busybox(self, name: str = BUSYBOX_BASE) -> str:
        """Import a busybox image (build_busybox_rootfs, made an OCI archive
        by umoci and tar); returns its ref, NAME:latest."""
        build = self.workdir / "busybox-image"
        if build.exists():
            shutil.rmtree(build)
        rootfs = build_busybox_rootfs(build / "rootfs")
        layout, image = build / "oci", f"{build / 'oci'}:latest"
        for argv in (["umoci", "init", "--layout", str(layout)],
                     ["umoci", "new", "--image", image],
                     ["umoci", "insert", "--image", image, str(rootfs), "/"],
                     ["umoci", "config", "--image", image, "--config.cmd", "sh",
                      "--config.env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
                     ["umoci", "gc", "--layout", str(layout)],
                     ["tar", "-C", str(layout), "-cf", str(build / "busybox-oci.tar"), "."]):
            subprocess.run(argv, check=True, capture_output=True, timeout=60)
        self.ctr("images", "import", "--base-name", name, build / "busybox-oci.tar", check=True)
        ref = f"{name}:latest"
        assert ref in self.ctr("images", "ls", "-q", check=True).stdout.split()
        return ref

    def run(self, runtime: Path | str, image: str, cid: str, *cmd, flags=RUN_FLAGS,
            timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
        """`ctr run --rm` to completion: the container's stdout/stderr and exit status."""
        return self.ctr("run", "--rm", "--runc-binary", runtime, "--runc-root", self.runc_root,
                        *flags, image, cid, *cmd, timeout=timeout, check=check)

    def run_detached(self, runtime: Path | str, image: str, cid: str, *cmd, flags=RUN_FLAGS,
                     log_file: Path | None = None, check: bool = True
                     ) -> subprocess.CompletedProcess:
        """`ctr run -d`: its stdout/stderr go to log_file (--log-uri file://),
        else nowhere (--null-io). Returns once the task is running."""
        io = ["--log-uri", f"file://{log_file}"] if log_file else ["--null-io"]
        result = self.ctr("run", "-d", *io, "--runc-binary", runtime, "--runc-root",
                          self.runc_root, *flags, image, cid, *cmd, check=check)
        self._remember_processes()
        return result

    def exec(self, cid: str, exec_id: str, *cmd, check: bool = False, timeout: float = 60
             ) -> subprocess.CompletedProcess:
        """`ctr task exec --exec-id E CID CMD`: its output and exit status."""
        return self.ctr("task", "exec", "--exec-id", exec_id, cid, *cmd, check=check,
                        timeout=timeout)

    def kill(self, cid: str, sig: str = "SIGKILL", all: bool = False, check: bool = True
             ) -> subprocess.CompletedProcess:
        return self.ctr("task", "kill", "--signal", sig, *(["--all"] if all else []), cid,
                        check=check)

    def delete_task(self, cid: str, force: bool = False, check: bool = True
                    ) -> subprocess.CompletedProcess:
        return self.ctr("task", "delete", *(["--force"] if force else []), cid, check=check)

    def delete_container(self, cid: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ctr("container", "delete", cid, check=check)

    def tasks(self) -> dict[str, dict]:
        """`ctr task ls`: {id: {"pid": int, "status": "RUNNING"|"STOPPED"|...}}."""
        out = self.ctr("task", "ls", check=True).stdout.splitlines()
        found = {}
        for line in out[1:]:
            words = line.split()
            if len(words) >= 3:
                found[words[0]] = {"pid": int(words[1]), "status": words[2]}
        return found

    def containers(self) -> list[str]:
        return self.ctr("container", "ls", "-q", check=True).stdout.split()

    def wait_stopped(self, cid: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.tasks().get(cid, {}).get("status") not in (None, "STOPPED"):
            if time.monotonic() > deadline:
                raise AssertionError(f"task {cid} still {self.tasks().get(cid)} after {timeout}s")
            time.sleep(0.05)

    # -- what is ours -----------------------------------------------------

    def runtime_wrapper(self, name: str, binary: str, extra_args=()) -> RuntimeWrapper:
        """A --runc-binary script under workdir/runtimes that records its calls."""
        return write_runtime_wrapper(self.workdir / "runtimes" / name, binary, extra_args)

    def namespace_mounts(self) -> list[str]:
        """Mount points under workdir in the daemon's mount namespace."""
        return mounts_under(self.workdir, self.launcher.pid)

    def cgroup_mounts_read_only(self) -> dict[str, bool]:
        """{mount point: read-only?} for the cgroup mounts the daemon sees."""
        result = {}
        with open(f"/proc/{self.launcher.pid}/mountinfo") as f:
            for line in f:
                fields = line.split()
                fstype = fields[fields.index("-") + 1]
                if fields[4] == "/sys/fs/cgroup" or fstype in ("cgroup", "cgroup2"):
                    result[fields[4]] = "ro" in fields[5].split(",")
        return result

    def processes(self) -> list[int]:
        """Live processes of ours: what descends from the launcher, and anything
        whose command line names our socket or workdir (and what descends from it)."""
        ours = set(descendants(self.launcher.pid))
        marks = (str(self.socket), str(self.workdir) + "/")
        me = os.getpid()
        for pid in _all_pids():
            if pid != me and pid not in ours and any(m in _cmdline(pid) for m in marks):
                st = _stat(pid)
                if st and st[1] != "Z" and pid != self.launcher.pid:
                    ours.add(pid)
                    ours.update(descendants(pid))
        return sorted(ours)

    def _remember_processes(self) -> None:
        for pid in self.processes():
            proc = ProcessId.of(pid)
            if proc:
                self.seen.add(proc)

    # -- stopping ---------------------------------------------------------

    def _stop(self, timeout: float = 10) -> list[str]:
        """Stop everything (see the module docstring); returns what went wrong."""
        problems = []
        self._remember_processes()
        if self.daemon.alive():
            try:
                # not `kill --all`: runc finds "all" in the container's cgroup, and
                # here a container has none
                for cid, task in self.tasks().items():
                    if task["status"] != "STOPPED":
                        self.kill(cid, "SIGKILL", check=False)
                for cid in self.tasks():
                    self.wait_stopped(cid, timeout)
                    self.delete_task(cid)
                for cid in self.containers():
                    self.delete_container(cid)
            except (subprocess.TimeoutExpired, AssertionError) as err:
                problems.append(f"ctr cleanup: {err}")
            self._remember_processes()
            try:
                os.kill(self.daemon.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass   # it died meanwhile (the test that kills it)
            if not _wait_gone([self.daemon], timeout):
                self.forced.append("SIGKILL containerd (SIGTERM ignored)")
                _kill([self.daemon])
        self._remember_processes()
        left = [p for p in map(ProcessId.of, self.processes()) if p]
        if left:
            # shims (and whatever containers they still had): not ours to keep
            self.forced.append(f"SIGKILL {[(p.pid, _cmdline(p.pid)[:60]) for p in left]}")
            _kill(left)
            if not _wait_gone(left, timeout):
                problems.append(f"processes survived SIGKILL: {[p.pid for p in left]}")
        if self.launcher.poll() is None:
            for point in sorted(self.namespace_mounts(), key=lambda p: p.count("/"),
                                reverse=True):
                self.forced.append(f"umount {point}")
                umount = subprocess.run(["nsenter", f"--mount=/proc/{self.launcher.pid}/ns/mnt",
                                         "umount", point], capture_output=True, text=True)
                if umount.returncode != 0:
                    problems.append(f"umount {point} in the namespace: {umount.stderr.strip()}")
        if self.launcher.stdin:
            self.launcher.stdin.close()
        try:
            self.launcher.wait(timeout)
        except subprocess.TimeoutExpired:
            problems.append("launcher did not exit; SIGKILL")
            self.launcher.kill()
            self.launcher.wait()
        for point in sorted(mounts_under(self.workdir), key=lambda p: p.count("/"), reverse=True):
            problems.append(f"{point} was mounted in the caller's namespace")
            subprocess.run(["umount", point], capture_output=True)
        return problems


def _wait_gone(procs, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(p.alive() for p in procs):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _kill(procs) -> None:
    for p in procs:
        if p.alive():
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def private_containerd(workdir: Path, snapshotter: str = "overlayfs", log_level: str = "info",
                       start_timeout: float = 20):
    """Start a containerd of our own under workdir; yields a Containerd.
    On exit everything it started is stopped and unmounted (AssertionError
    if that needed force beyond the plan, e.g. a survivor)."""
    reason = containerd_missing()
    if reason:
        raise RuntimeError(reason)
    workdir = Path(workdir).resolve()
    if workdir == Path("/run") or Path("/run") in workdir.parents:
        raise ValueError("workdir must not be under /run: the daemon's namespace binds over it")
    for sub in ("root", "state", "run", "tmp", "runtime-root"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    (workdir / "config.toml").write_text(_config(workdir))
    socket = workdir / "containerd.sock"
    if len(str(socket)) > 100:
        raise ValueError(f"socket path too long for a unix socket: {socket}")
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", LAUNCHER,
            str(workdir / "run"), str(workdir / "containerd.log"),
            "containerd", "--config", str(workdir / "config.toml"), "--log-level", log_level]
    env = dict(os.environ, TMPDIR=str(workdir / "tmp"))
    launcher = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=workdir)
    line = launcher.stdout.readline().strip()
    if not line.isdigit():
        launcher.stdin.close()
        launcher.wait(10)
        raise RuntimeError(f"containerd launcher failed ({launcher.returncode}): "
                           f"{launcher.stderr.read().decode(errors='replace')}")
    daemon = ProcessId.of(int(line)) or ProcessId(int(line), -1)
    cd = Containerd(workdir, launcher, daemon, snapshotter)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if socket.exists() and cd.ctr("version", timeout=10).returncode == 0:
                break
            if not daemon.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not answer on {socket}:\n{cd.log_tail()}")
            time.sleep(0.05)
        not_ro = [m for m, ro in cd.cgroup_mounts_read_only().items() if not ro]
        if not_ro:
            raise RuntimeError(f"cgroup mounts writable in the daemon's namespace: {not_ro}")
    except BaseException:
        cd._stop()
        raise
    failed = True
    try:
        yield cd
        failed = False
    finally:
        problems = cd._stop()
        if problems and not failed:
            raise AssertionError("private containerd: " + "; ".join(problems))
