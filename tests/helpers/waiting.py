"""Waiting for something the kernel does in its own time (a process to die,
an OOM kill), without sleeping longer than needed."""

import time


def wait_for(predicate, timeout: float, what: str = "condition") -> None:
    """Poll `predicate` every 0.1 s; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
