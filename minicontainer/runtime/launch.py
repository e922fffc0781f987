"""Starting the container's first process, from the owner's side.

The owner is the process that looks after a container while it runs: the
foreground `minict run`, or the supervisor of a detached one. It

1. makes the sync channels (a "go" pipe, an error pipe, and for -t a unix
   socket to receive the pty master),
2. makes the container's cgroup (with its limits) and puts the device
   rules in force (device_access.py: an eBPF program attached to that
   cgroup, or the fallback when there is none), so the child is forked
   knowing which,
3. unshares a new PID namespace for its *next child*, forks (the child is
   PID 1 in there), and steps back into its own PID namespace (setns),
4. records the child's pid and moves it into the cgroup while it is still
   waiting, so not one instruction of the container's code runs outside
   its limits and its device rules,
5. says "go", then reads the error pipe: end-of-file means execve
   succeeded (the pipe is close-on-exec); a JSON line means the child
   failed and says why.
"""

import json
import os
import signal
import socket
from dataclasses import dataclass

from ..cgroups.hierarchy import create_for_container
from ..errors import CommandNotExecutable, CommandNotFound, MinictError, RunFailed
from .. import syscalls as sc
from . import child, device_access, state, tty


@dataclass
class Started:
    """A container process that has exec'd its command."""
    pid: int                    # host pid of the container's PID 1
    master: int | None = None   # pty master, with -t


def make_cgroup(kernel: sc.Kernel, spec):
    """Make the container's cgroup (<root>/minict/<id>, with spec's limits);
    returns the Cgroup, or None when no limit was asked and this host has no
    usable cgroup v2 (--explain says so).

    Made before the container's first process is forked, and the process
    is moved in (Cgroup.add_pid) while it waits for "go", before it has run
    any of the container's code: every process the container ever starts
    is born inside its limits and its device rules. The child then unshares
    CLONE_NEWCGROUP, which makes this cgroup the root of its view.
    (`minict exec` joins the existing cgroup instead: resources.join_existing.)
    """
    return create_for_container(spec.id, spec.resource_limits(), explain=kernel.explain)


def _drop_cgroups(*cgroups) -> None:
    """The container never started: its cgroups go too (the error that
    stopped it is the one to report, so a failure here is left to cleanup)."""
    for cgroup in cgroups:
        if cgroup is None:
            continue
        try:
            cgroup.destroy()
        except MinictError:
            pass


def launch(kernel: sc.Kernel, record, log_fd: int | None = None, close_early=()) -> Started:
    """Fork the container's PID 1 and wait until it has exec'd the command."""
    spec = record.spec
    child.preload(spec)
    cgroup = make_cgroup(kernel, spec)
    guard = None
    try:
        guard = device_access.install(kernel, spec, cgroup)
        return _fork_and_start(kernel, record, guard, cgroup, log_fd, close_early)
    except BaseException:
        _drop_cgroups(cgroup, guard.v1_cgroup if guard else None)
        raise


def _fork_and_start(kernel, record, guard, cgroup, log_fd, close_early) -> Started:
    spec = record.spec
    go_read, go_write = os.pipe2(os.O_CLOEXEC)
    error_read, error_write = os.pipe2(os.O_CLOEXEC)
    channels = child.Channels(go_read, go_write, error_read, error_write, log_fd=log_fd)
    if spec.tty:
        channels.console_parent, channels.console_child = socket.socketpair(socket.AF_UNIX,
                                                                            socket.SOCK_STREAM)
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    kernel.unshare(sc.CLONE_NEWPID, "New PID namespace for the next child: it will be PID 1 there")
    pid = -1
    try:
        pid = os.fork()
        if pid == 0:   # the child: container_main ends in execve or os._exit
            child.container_main(kernel, device_access.confine(spec, guard.mechanism),
                                 str(record.dir), channels, close_early=(own_pid_ns, *close_early),
                                 nodev=guard.nodev)
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
        state.write_running(record, pid, os.getpid(), devices=guard.mechanism)
        for joined in (cgroup, guard.v1_cgroup):
            if joined is not None:
                joined.add_pid(pid)
        os.write(go_write, b"g")
        os.close(go_write)
        go_write = None
        master = None
        if spec.tty:
            master = tty.take_master(channels.console_parent)
            channels.console_parent.close()
        failure = read_all(error_read)
    except BaseException:
        kill_and_reap(pid)
        raise
    finally:
        if go_write is not None:
            os.close(go_write)
        os.close(error_read)
    if failure:
        os.waitpid(pid, 0)     # (launch removes the cgroups)
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
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
