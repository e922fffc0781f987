"""`minict exec`: run another command inside a running container.

The new process joins every namespace of the container's PID 1 with
setns(2), through the files in /proc/PID/ns/, then gets the same
security settings as the container's own command (capabilities, user,
no_new_privs, seccomp filter, closed fds, checked cwd) and execs.

Order matters:
- minict makes itself non-dumpable FIRST (CVE-2019-5736): the process
  that enters the container is the host's python binary, and until it
  execs, a process in the container could otherwise open /proc/PID/exe
  and overwrite that binary on the host.
- the namespace files are opened, then the container's PID 1 is checked
  to still be the same process (pid + start time), so a recycled pid
  cannot send us into a stranger's namespaces.
- setns(CLONE_NEWPID) only decides where the *children* of the caller
  are born, so minict joins it itself and forks; the child joins the
  rest, the mount namespace last (after it, the host's paths are gone).
- without root, minict joins the container's user namespace before all
  of them (_join_user_namespace).
"""

import os
import signal
import socket

from .. import syscalls as sc
from ..errors import BadArgument, ContainerNotRunning
from . import child, device_access, rootless, security, state
from .command import error_from_child, exec_command, exit_code_of, read_all, run_or_report
from .launch import Started
from .lifecycle import wait_in_foreground
from .process import is_alive
from .resources import join_existing
from .spec import merge_env
from .tty import take_master
from .users import resolve_user

NAMESPACES = [("ipc", sc.CLONE_NEWIPC), ("uts", sc.CLONE_NEWUTS), ("net", sc.CLONE_NEWNET),
              ("cgroup", sc.CLONE_NEWCGROUP), ("mnt", sc.CLONE_NEWNS)]


def exec_in(config, kernel: sc.Kernel, ref: str, argv: list[str], *, tty=False, interactive=False,
            env=(), user=None, workdir=None) -> int:
    """Run argv in the container; returns its exit code (128+N if killed by N)."""
    if tty and interactive and not os.isatty(0):
        raise BadArgument("the input device is not a TTY (-i -t reads a terminal)",
                          "drop -t to pipe input into the command, or run from a terminal")
    layout = state.Layout.of(config)
    record = state.find(layout, ref)
    runtime = state.read_json(record.runtime_file) or {}
    if not state.status(record).running:
        raise ContainerNotRunning(f"container {record.name} is not running",
                                  f"start it first: minict start {record.name}")
    spec = record.spec.replace(argv=list(argv), tty=tty, interactive=interactive,
                               env=merge_env(record.spec.env, (), env, os.environ),
                               workdir=workdir or record.spec.workdir, init=False)
    # No device controller guards the container (device_access.py): the new
    # process gets no CAP_MKNOD either. A record without the field was
    # started by an older minict, which had no device controller at all.
    spec = device_access.confine(spec, runtime.get("devices") or device_access.NODEV)
    security.make_non_dumpable(kernel)
    pid = runtime["pid"]
    joined = [(n, f) for n, f in NAMESPACES if not (n == "net" and spec.network == "host")]
    ns_fds = [(name, flag, kernel.open_namespace(pid, name, f"Hold the container's {name} namespace"))
              for name, flag in joined]
    pid_ns = kernel.open_namespace(pid, "pid", "Hold the container's PID namespace")
    if not is_alive(pid, runtime.get("pid_start")):
        raise ContainerNotRunning(f"container {record.name} stopped meanwhile", "start it again")
    child.preload(spec)
    go_read, go_write = os.pipe2(os.O_CLOEXEC)
    error_read, error_write = os.pipe2(os.O_CLOEXEC)
    channels = child.Channels(go_read, go_write, error_read, error_write)
    if tty:
        channels.console_parent, channels.console_child = socket.socketpair(socket.AF_UNIX,
                                                                            socket.SOCK_STREAM)
    if rootless.active():
        _join_user_namespace(kernel, pid)
    kernel.setns(pid_ns, sc.CLONE_NEWPID, "Children forked from now on are born in the "
                                          "container's PID namespace", what=f"/proc/{pid}/ns/pid")
    os.close(pid_ns)
    child_pid = kernel.fork("Fork the process that joins the container and becomes the command")
    if child_pid == 0:
        run_or_report(error_write, lambda: _joiner(kernel, spec, pid, ns_fds, channels, user))
    for _, _, fd in ns_fds:
        os.close(fd)
    os.close(go_read)
    os.close(error_write)
    if channels.console_child is not None:
        channels.console_child.close()
    try:
        join_existing(kernel, record.id, child_pid)
        os.write(go_write, b"g")
        master = None
        if tty:
            master = take_master(kernel, channels.console_parent)
            channels.console_parent.close()
        failure = read_all(error_read)
    finally:
        os.close(go_write)
        os.close(error_read)
    if failure:
        os.waitpid(child_pid, 0)
        raise error_from_child(failure)
    return exit_code_of(wait_in_foreground(kernel, Started(child_pid, master), spec))


def _join_user_namespace(kernel, pid: int) -> None:
    """Without root (rootless.py): joining a namespace takes CAP_SYS_ADMIN
    over it, which the caller has only inside the container's user
    namespace, as its owner. So minict exec joins that one first, for good:
    it is single-threaded (setns(2) requires it), non-dumpable already, and
    outside the container's PID namespace, where no process of the
    container can see it. Its ids there are the container's (you are root)."""
    fd = kernel.open_namespace(pid, "user", "Hold the container's user namespace")
    try:
        kernel.setns(fd, sc.CLONE_NEWUSER, "Without root: join the container's user namespace "
                                           "first, where you (its owner) may join the others",
                     what=f"/proc/{pid}/ns/user")
    finally:
        os.close(fd)


def _joiner(kernel, spec, container_pid, ns_fds, ch: child.Channels, user) -> None:
    """The process that joins the container and becomes the command."""
    kernel.set_pdeathsig(signal.SIGKILL, "Die if minict exec dies")
    os.close(ch.go_write)
    os.close(ch.error_read)
    if ch.console_parent is not None:
        ch.console_parent.close()
    if os.read(ch.go_read, 1) != b"g":
        os._exit(125)
    os.close(ch.go_read)
    kernel.setsid("Start a new session: keyboard signals go to minict, which forwards them")
    for name, flag, fd in ns_fds:
        kernel.setns(fd, flag, f"Join the container's {name} namespace",
                     what=f"open(\"/proc/{container_pid}/ns/{name}\")")
        os.close(fd)
    kernel.chdir("/", "Stand at the container's root")
    if user is not None:
        account = resolve_user(user, ["/"])   # the container's own /etc/passwd, now at /
        spec = spec.replace(uid=account.uid, gid=account.gid,
                            additional_gids=account.additional_gids)
    child.setup_stdio(kernel, spec, ch)
    security.last_steps_before_exec(kernel, spec, ch.error_write)
    exec_command(kernel, spec.argv, spec.env)
