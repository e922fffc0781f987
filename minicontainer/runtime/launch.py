"""Starting the container's first process, from the owner's side.

The owner is the process that looks after a container while it runs: the
foreground `minict run`, or the supervisor of a detached one. It

1. makes the sync channels (a "go" pipe, an error pipe, and for -t a unix
   socket to receive the pty master),
2. unshares a new PID namespace for its *next child*, forks (the child is
   PID 1 in there), and steps back into its own PID namespace (setns),
3. records the child's pid, and makes the container's cgroup and moves the
   child into it while the child is still waiting, so not one instruction
   of the container's code runs outside its limits,
4. says "go", then reads the error pipe: end-of-file means execve
   succeeded (the pipe is close-on-exec); a JSON line means the child
   failed and says why.
"""

import json
import os

from .. import syscalls as sc
from ..errors import CommandNotExecutable, CommandNotFound, RunFailed
from . import child, state


class Started:
    """A container process that has exec'd its command.
    (A plain class: dataclasses is not imported by `minict run`, see spec.py.)"""

    def __init__(self, pid: int, master: int | None = None):
        self.pid = pid          # host pid of the container's PID 1
        self.master = master    # pty master, with -t


def join_cgroup(kernel: sc.Kernel, spec, pid: int):
    """Make the container's cgroup (<root>/minict/<id>, with spec's limits)
    and write `pid` to its cgroup.procs; returns the Cgroup, or None when
    no limit was asked and this host has no usable cgroup v2 (--explain
    says so).

    Called while the container's first process waits for "go", before it
    has run any of the container's code, so every process the container
    ever starts is born inside its limits. The child then unshares
    CLONE_NEWCGROUP, which makes this cgroup the root of its view.
    (`minict exec` joins the existing cgroup instead: resources.join_existing.)
    """
    from ..cgroups.hierarchy import create_for_container
    cgroup = create_for_container(spec.id, spec.resource_limits(), explain=kernel.explain)
    if cgroup is not None:
        try:
            cgroup.add_pid(pid)
        except BaseException:
            cgroup.destroy()
            raise
    return cgroup


def _drop_cgroup(cgroup) -> None:
    """The container never started: its cgroup goes too (the error that
    stopped it is the one to report, so a failure here is left to cleanup)."""
    from ..errors import MinictError
    if cgroup is None:
        return
    try:
        cgroup.destroy()
    except MinictError:
        pass


def launch(kernel: sc.Kernel, record, log_fd: int | None = None, close_early=()) -> Started:
    """Fork the container's PID 1 and wait until it has exec'd the command."""
    spec = record.spec
    child.preload(spec)
    go_read, go_write = os.pipe2(os.O_CLOEXEC)
    error_read, error_write = os.pipe2(os.O_CLOEXEC)
    channels = child.Channels(go_read, go_write, error_read, error_write, log_fd=log_fd)
    if spec.tty:
        import socket
        channels.console_parent, channels.console_child = socket.socketpair(socket.AF_UNIX,
                                                                            socket.SOCK_STREAM)
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    kernel.unshare(sc.CLONE_NEWPID, "New PID namespace for the next child: it will be PID 1 there")
    pid = -1
    try:
        pid = os.fork()
        if pid == 0:   # the child: container_main ends in execve or os._exit
            child.container_main(kernel, spec, str(record.dir), channels,
                                 close_early=(own_pid_ns, *close_early))
    finally:
        if pid != 0:   # the parent, or a failed fork
            kernel.setns(own_pid_ns, sc.CLONE_NEWPID, "Back in minict: its later children are "
                                                      "born in the host's PID namespace again",
                         what="open(\"/proc/self/ns/pid\")")
            os.close(own_pid_ns)
    kernel.explain(f"Forked the container's first process: PID {pid} on the host, PID 1 inside")
    for fd in (go_read, error_write):
        os.close(fd)
    if channels.console_child is not None:
        channels.console_child.close()
    cgroup = None
    try:
        state.write_running(record, pid, os.getpid())
        cgroup = join_cgroup(kernel, spec, pid)
        os.write(go_write, b"g")
        os.close(go_write)
        go_write = None
        master = None
        if spec.tty:
            from .tty import take_master
            master = take_master(channels.console_parent)
            channels.console_parent.close()
        failure = read_all(error_read)
    except BaseException:
        kill_and_reap(pid)
        _drop_cgroup(cgroup)
        raise
    finally:
        if go_write is not None:
            os.close(go_write)
        os.close(error_read)
    if failure:
        os.waitpid(pid, 0)
        _drop_cgroup(cgroup)
        if master is not None:
            os.close(master)
        raise error_from_child(failure)
    return Started(pid, master)


def read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def error_from_child(data: bytes):
    """Turn the child's one JSON line into the error class it named."""
    try:
        report = json.loads(data.decode(errors="replace").splitlines()[0])
    except (ValueError, IndexError):
        return RunFailed("the container's process failed before starting the command",
                         f"it said: {data[:200]!r}")
    classes = {"CommandNotFound": CommandNotFound, "CommandNotExecutable": CommandNotExecutable}
    cls = classes.get(report.get("kind"), RunFailed)
    return cls(report.get("message") or "the container failed to start", report.get("hint"))


def kill_and_reap(pid: int) -> None:
    """SIGKILL a child of ours and wait for it, so that no zombie is left
    (a process already gone is fine)."""
    import signal
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
