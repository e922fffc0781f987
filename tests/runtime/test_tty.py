"""`-t`: a real pseudo-terminal, driven from the test through a pty of its
own (the test plays the user at a terminal)."""

import os
import time

import pytest

from tests.helpers.terminal import terminal  # noqa: F401 - the fixture
from tests.runtime.conftest import processes_of

pytestmark = [pytest.mark.root, pytest.mark.timeout(120)]


def test_interactive_shell_with_job_control_ctrl_c_and_resize(mt, terminal):
    term = terminal(mt.env, "run", "--rm", "-it", "--name", "tty-test", "busybox", "sh", rows=33, cols=101)
    term.expect("# ")
    out = term.run("tty; stty size; echo term=$TERM")
    assert "/dev/pts/0" in out and "33 101" in out and "term=xterm" in out

    # Ctrl-C reaches the container's line discipline: it interrupts `sleep`, not the shell.
    term.type("sleep 33\r")
    wait_until_foreground(b"sleep\x0033\x00")
    term.type("\x03")
    assert "still-here" in term.run("echo still-here")

    # Job control: Ctrl-Z stops the foreground job; jobs lists it.
    term.type("sleep 31\r")
    wait_until_foreground(b"sleep\x0031\x00")
    term.type("\x1a")
    assert "sleep 31" in term.run("jobs")
    term.run("kill -9 %1; wait")   # (a stopped job ignores SIGTERM until continued)

    # Window resize is passed on.
    term.resize(40, 120)
    time.sleep(0.3)
    assert "40 120" in term.run("stty size")

    term.type("exit 7\r")
    assert term.wait() == 7


def wait_until_foreground(cmdline: bytes, timeout: float = 15) -> None:
    """Wait until a process with this command line is its terminal's
    foreground process group. Until the shell has made a new job the
    foreground group (tcsetpgrp, just after its fork), a Ctrl-C or Ctrl-Z
    goes to the shell, not to the job: a fixed sleep loses that race on a
    busy machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read() != cmdline:
                        continue
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pgrp, tpgid = int(fields[2]), int(fields[5])   # stat(5): pgrp, tpgid
            if pgrp == tpgid:
                return
        time.sleep(0.05)
    raise AssertionError(f"{cmdline!r} never became the terminal's foreground job")


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
