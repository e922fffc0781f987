"""Starting the container's first process, from the owner's side.

The owner is the process that looks after a container while it runs: the
foreground `minict run`, or the supervisor of a detached one. It

1. makes the sync channels (a "go" pipe, an error pipe, and for -t a unix
   socket to receive the pty master),
2. unshares a new PID namespace for its *next child*, forks (the child is
   PID 1 in there), and steps back into its own PID namespace (setns),
3. records the child's pid, and calls the cgroup hook while the child is
   still waiting, so the child is in its cgroup before it runs anything,
4. says "go", then reads the error pipe: end-of-file means execve
   succeeded (the pipe is close-on-exec); a JSON line means the child
   failed and says why.
"""

import json
import os
from dataclasses import dataclass

from .. import syscalls as sc
from ..errors import CommandNotExecutable, CommandNotFound, RunFailed
from . import child, state


@dataclass
class Started:
    pid: int                     # host pid of the container's PID 1
    master: int | None = None    # pty master, with -t


def join_cgroup(kernel: sc.Kernel, spec, pid: int) -> None:
    """HOOK for cgroups (issue 4, minicontainer.cgroups): called while the
    container's first process waits for "go", before it has run any of
    the container's code. This is where a cgroup is created for the
    container and `pid` written to its cgroup.procs, so that every process
    the container ever starts is born inside its limits. The child then
    unshares CLONE_NEWCGROUP, which makes that cgroup its root view.
    Also called by `minict exec` for the joining process."""
    kernel.explain("No cgroup was made (no limits asked): the container stays in minict's own cgroup")


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
    try:
        state.write_running(record, pid, os.getpid())
        join_cgroup(kernel, spec, pid)
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
        _kill_and_reap(pid)
        raise
    finally:
        if go_write is not None:
            os.close(go_write)
        os.close(error_read)
    if failure:
        os.waitpid(pid, 0)
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


def _kill_and_reap(pid: int) -> None:
    import signal
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
