"""podman 4.3 driving a chosen OCI runtime, against a store of its own.

    with PrivatePodman(workdir, runtime="/usr/sbin/runc", **RUNC) as pm:
        image = pm.import_busybox()
        pm.podman("run", "--rm", image, "echo", "hi")   # -> CompletedProcess

Everything podman, conmon and the runtime write lands under `workdir`:

  root/ run/         --root, --runroot (containers/storage, libpod's bolt db)
  tmp/               --tmpdir (exit files, file locks, conmon's sockets)
  volumes/ networks/ --volumepath, --network-config-dir
  events.log         events_logger = "file"
  oci/NAME           the runtime podman is given: a wrapper that appends its
                     argv to runtime-argv.log, then runs the real runtime with
                     `--root WORKDIR/runtime-root` (podman gives a rootful
                     runtime no --root, so runc's state would be /run/runc;
                     `podman --runtime-flag root=...` is no way out: the
                     exit command's `delete --force` goes without it)
  containers.conf    the only config podman reads (CONTAINERS_CONF), with
                     the distribution's default capabilities and sysctls
                     copied in; storage.conf and registries.conf of its own

The host stays untouched:

- Every podman command runs (nsenter) in a mount and network namespace that
  a holder process made (unshare): there every cgroup filesystem is
  remounted read-only (so nothing can write to /sys/fs/cgroup), and /var/lib
  is an overlay whose writes go to a tmpfs (podman 4.3 always writes
  /var/lib/containers/cache/blob-info-cache-v1.boltdb on `import`, with no
  setting to move it). The holder exits when its stdin closes, so the
  namespace dies with the test process.
- containers.conf makes `--cgroups=disabled` and `--network=none` every
  container's default (tests pass them too); conmon, whose container then
  has no cgroup, is not moved into one either.
- lock_type = "file" (not the host's /dev/shm/libpod_lock), log_driver =
  "k8s-file" (not journald), no hooks directory of the host, TMPDIR for
  conmon (its console socket would be in /tmp), image_copy_tmp_dir.

What podman 4.3 needs to run runc like this (RUNC below):
- `--cgroups=disabled` is refused unless the runtime's basename is in
  runtime_supports_nocgroup (the key is singular in 4.3; containers.conf's
  documented "runtime_supports_nocgroups" is not read), and podman then
  passes the runtime crun's global flag `--cgroup-manager disabled`, which
  runc does not know: the wrapper drops it (drop_flags).
- runc still makes a cgroup for every container; under the read-only
  cgroup mounts that fails with EROFS unless `--rootless true` (extra_flags)
  tells it to ignore that.
- default_ulimits = []: this machine's hard rlimits are lower than the ones
  podman sets by default.

cleanup() (also on leaving the `with`) removes every container, ends what is
left in the namespace (conmon, podman's exit commands, container
processes; by pid), unmounts what is still mounted under workdir, deepest
first, and ends the holder. leftovers() says what would still be there.
"""

import fcntl
import json
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
import tomllib
from pathlib import Path

PODMAN = shutil.which("podman")
IMAGE = "localhost/busybox:podman-test"

# The distribution's settings kept (distro_defaults), from these files, later ones winning.
DISTRO_CONFS = ("/usr/share/containers/containers.conf", "/etc/containers/containers.conf")
DISTRO_KEYS = ("default_capabilities", "default_sysctls")

# What runc needs besides its path (see the module's docstring).
RUNC = {"drop_flags": ("--cgroup-manager",), "extra_flags": ("--rootless", "true")}

# The runtime subcommands podman and conmon use (runtime-spec runtime.md plus
# runc's exec): the global flags come before the first of these.
SUBCOMMANDS = ("create", "start", "state", "kill", "delete", "exec", "run", "pause",
               "resume", "update", "ps", "events", "checkpoint", "restore", "features",
               "spec", "list", "--version", "-v", "--help", "-h")

WRAPPER = '''#!{python} -I
"""podman's runtime: log the argv, then run {real} (tests/helpers/podman.py)."""
import os, shlex, sys
with open({log!r}, "a") as f:
    f.write(shlex.join(sys.argv) + "\\n")
args, out, i = sys.argv[1:], [], 0
while i < len(args) and args[i] not in {subcommands!r}:
    name = args[i].split("=", 1)[0]
    if name in {drop!r}:
        i += 1 if "=" in args[i] else 2
        continue
    out.append(args[i])
    i += 1
os.execv({real!r}, [{real!r}, *{extra!r}, *{state!r}, *out, *args[i:]])
'''

CONTAINERS_CONF = '''# tests/helpers/podman.py: podman's only config (CONTAINERS_CONF)
[containers]
default_ulimits = []
{distro}cgroups = "disabled"
netns = "none"
log_driver = "k8s-file"

[network]
network_config_dir = "{w}/networks"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{w}/events.log"
tmp_dir = "{w}/tmp"
static_dir = "{w}/root/libpod"
volume_path = "{w}/volumes"
image_copy_tmp_dir = "{w}/tmp"
lock_type = "file"
hooks_dir = ["{w}/hooks.d"]
runtime_supports_nocgroup = {nocgroup}
runtime_supports_json = {json_}
conmon_env_vars = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR={w}/tmp"]
'''

# Run in the holder (sh -c SCRIPT sh SCRATCH): make the namespace safe, say
# so, then wait for stdin to close.
HOLDER_SCRIPT = r'''
set -e
for target in /sys/fs/cgroup $(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts); do
    if mountpoint -q "$target"; then mount -o remount,bind,ro "$target"; fi
done
mount -t tmpfs -o mode=0700 podman-test-scratch "$1"
mkdir "$1/upper" "$1/work"
mount -t overlay -o "lowerdir=/var/lib,upperdir=$1/upper,workdir=$1/work" podman-test-varlib /var/lib
echo ready
exec cat >/dev/null
'''


def distro_defaults() -> str:
    """The container defaults the distribution's containers.conf sets
    (Debian: 11 capabilities, net.ipv4.ping_group_range), as TOML lines:
    with CONTAINERS_CONF podman reads no other file, and the spec should be
    the one a user of this podman gets."""
    found = {}
    for path in DISTRO_CONFS:
        try:
            with open(path, "rb") as f:
                found.update(tomllib.load(f).get("containers", {}))
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return "".join(f"{key} = {json.dumps(found[key])}\n" for key in DISTRO_KEYS if key in found)


def _mountinfo(pid="self") -> list[str]:
    """Mount points (unescaped) in the mount namespace of `pid`, in mount order."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line.split()[4].encode().decode("unicode_escape") for line in f]


def _under(path: str, top: Path) -> bool:
    return path == str(top) or path.startswith(str(top) + "/")


class PrivatePodman:
    def __init__(self, workdir, runtime="/usr/sbin/runc", *, drop_flags=(), extra_flags=(),
                 state_flag="--root", json_errors=None, wrap=True):
        """`runtime`: the OCI runtime's path. With `wrap` (the default) podman
        is given WORKDIR/oci/BASENAME instead, which logs its argv and runs
        `runtime` with `extra_flags`, `state_flag WORKDIR/runtime-root`
        (None: none) and podman's global flags less `drop_flags`.
        `json_errors`: whether podman asks the runtime for --log-format=json
        (None: podman's default, by basename: runc and crun yes)."""
        self.workdir = Path(workdir).resolve()
        self.runtime = str(runtime)
        self.name = os.path.basename(self.runtime)
        self.argv_log = self.workdir / "runtime-argv.log"
        self.runtime_root = self.workdir / "runtime-root"
        self.drop_flags, self.extra_flags = tuple(drop_flags), tuple(extra_flags)
        self.state_flag, self.json_errors, self.wrap = state_flag, json_errors, wrap
        self.holder = None
        self.env = None
        self.given_runtime = self.runtime

    # ---- setting up ---------------------------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def start(self) -> None:
        w = self.workdir
        if _under(str(w), Path("/var/lib")):
            raise ValueError(f"{w}: the work dir must not be under /var/lib (overlaid)")
        for sub in ("root", "run", "tmp", "volumes", "networks", "hooks.d", "oci", "ns",
                    "runtime-root"):
            (w / sub).mkdir(parents=True, exist_ok=True)
        if self.wrap:
            self.given_runtime = str(w / "oci" / self.name)
            state = [self.state_flag, str(self.runtime_root)] if self.state_flag else []
            Path(self.given_runtime).write_text(WRAPPER.format(
                python="/usr/bin/python3", real=self.runtime, log=str(self.argv_log),
                subcommands=SUBCOMMANDS, drop=self.drop_flags, extra=list(self.extra_flags),
                state=state))
            os.chmod(self.given_runtime, 0o755)
        json_ = ["crun", "runc", "kata", "runsc", "krun"]
        if self.json_errors is True and self.name not in json_:
            json_.append(self.name)
        elif self.json_errors is False and self.name in json_:
            json_.remove(self.name)
        nocgroup = sorted({"crun", "krun", self.name})
        (w / "containers.conf").write_text(CONTAINERS_CONF.format(
            w=w, nocgroup=json.dumps(nocgroup), json_=json.dumps(json_), distro=distro_defaults()))
        (w / "storage.conf").write_text(
            f'[storage]\ndriver = "overlay"\ngraphroot = "{w}/root"\nrunroot = "{w}/run"\n')
        (w / "registries.conf").write_text("unqualified-search-registries = []\n")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CONTAINER_", "CONTAINERS_", "PODMAN_", "REGISTRY_AUTH"))}
        env.update(CONTAINERS_CONF=str(w / "containers.conf"),
                   CONTAINERS_STORAGE_CONF=str(w / "storage.conf"),
                   CONTAINERS_REGISTRIES_CONF=str(w / "registries.conf"),
                   TMPDIR=str(w / "tmp"))
        self.env = env
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--net", "--propagation", "private", "--",
             "/bin/sh", "-c", HOLDER_SCRIPT, "sh", str(w / "ns")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.holder.stdout.readline()
        if line.strip() != b"ready":
            self.holder.stdin.close()
            err = self.holder.stderr.read().decode(errors="replace")
            self.holder.wait()
            self.holder = None
            raise RuntimeError(f"podman's namespace could not be set up: {err.strip()}")

    def argv(self, *args) -> list[str]:
        """The full command line of `podman ARGS` (in the namespace)."""
        w = self.workdir
        return ["nsenter", f"--target={self.holder.pid}", "--mount", "--net", "--",
                PODMAN, "--runtime", self.given_runtime,
                "--root", f"{w}/root", "--runroot", f"{w}/run", "--storage-driver", "overlay",
                "--tmpdir", f"{w}/tmp", "--volumepath", f"{w}/volumes",
                "--network-config-dir", f"{w}/networks", "--events-backend", "file",
                "--cgroup-manager=cgroupfs", *map(str, args)]

    # ---- running podman -----------------------------------------------------------------------

    def podman(self, *args, input=None, timeout=60, check=False) -> subprocess.CompletedProcess:
        if self.holder is None:
            raise RuntimeError("PrivatePodman not started")
        return subprocess.run(self.argv(*args), input=input, capture_output=True,
                              text=not isinstance(input, bytes), env=self.env, timeout=timeout,
                              check=check, stdin=None if input is not None else subprocess.DEVNULL)

    def out(self, *args, **kw) -> str:
        """stdout of a podman command that must succeed."""
        result = self.podman(*args, **kw)
        assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
        return result.stdout

    def import_busybox(self, rootfs=None, ref=IMAGE) -> str:
        """Import a busybox rootfs (built in WORKDIR/busybox-rootfs unless given) as `ref`."""
        if self.podman("image", "exists", ref).returncode == 0:
            return ref
        if rootfs is None:
            from tests.helpers.busybox import build_busybox_rootfs
            rootfs = self.workdir / "busybox-rootfs"
            if not rootfs.exists():
                build_busybox_rootfs(rootfs)
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], check=True,
                             capture_output=True).stdout
        result = self.podman("import", "--change", 'CMD ["sh"]', "-", ref, input=tar, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"podman import: {result.stderr.decode(errors='replace')}")
        return ref

    def run_in_pty(self, *args, timeout=30, rows=24, cols=80) -> tuple[int, str]:
        """`podman ARGS` with a pseudo-terminal as its stdin/stdout/stderr (as
        at a terminal); returns (exit code, everything it wrote)."""
        argv = self.argv(*args)
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execvpe(argv[0], argv, self.env)
            finally:
                os._exit(127)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        seen = b""
        deadline = time.monotonic() + timeout
        status = None
        try:
            while time.monotonic() < deadline:
                if select.select([fd], [], [], 0.05)[0]:
                    try:
                        chunk = os.read(fd, 4096)
                    except OSError:
                        chunk = b""
                    seen += chunk
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
                    break
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"podman {args} did not end in {timeout}s: {seen[-500:]!r}")
            while select.select([fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                seen += chunk
        finally:
            os.close(fd)
        return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")

    # ---- what is ours -------------------------------------------------------------------------

    def runtime_argv(self) -> list[str]:
        """The runtime's command lines so far, one per call (shlex-joined), as podman and conmon gave them."""
        return self.argv_log.read_text().splitlines() if self.argv_log.exists() else []

    def processes(self) -> list[int]:
        """Our processes, the holder aside: those in its mount namespace
        (podman, conmon, exit commands), their descendants (containers), and
        any naming the work dir on its command line."""
        ns = holder = None
        if self.holder is not None:
            holder = self.holder.pid
            try:
                ns = os.readlink(f"/proc/{holder}/ns/mnt")
            except OSError:
                pass
        children, found = {}, set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid in (holder, os.getpid()):
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(pid)
                if ns is not None and os.readlink(f"/proc/{pid}/ns/mnt") == ns:
                    found.add(pid)
                    continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if (str(self.workdir) + "/").encode() in f.read():
                        found.add(pid)
            except (OSError, ValueError, IndexError):
                continue
        todo = list(found)
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in found and child != os.getpid():
                    found.add(child)
                    todo.append(child)
        return sorted(found)

    def mounts(self) -> list[str]:
        """What is mounted under the work dir, in the namespace and on the host,
        the namespace's own scratch tmpfs aside."""
        scratch = str(self.workdir / "ns")
        found = [m for m in _mountinfo() if _under(m, self.workdir)]
        if self.holder is not None and self.holder.poll() is None:
            found += [m for m in _mountinfo(self.holder.pid)
                      if _under(m, self.workdir) and m != scratch]
        return found

    def leftovers(self) -> dict:
        """What cleanup() would still have to remove: containers, processes, mounts."""
        left = {"processes": [], "mounts": self.mounts(), "containers": []}
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
                left["processes"].append(f"{pid} {cmdline}")
            except OSError:
                pass
        if self.holder is not None and self.holder.poll() is None:
            ps = self.podman("ps", "-aq", timeout=30)
            left["containers"] = ps.stdout.split()
        return {k: v for k, v in left.items() if v}

    # ---- cleaning up --------------------------------------------------------------------------

    def remove_containers(self, timeout=60, settle=10.0) -> None:
        """podman rm -af -t 0 (and stop -a first for whatever rm leaves), then
        wait up to `settle` seconds for conmon and podman's exit commands
        (`podman container cleanup`, which conmon starts when a container
        ends) to end by themselves."""
        if self.holder is None or self.holder.poll() is not None:
            return
        self.podman("rm", "--all", "--force", "--time", "0", timeout=timeout)
        if self.podman("ps", "-aq", timeout=timeout).stdout.strip():
            self.podman("stop", "--all", "--time", "0", timeout=timeout)
            self.podman("rm", "--all", "--force", "--time", "0", timeout=timeout)
        deadline = time.monotonic() + settle
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)

    def cleanup(self) -> None:
        if self.holder is None:
            return
        try:
            try:
                self.remove_containers(settle=5.0)
            except subprocess.TimeoutExpired:
                pass
            for _ in range(3):   # what did not end by itself
                pids = self.processes()
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.2)
            self._unmount()
        finally:
            self.holder.stdin.close()
            try:
                self.holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait()
            self.holder.stdout.close()
            self.holder.stderr.close()
            self.holder = None

    def _unmount(self) -> None:
        """Unmount everything under the work dir, deepest (latest) first: in
        the namespace, then on the host (where nothing should be)."""
        if self.holder is not None and self.holder.poll() is None:
            scratch = str(self.workdir / "ns")
            for target in reversed(_mountinfo(self.holder.pid)):
                if _under(target, self.workdir) and target != scratch:
                    nsenter = ["nsenter", f"--target={self.holder.pid}", "--mount", "--"]
                    if subprocess.run([*nsenter, "umount", target], capture_output=True).returncode:
                        subprocess.run([*nsenter, "umount", "-l", target], capture_output=True)
        for target in reversed(_mountinfo()):
            if _under(target, self.workdir):
                if subprocess.run(["umount", target], capture_output=True).returncode:
                    subprocess.run(["umount", "-l", target], capture_output=True)
