"""`--init`: a tiny PID 1 that reaps zombies and forwards signals.

PID 1 of a PID namespace is special: the kernel does not apply default
signal actions to it (so SIGTERM does nothing unless it installed a
handler), and orphaned processes are re-parented to it and become zombies
unless it waits for them. Most programs are not written to be PID 1; a
shell running a pipeline leaves zombies, a server ignores `minict stop`.
With --init, the container's first process stays behind as that PID 1
(what tini / docker-init do): it forks the command, forwards the signals
it receives, reaps every child, and exits with the command's status.

This reaper is minict's own Python process, mapped from the host's python
binary. It makes itself non-dumpable, so that nothing in the container
can open /proc/1/exe and write to the host's binary (CVE-2019-5736).
"""

import os
import signal

from .command import exit_code_of, forward_signal, start_command
from .security import make_non_dumpable

FORWARDED = [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGTERM, signal.SIGWINCH, signal.SIGCONT]


def run_reaper(kernel, proc: dict, path: str, error_fd: int) -> None:
    """Never returns: forks the command (config.json's `process`, found at
    `path`), then reaps until it exits."""
    make_non_dumpable(kernel, "The reaper stays in the container: make it non-dumpable so "
                              "/proc/1/exe cannot be opened from inside (CVE-2019-5736)")
    pid = kernel.fork("--init: stay as PID 1, a reaper that forwards signals; fork the command as PID 2")
    if pid == 0:
        start_command(kernel, proc, path, error_fd)
    os.close(error_fd)   # only the command's copy may hold it: its execve closes it
    kernel.narrator.close()
    for sig in FORWARDED:
        signal.signal(sig, lambda number, _frame: forward_signal(kernel, pid, number))
    code = 0
    while True:
        try:
            reaped, status = os.wait()
        except ChildProcessError:
            os._exit(code)
        if reaped == pid:
            os._exit(exit_code_of(status))

