"""`-t`: a real pseudo-terminal, driven from the test through a pty of its
own (the test plays the user at a terminal)."""

import fcntl
import os
import pty
import select
import struct
import termios
import time

import pytest

from tests.runtime.conftest import MINICT, processes_of

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


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


def test_interactive_shell_with_job_control_ctrl_c_and_resize(mt, terminal):
    term = terminal(mt.env, "run", "--rm", "-it", "--name", "tty-test", "busybox", "sh", rows=33, cols=101)
    term.expect("# ")
    out = term.run("tty; stty size; echo term=$TERM")
    assert "/dev/pts/0" in out and "33 101" in out and "term=xterm" in out

    # Ctrl-C reaches the container's line discipline: it interrupts `sleep`, not the shell.
    term.type("sleep 30\r")
    time.sleep(0.5)
    term.type("\x03")
    assert "still-here" in term.run("echo still-here")

    # Job control: Ctrl-Z stops the foreground job; jobs lists it.
    term.type("sleep 31\r")
    time.sleep(0.5)
    term.type("\x1a")
    assert "sleep 31" in term.run("jobs")
    term.run("kill -9 %1; wait")   # (a stopped job ignores SIGTERM until continued)

    # Window resize is passed on.
    term.resize(40, 120)
    time.sleep(0.3)
    assert "40 120" in term.run("stty size")

    term.type("exit 7\r")
    assert term.wait() == 7


def test_exec_with_a_tty_in_a_detached_container(mt, terminal):
    mt.out("run", "-d", "--name", "tty-exec", "busybox", "sleep", "60")
    try:
        term = terminal(mt.env, "exec", "-it", "tty-exec", "sh", rows=20, cols=70)
        term.expect("# ")
        out = term.run("tty; stty size")
        assert "/dev/pts/" in out and "20 70" in out
        term.type("exit 4\r")
        assert term.wait() == 4
    finally:
        mt("rm", "-f", "tty-exec")


def test_detached_tty_output_goes_to_the_log(mt):
    mt.out("run", "-d", "-t", "--name", "tty-log", "busybox", "sh", "-c", "tty; echo done")
    try:
        for _ in range(100):
            if "done" in mt.out("logs", "tty-log"):
                break
            time.sleep(0.05)
        assert mt.out("logs", "tty-log").replace("\r", "") == "/dev/pts/0\ndone\n"
    finally:
        mt("rm", "-f", "tty-log")


def test_closing_the_terminal_ends_the_container(mt, terminal):
    """The user's terminal goes away (window closed, ssh dropped): minict
    hangs up the container's terminal too, and nothing is left running."""
    term = terminal(mt.env, "run", "--rm", "-it", "--hostname", "hangup-box", "busybox", "sh")
    term.expect("# ")
    os.close(term.fd)
    _, status = os.waitpid(term.pid, 0)
    assert os.WIFEXITED(status)          # minict ended by itself, it was not killed
    assert processes_of(mt.root, "hangup-box") == []
    assert mt.out("ps", "-a", "-q") == ""


def test_interactive_tty_needs_a_terminal(mt):
    """As docker: -i -t with piped input is refused (-t alone is fine)."""
    result = mt("run", "--rm", "-it", "busybox", "true", input="")
    assert result.returncode == 27 and "not a TTY" in result.stderr
    assert mt("run", "--rm", "-t", "busybox", "tty", input="").stdout.strip() == "/dev/pts/0"
