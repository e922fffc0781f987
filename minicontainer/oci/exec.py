"""`minict-oci exec`: another process in a running container.

What podman exec and `ctr task exec` ask for. The process is described
like config.json's `process` (podman writes it to a file: --process), and
joins what the container's init has: its namespaces through
/proc/PID/ns/*, its cgroup, and the config's seccomp filter. Then the
same last steps as init (process.py). This runtime makes itself
non-dumpable first (CVE-2019-5736), checks the init is still the same
process after opening its namespace files, and joins the PID namespace by
forking into it.

`minict exec` (runtime/exec.py) joins with the same code, join_and_exec:
its process is the one config.json's process would be (runtime/bundle.py),
and what it adds (dying with minict exec, --user looked up in the
container's /etc/passwd, stdin without -i) it adds at a Joiner's hooks.
"""

import json
import os
import signal
from pathlib import Path

from .. import syscalls as sc
from ..errors import BadArgument, BadConfig, ContainerStateError, MinictError
from ..runtime import security
from ..runtime.command import error_from_child, exec_process, exit_code_of, read_all
from . import config as config_file, init, process, state

JOINED = [("ipc", sc.CLONE_NEWIPC), ("uts", sc.CLONE_NEWUTS), ("net", sc.CLONE_NEWNET),
          ("cgroup", sc.CLONE_NEWCGROUP), ("mnt", sc.CLONE_NEWNS)]


def process_of(record: state.Record, process_file: str | None, args, *, tty=False, env=(),
               cwd=None, user=None, additional_gids=(), caps=(), no_new_privs=False) -> dict:
    """The new process: --process FILE as it is, or the container's own
    process with args (and runc's -t, -e, --cwd, -u, -g, --cap and
    --no-new-privs) changed."""
    if process_file:
        try:
            proc = json.loads(Path(process_file).read_text())
        except (OSError, ValueError) as exc:
            raise BadConfig(f"--process {process_file}: {exc}", "give a JSON process object") \
                from None
    else:
        config = config_file.load(Path(record.bundle))
        proc = dict(config["process"], args=list(args), terminal=tty)
        proc["env"] = proc.get("env", []) + list(env)
        if cwd:
            proc["cwd"] = cwd
        if user is not None or additional_gids:
            proc["user"] = _user_of(user, additional_gids, proc.get("user", {}))
        if caps:                      # as runc's --cap: bounding, effective and permitted
            names = [c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
                     for c in caps]
            sets = proc["capabilities"] = dict(proc.get("capabilities", {}))
            for kind in ("bounding", "effective", "permitted"):
                sets[kind] = [*sets.get(kind, []), *names]
        if no_new_privs:
            proc["noNewPrivileges"] = True
    config_file.check_process(proc)
    return proc


def _user_of(given: str | None, additional_gids, user: dict) -> dict:
    """-u UID[:GID] (numbers, as runc takes them; the GID is 0 if not given)
    and -g GID..."""
    if given is not None:
        uid, _, gid = given.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise BadArgument(f"--user {given!r} is not UID[:GID]", "e.g. -u 1000:1000")
        user = {"uid": int(uid), "gid": int(gid or 0)}
    return {**user, **({"additionalGids": list(additional_gids)} if additional_gids else {})}


def exec_in(kernel: sc.Kernel, root: Path, container_id: str, proc: dict, *, detach=False,
            pid_file=None, console_socket=None, preserve_fds: int = 0) -> int:
    record = state.load(root, container_id)
    if state.status(root, record) not in ("running", "created"):
        raise ContainerStateError(f"container {container_id} is not running",
                                  "exec takes a running container")
    config = config_file.load(Path(record.bundle))
    security.make_non_dumpable(kernel)
    namespaces = [(name, flag, kernel.open_namespace(record.pid, name,
                                                     f"Hold the container's {name} namespace"))
                  for name, flag in JOINED if _differs(record.pid, name)]
    pid_ns = kernel.open_namespace(record.pid, "pid", "Hold the container's PID namespace")
    if not state.alive(record):
        raise ContainerStateError(f"container {container_id} stopped meanwhile", "")
    seccomp = config.get("linux", {}).get("seccomp")
    process.preload(seccomp)
    channels = init.Channels()
    channels.console = init.console_for(bool(proc.get("terminal")), console_socket)
    kernel.setns(pid_ns, sc.CLONE_NEWPID, "Children forked from now on are born in the "
                                          "container's PID namespace",
                 what=f"/proc/{record.pid}/ns/pid")
    os.close(pid_ns)
    pid = kernel.fork("Fork the process that joins the container")
    if pid == 0:
        init.main_with(channels, lambda ready: join_and_exec(kernel, seccomp, proc, record.pid,
                                                             namespaces, channels, ready,
                                                             preserve_fds=preserve_fds))
    for _, _, fd in namespaces:
        os.close(fd)
    channels.parent_side()
    if record.cgroup:
        Path(record.cgroup, "cgroup.procs").write_text(str(pid))
    os.write(channels.go_write, b"g")
    os.close(channels.go_write)
    channels.parent_sync.recv(1)   # "r", or end-of-file if it failed
    channels.parent_sync.close()
    failure = read_all(channels.error_read)
    os.close(channels.error_read)
    if failure:
        os.waitpid(pid, 0)
        raise error_from_child(failure)
    if pid_file:
        try:
            state.write_pid_file(pid_file, pid)
        except MinictError:
            # the engine cannot know of the process without it: none is left
            kernel.kill(pid, signal.SIGKILL, "exec: the pid file was not written: end the process")
            os.waitpid(pid, 0)
            raise
    if detach:
        return 0
    while True:
        try:
            return exit_code_of(os.waitpid(pid, 0)[1])
        except InterruptedError:
            continue


def _differs(pid: int, name: str) -> bool:
    """Join only the namespaces the container does not share with us."""
    try:
        return os.readlink(f"/proc/{pid}/ns/{name}") != os.readlink(f"/proc/self/ns/{name}")
    except OSError:
        return False


class Joiner:
    """What an engine's exec adds to joining (minict exec: runtime/exec.py's
    MinictExec). For minict-oci, nothing: the process is as given."""
    die_with_owner = False                 # keep a parent-death signal across setuid

    def before_go(self, kernel):
        """First thing in the child, before waiting for "go"."""

    def in_container(self, kernel, proc: dict) -> dict:
        """Inside every namespace, at the container's root: the process, changed if need be."""
        return proc

    def stdio(self, kernel, proc: dict, ch: init.Channels):
        """Where fds 0, 1, 2 go: a pty of the container's own with process.terminal."""
        if proc.get("terminal"):
            init.console(kernel, ch.console, proc.get("consoleSize"), bind_console=False)


def join_and_exec(kernel, seccomp, proc, init_pid: int, namespaces, ch: init.Channels, ready,
                  joiner: Joiner | None = None, preserve_fds: int = 0) -> None:
    """The forked child: wait for "go", join the namespaces (mount last: after
    it the host's paths are gone), then the process's identity and the last
    steps, and exec. Never returns."""
    joiner = joiner or Joiner()
    joiner.before_go(kernel)
    ch.child_side()
    if os.read(ch.go_read, 1) != b"g":
        os._exit(125)
    os.close(ch.go_read)
    kernel.setsid("A session of its own")
    for name, flag, fd in namespaces:
        kernel.setns(fd, flag, f"Join the container's {name} namespace",
                     what=f'open("/proc/{init_pid}/ns/{name}")')
        os.close(fd)
    kernel.chdir("/", "Stand at the container's root")
    proc = joiner.in_container(kernel, proc)
    process.limits_and_score(kernel, proc)
    proc = process.with_home(proc)
    path = process.resolve_command(proc)
    joiner.stdio(kernel, proc, ch)
    process.identity_and_capabilities(kernel, proc, seccomp, die_with_owner=joiner.die_with_owner)
    if ch.child_sync is not None:
        ch.child_sync.sendall(b"r")
        ch.child_sync.close()
        ready[0] = True
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    process.last_steps(kernel, proc, seccomp, {ch.error_write, *range(3, 3 + preserve_fds)})
    exec_process(kernel, proc, path)
