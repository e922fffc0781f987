"""Terminals: a pty made inside the container, and the relay outside.

`-t` gives the container a pseudo-terminal from its OWN devpts instance
(so `tty` inside prints /dev/pts/0 and the name exists there). The
container's process opens /dev/ptmx after its /dev is mounted
(Kernel.open_pty), keeps the
peer (slave) end as its stdin/stdout/stderr and controlling terminal, and
passes the master end out to minict over a unix socket (SCM_RIGHTS), the
way runc's --console-socket works.

minict then relays bytes between the user's terminal (put in raw mode, so
Ctrl-C, Ctrl-Z and arrow keys reach the container's line discipline and
shell untouched) and the master, copies the window size across on
SIGWINCH, and stops when the container's process has exited.
"""

import errno
import os
import select
import signal
import socket
import termios
import time
import tty as terminal_modes   # the standard library's tty (raw mode), not this module

# ---- the master, received -----------------------------------------------------------------

def take_master(kernel, sock, size_from: int = 0) -> int | None:
    """Owner side: the master fd the container sent, with the window size of
    `size_from` (when that is a terminal) copied onto it; None if the
    container closed the socket without sending (its start-up failed; the
    error pipe says why)."""
    try:
        _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    except OSError:
        return None
    if not fds:
        return None
    if os.isatty(size_from):
        copy_window_size(kernel, size_from, fds[0])
    try:
        sock.send(b"k")
    except OSError:
        pass
    return fds[0]


# ---- outside: window size and raw mode ----------------------------------------------------

def size_of(fd: int) -> tuple[int, int] | None:
    """(rows, columns) of the terminal at fd, or None when it is not one:
    the container's pty is made with it (config.json's consoleSize)."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def copy_window_size(kernel, from_fd: int, to_fd: int) -> None:
    try:
        kernel.copy_window_size(from_fd, to_fd, "The container's terminal takes the size of yours")
    except OSError:
        pass   # not a terminal: nothing to copy


class RawTerminal:
    """Put a terminal in raw mode for the with-block, restore it after."""

    def __init__(self, fd: int):
        self.fd = fd
        self.saved = None

    def __enter__(self):
        if os.isatty(self.fd):
            self.saved = termios.tcgetattr(self.fd)
            terminal_modes.setraw(self.fd)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass   # the terminal is gone (hung up): nothing to restore


# ---- the relay ---------------------------------------------------------------------------

def relay(kernel, master: int, pid: int, stdin_fd: int | None, out_fd: int) -> int:
    """Copy stdin -> master and master -> out until process `pid` exits;
    returns its wait status, and closes `master`. `stdin_fd` None: nothing
    is read (no -i).

    End of input from the user's terminal means it went away (a hangup):
    the container's terminal is then hung up too, as closing a terminal
    window ends the shell in it. (stdin is a terminal whenever there is one
    to read: `-i -t` refuses anything else, as docker does.)"""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = signal.set_wakeup_fd(wake_w)
    old_chld = signal.signal(signal.SIGCHLD, lambda *_: None)   # a handler, so the wakeup fd fires
    old_winch = None
    if stdin_fd is not None and os.isatty(stdin_fd):
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: copy_window_size(kernel, stdin_fd, master))
    status = None
    try:
        while status is None:
            watched = [master, wake_r] + ([stdin_fd] if stdin_fd is not None else [])
            try:
                readable, _, _ = select.select(watched, [], [])
            except InterruptedError:
                readable = []
            master_open = _pump(master, out_fd) if master in readable else True
            if stdin_fd is not None and stdin_fd in readable:
                data = _read(stdin_fd)
                if data:
                    _write_all(master, data)
                elif data is not None:
                    status = _hang_up(kernel, master, pid)
                    master = None
                    break
            if wake_r in readable:
                _drain(wake_r)
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif not master_open:
                _, status = os.waitpid(pid, 0)
        if master is not None:
            _drain_master(master, out_fd)
    finally:
        signal.set_wakeup_fd(old_wakeup)
        signal.signal(signal.SIGCHLD, old_chld)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        os.close(wake_r)
        os.close(wake_w)
        if master is not None:
            os.close(master)
    return status


HANGUP_GRACE = 10.0   # seconds a container gets to end after its terminal hung up


def _hang_up(kernel, master: int, pid: int) -> int:
    """Close the master: the kernel hangs up the container's terminal (its
    programs get EIO and SIGHUP). Wait for the container to end; kill it if
    it ignores that, since nobody is left to see it."""
    os.close(master)
    deadline = time.monotonic() + HANGUP_GRACE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    try:
        kernel.kill(pid, signal.SIGKILL, "Nobody is left at its terminal, and it ignored the hangup")
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def _pump(src: int, dst: int) -> bool:
    """Copy what is readable from src; False when src is finished (EOF/EIO:
    every peer fd is closed, i.e. the container's processes are gone)."""
    data = _read(src)
    if data is None:
        return True    # nothing after all (a spurious wakeup)
    if not data:
        return False
    _write_all(dst, data)
    return True


def _drain_master(master: int, out_fd: int) -> None:
    """After the process exited, show what it wrote last."""
    os.set_blocking(master, False)
    while True:
        try:
            data = os.read(master, 65536)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        _write_all(out_fd, data)


def _read(fd: int) -> bytes | None:
    """Bytes read; b"" at the end (EOF, or EIO from a master whose peers
    are all closed); None if there was nothing to read after all."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno in (errno.EIO, errno.EBADF):
            return b""
        raise


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.EPIPE):
                return   # the other side is gone; nothing to show it to
            raise
        data = data[written:]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass
