"""Waiting for something the kernel does in its own time (a process to die,
an OOM kill), without sleeping longer than needed; and not waiting for ever for what
must never block."""

import signal
import time
from contextlib import contextmanager


def wait_for(predicate, timeout: float, what: str = "condition") -> None:
    """Poll `predicate` every 0.1 s; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def fails_if_blocked(seconds: int, what: str):
    """Turn a call that would block for ever into a failed test: SIGALRM after
    `seconds` interrupts the blocked system call (Python installs its
    handlers without SA_RESTART) and the handler's exception ends it."""
    def stuck(signum, frame):
        raise AssertionError(f"{what} blocked for {seconds} s")

    previous = signal.signal(signal.SIGALRM, stuck)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
