"""Detached containers (`run -d`, `start`): a small supervisor process.

minict has no daemon. A detached container still needs an owner: someone
to be its parent (and so receive its exit status), keep its output in a
log file, hold its owner lock, and tidy up when it ends. That is the
supervisor, a process forked from minict (twice, so it is nobody's child
and never a zombie) that lives exactly as long as the container:

    minict run -d  --fork--> helper --fork--> supervisor --fork--> container PID 1
         |                     exits             holds the lock, writes the
         |                                       log, records the exit status
         +-- waits on a pipe for "started" (or the error), prints the id

The container's stdout and stderr go straight to the log file (with -t,
the supervisor copies the pty's output there). If the supervisor is
killed, the container dies with it (PR_SET_PDEATHSIG) and the next minict
command sees the owner lock free and puts the record right.
"""

import json
import os

from .. import syscalls as sc
from ..errors import MinictError, RunFailed
from . import networking, state, tty, usernet
from .command import exit_code_of
from .command import error_from_child, read_all
from .launch import launch
from .resources import release


def start_detached(kernel: sc.Kernel, record, lock: state.Lock, new: bool) -> str:
    """Start `record` under a supervisor; returns once it runs (or raises).
    `new`: the record was made for this run (`run -d`), so a failed start
    removes it; otherwise (`start`) the failure is recorded in it."""
    report_read, report_write = os.pipe2(os.O_CLOEXEC)
    helper = kernel.fork("-d: fork a helper, whose child becomes the supervisor")
    if helper == 0:
        try:
            os.close(report_read)
            kernel.setsid("A session of its own: no controlling terminal, so the user's Ctrl-C "
                          "is not for the supervisor")
            if kernel.fork("Fork the supervisor; the helper exits, so init adopts it") == 0:
                _supervise(kernel, record, lock, report_write, new)
        finally:
            os._exit(0)
    os.close(report_write)
    lock.release()        # our copy; the supervisor's copy keeps the lock held
    os.waitpid(helper, 0)
    answer = read_all(report_read)
    os.close(report_read)
    if not answer:
        if new:
            _remove_if_unowned(record)
        raise RunFailed("the supervisor of the detached container died while starting it",
                        "run minict cleanup, then try again with --explain")
    report = json.loads(answer)
    if not report.get("ok"):
        raise error_from_child(answer)
    return record.id


def _remove_if_unowned(record) -> None:
    """A `run -d` whose supervisor died: nobody will remove its record, so we do."""
    lock = state.Lock.acquire(record.lock_file, blocking=False)
    if lock is None:
        return
    try:
        with state.names_lock(record.layout):
            state.remove_record(record)
    finally:
        lock.release()


def _supervise(kernel, record, lock, report_write, new: bool) -> None:
    """The supervisor's whole life. Never returns."""
    terminal = record.config["process"]["terminal"]    # -t: the output goes to the pty
    null = os.open("/dev/null", os.O_RDWR)
    kernel.redirect_stdio(null, (0,), "The supervisor reads nothing from the terminal")
    log_fd = os.open(record.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    try:
        started = launch(kernel, record, log_fd=None if terminal else log_fd,
                         close_early=(report_write, lock.fd))
    except BaseException as exc:   # noqa: B902 - report anything, then tidy up
        message = exc.message if isinstance(exc, MinictError) else f"{type(exc).__name__}: {exc}"
        hint = exc.hint if isinstance(exc, MinictError) else None
        os.write(report_write, json.dumps({"ok": False, "kind": type(exc).__name__,
                                           "message": message, "hint": hint}).encode())
        if new:
            with state.names_lock(record.layout):
                state.remove_record(record)   # nothing left behind by a failed start
        else:
            state.write_exit(record, getattr(exc, "exit_code", 125), message)
        os._exit(1)
    # Started: from now on nothing may write to the terminal of the minict
    # that started us (and holding its pipes open would make it wait).
    kernel.redirect_stdio(null, (1, 2), "Started: the supervisor writes nothing to the terminal of "
                                        "the minict that started it")
    os.close(null)
    kernel.narrator.close()
    os.write(report_write, json.dumps({"ok": True, "pid": started.pid}).encode())
    os.close(report_write)
    if started.master is not None:
        status = tty.relay(kernel, started.master, started.pid, None, log_fd)   # (closes the master)
    else:
        _, status = os.waitpid(started.pid, 0)
    finish(record, exit_code_of(status), lock)
    os._exit(0)


def finish(record, code: int | None, lock: state.Lock, error: str | None = None,
           kernel: sc.Kernel | None = None) -> str | None:
    """Record how the container ended; remove its cgroup and take down its
    network (and the container itself if it was --rm); let go. Every end
    of a container passes here (its command exited, `stop`, `kill`, `rm -f`),
    foreground or detached.

    Returns the sentence saying the kernel's OOM killer ended it, or None.
    """
    kernel = kernel or sc.Kernel()
    networking.detach(kernel, record)
    usernet.stop_for(record.id)          # without root: its slirp4netns, if it has one
    try:
        with kernel.narrator.speaking("runtime"):
            _, oom = release(record.id, kernel.explain)
    except MinictError as exc:
        # Still end it (record the exit, or remove an --rm container) and let
        # go: `minict cleanup` retries the cgroup.
        oom, error = None, error or f"its cgroup could not be removed: {exc.one_line()}"
    if record.engine.auto_remove:
        # --rm: the record goes now, so how it ended is not written first.
        # (Should the removal fail, `minict cleanup` removes what is left:
        # an --rm container is never kept.)
        with state.names_lock(record.layout):
            state.remove_record(record)
    else:
        state.write_exit(record, code, error, oom_killed=oom is not None)
    lock.release()
    return oom


