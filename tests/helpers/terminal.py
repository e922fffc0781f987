"""A pseudo-terminal for tests: minict runs on its slave side, the test
types and reads on the master side (the test plays the user at a terminal)."""

import fcntl
import os
import pty
import select
import struct
import termios
import time

import pytest

from tests.runtime.conftest import MINICT


class Terminal:
    """minict running on the slave side of a pty; the test types and reads."""

    def __init__(self, env: dict, *args, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(MINICT, ["minict", *args], env)
        self.resize(rows, cols)
        self.seen = b""

    def resize(self, rows, cols):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def type(self, text: str):
        os.write(self.fd, text.encode())

    def expect(self, token: str, timeout=15.0) -> str:
        """Read until `token` appears in the output since the last expect."""
        end = time.monotonic() + timeout
        want = token.encode()
        while want not in self.seen:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{token!r} not seen; got {self.seen[-500:]!r}")
            if self._read(left) is False:
                raise AssertionError(f"terminal closed before {token!r}; got {self.seen[-500:]!r}")
        # After a prompt, busybox's line editor asks the terminal where the
        # cursor is (ESC [ 6 n) and takes the next input as the answer: give
        # it a moment to ask, and answer as a real terminal would.
        while self._read(0.3):
            pass
        before, _, self.seen = self.seen.partition(want)
        return before.decode(errors="replace")

    def run(self, command: str) -> str:
        """Type a shell command; return its output. A marker echoed after it
        ends the output (prompts may be redrawn, so they are no guide)."""
        self.type(f'{command}; echo END""MARK\r')
        return self.expect("ENDMARK")

    def _read(self, timeout: float) -> bool | None:
        """Read what arrives within `timeout`: True if something did, None if
        nothing did, False if the terminal closed."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return None
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        if b"\x1b[6n" in chunk:
            os.write(self.fd, b"\x1b[1;5R")
            chunk = chunk.replace(b"\x1b[6n", b"")
        self.seen += chunk
        return True

    def wait(self, timeout=15.0) -> int:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    os.read(self.fd, 4096)   # keep draining so the relay never blocks
                except OSError:
                    pass
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        raise AssertionError("minict did not exit")


@pytest.fixture
def terminal():
    """Open Terminals; any minict still running at the end is killed (its
    container dies with it), so a failing test leaves nothing behind."""
    opened = []

    def open_terminal(env, *args, **kw):
        term = Terminal(env, *args, **kw)
        opened.append(term)
        return term

    yield open_terminal
    for term in opened:
        try:
            os.kill(term.pid, 9)
            os.waitpid(term.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
