"""A container's process, named so that a recycled pid is never taken for it.

A pid names a process only while that process lives: the kernel hands the
number out again later. So minict records the pid together with the
process's start time when a container starts (state.write_starting), and
trusts a pid only while the process behind it started at that same time
(psutil reads it from /proc/PID/stat). A finished process that its parent
has not waited for yet (a zombie) counts as gone.

To signal the container, minict also holds a pidfd (pidfd_open(2), Linux
5.3): once opened, the descriptor names that process itself, so a signal
sent through it can never reach a later process that reuses the pid, however
long the check before it took.
"""

import os
import select

import psutil

from .. import syscalls as sc


def start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), or None when it
    is gone or only a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except psutil.NoSuchProcess:
        return None


def is_alive(pid: int | None, started: float | None) -> bool:
    """Is the process that started at `started` with pid `pid` still there?"""
    return bool(pid) and started is not None and start_time(pid) == started


class ContainerProcess:
    """A running container's PID 1, held by a pidfd. Use as a context manager;
    `open()` gives None when the process recorded in `runtime` is gone."""

    def __init__(self, kernel: sc.Kernel, pid: int, pidfd: int):
        self.kernel = kernel
        self.pid = pid
        self.pidfd = pidfd

    @classmethod
    def open(cls, kernel: sc.Kernel, runtime: dict) -> "ContainerProcess | None":
        pid = runtime.get("pid")
        if not pid or not is_alive(pid, runtime.get("pid_start")):
            return None
        try:
            pidfd = kernel.pidfd_open(pid, "Hold the container's PID 1 by a pidfd, so a signal "
                                           "cannot reach another process that reuses its pid")
        except ProcessLookupError:
            return None
        process = cls(kernel, pid, pidfd)
        # The fd now pins a process: check it is still the container's.
        if not is_alive(pid, runtime.get("pid_start")):
            process.close()
            return None
        return process

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def signal(self, sig: int, why: str) -> None:
        try:
            self.kernel.pidfd_send_signal(self.pidfd, sig, why, pid=self.pid)
        except ProcessLookupError:
            pass   # it ended meanwhile

    def exited(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for it to end (a pidfd becomes
        readable when its process exits)."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
