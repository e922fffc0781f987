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

The joining itself is minict-oci's (oci/exec.py join_and_exec), with the
process runc exec would make: the one in the config.json the container
runs (the same capabilities, user, rlimits and seccomp profile as its
first process; process_for), so both runtimes' exec, and minict run's
init, end in the same last steps (oci/process.py). MinictExec adds what
minict exec's flags ask.
"""

import os
import signal
import socket

from .. import syscalls as sc
from ..errors import BadArgument, ContainerNotRunning, ContainerStateError
from ..oci import exec as oci_exec, init, process
from . import bundle, rootless, security, state
from .command import error_from_child, exit_code_of, read_all
from .launch import Started
from .lifecycle import wait_in_foreground
from .process import is_alive
from .resources import join_existing
from .flags import merge_env
from .tty import size_of, take_master
from .users import resolve_user

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
    ran = state.read_json(record.bundle_config_file)
    if ran is None:
        raise ContainerStateError(f"container {record.name} was started without a config.json "
                                  f"(by an older minict)",
                                  f"start it again: minict stop {record.name}, then minict start")
    proc = process_for(ran["process"], argv, tty=tty, env=env, workdir=workdir)
    seccomp = ran["linux"].get("seccomp")
    own_namespaces = {ns["type"] for ns in ran["linux"]["namespaces"]}
    security.make_non_dumpable(kernel)
    pid = runtime["pid"]
    joined = [(n, f) for n, f in oci_exec.JOINED   # (--network host: the host's, not joined)
              if not (n == "net" and "network" not in own_namespaces)]
    ns_fds = [(name, flag, kernel.open_namespace(pid, name, f"Hold the container's {name} namespace"))
              for name, flag in joined]
    pid_ns = kernel.open_namespace(pid, "pid", "Hold the container's PID namespace")
    if not is_alive(pid, runtime.get("pid_start")):
        raise ContainerNotRunning(f"container {record.name} stopped meanwhile", "start it again")
    process.preload(seccomp)
    channels = init.Channels(sync=False)
    console_parent = None
    if tty:
        console_parent, channels.console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if rootless.active():
        _join_user_namespace(kernel, pid)
    kernel.setns(pid_ns, sc.CLONE_NEWPID, "Children forked from now on are born in the "
                                          "container's PID namespace", what=f"/proc/{pid}/ns/pid")
    os.close(pid_ns)
    child_pid = kernel.fork("Fork the process that joins the container and becomes the command")
    if child_pid == 0:
        joiner = MinictExec(user, interactive, console_parent)
        init.main_with(channels, lambda ready: oci_exec.join_and_exec(
            kernel, seccomp, proc, pid, ns_fds, channels, ready, joiner))
    for _, _, fd in ns_fds:
        os.close(fd)
    channels.parent_side()
    try:
        join_existing(kernel, record.id, child_pid)
        os.write(channels.go_write, b"g")
        master = None
        if tty:
            master = take_master(kernel, console_parent)
            console_parent.close()
        failure = read_all(channels.error_read)
    finally:
        os.close(channels.go_write)
        os.close(channels.error_read)
    if failure:
        os.waitpid(child_pid, 0)
        raise error_from_child(failure)
    return exit_code_of(wait_in_foreground(kernel, Started(child_pid, master), interactive))


def process_for(ran: dict, argv, *, tty: bool, env=(), workdir=None) -> dict:
    """The new process, as runc exec makes one: the container's own, from
    the config.json it runs (its user, capabilities, rlimits, no_new_privs;
    CAP_MKNOD already gone where no device controller guards it), with
    minict exec's command, -e, -w and -t."""
    proc = {key: value for key, value in ran.items() if key != "consoleSize"}
    proc.update(args=list(argv), terminal=tty, cwd=workdir or ran["cwd"],
                env=merge_env(ran["env"], (), env, os.environ),
                **(bundle.console_size_of(size_of(0)) if tty else {}))
    return proc


class MinictExec(oci_exec.Joiner):
    """What minict exec's flags add to joining the container."""
    die_with_owner = True

    def __init__(self, user: str | None, interactive: bool,
                 console_parent: socket.socket | None):
        self.user, self.interactive, self.console_parent = user, interactive, console_parent

    def before_go(self, kernel):
        kernel.set_pdeathsig(signal.SIGKILL, "Die if minict exec dies")
        if self.console_parent is not None:
            self.console_parent.close()

    def in_container(self, kernel, proc):
        """--user NAME: looked up in the container's own /etc/passwd, now at /."""
        if self.user is None:
            return proc
        account = resolve_user(self.user, ["/"])
        # The same rule as for the container's command: only root holds capabilities in effect
        return dict(proc, **bundle.identity_of(account.uid, account.gid, account.additional_gids,
                                               proc["capabilities"]["bounding"]))

    def stdio(self, kernel, proc, ch):
        super().stdio(kernel, proc, ch)          # -t: the pty, its master sent to minict exec
        if not proc.get("terminal") and not self.interactive:
            null = os.open("/dev/null", os.O_RDONLY)
            kernel.redirect_stdio(null, (0,), "No -i: stdin reads nothing (/dev/null)")
            os.close(null)


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
