"""The container's command: find it, exec it, and read how it ended.

Used by the container's first process (child.py), by --init's reaper for
the command it forks (reaper.py), and by `minict exec` (exec.py).

- find_command resolves argv[0] in the container's PATH, as a shell does,
  with docker's exit codes: 127 when it is not there, 126 when it cannot
  be executed.
- run_or_report runs the steps before execve; a failure becomes one JSON
  line on the error pipe (close-on-exec, so the owner reads end-of-file
  exactly when execve succeeded) and the process _exits with docker's code.
- read_all and error_from_child: the owner's side of the error pipe.
- exit_code_of turns a wait status into what a shell reports.
"""

import errno
import json
import os
import signal
import stat

from .. import syscalls as sc
from ..errors import BadArgument, CommandNotExecutable, CommandNotFound, MinictError, RunFailed, UnknownUser


def run_or_report(error_fd: int, body) -> None:
    """Run body (which ends in execve); on any failure, report it on the
    error pipe and _exit with docker's code (125, 126 or 127)."""
    code = 125
    try:
        body()
    except MinictError as exc:
        code = exc.exit_code if exc.exit_code in (126, 127) else 125
        report_failure(error_fd, type(exc).__name__, exc.message, exc.hint)
    except OSError as exc:
        report_failure(error_fd, "RunFailed", f"could not set up the container: {exc}", None)
    except BaseException as exc:   # noqa: B902 - anything at all must end in _exit
        report_failure(error_fd, "RunFailed",
                f"could not set up the container: {type(exc).__name__}: {exc}", None)
    os._exit(code)


def report_failure(fd: int, kind: str, message: str, hint: str | None) -> None:
    try:
        os.write(fd, json.dumps({"kind": kind, "message": message, "hint": hint}).encode() + b"\n")
    except OSError:
        pass


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
    classes = {"CommandNotFound": CommandNotFound, "CommandNotExecutable": CommandNotExecutable,
               "UnknownUser": UnknownUser}
    cls = classes.get(report.get("kind"), RunFailed)
    return cls(report.get("message") or "the container failed to start", report.get("hint"))


def start_command(kernel, proc: dict, path: str, error_fd: int) -> None:
    """The command's process under --init (everything else is done): proc
    is config.json's `process`, path its command found. Never returns."""
    def start():
        if proc.get("terminal"):
            # Job control: the command gets its own process group and the
            # terminal's foreground, as a shell started by login would.
            # (SIGTTOU blocked: a background process may then take the terminal.)
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])
            kernel.become_foreground_job("Give the command the terminal (its own process group "
                                        "in the foreground)")
        exec_process(kernel, proc, path)
    run_or_report(error_fd, start)


def exec_process(kernel, proc: dict, path: str) -> None:
    """execve config.json's `process` (its command found at `path`) with
    exactly its environment, as a fresh process starts: its umask, every
    signal at its default."""
    umask_and_signals(proc.get("user", {}).get("umask", 0o022))
    execute(kernel, path, proc["args"], proc.get("env", []))


def umask_and_signals(umask: int = 0o022) -> None:
    """Start the command as a fresh process would start: ignored signals
    survive execve, and minict's own process may ignore some. Python
    ignores SIGPIPE and SIGXFSZ (`yes | head` would then never end), and
    whoever started minict may have ignored more: `nohup` SIGHUP, a shell
    script's background job SIGINT and SIGQUIT (Ctrl-C in the container's
    terminal would then do nothing). So every signal goes back to its
    default, and none is blocked."""
    os.umask(umask)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue              # their dispositions cannot be changed
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass                  # signals the C library keeps for itself (glibc's 32 and 33)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def find_command(name: str, env: list[str]) -> str:
    """Resolve argv[0] the way a shell would, in the container's PATH.
    docker's codes: 127 when not found, 126 when found but not executable.
    The messages hold runc's words ("executable file not found in $PATH",
    "no such file or directory", "permission denied"): engines (podman)
    read a runtime's error for them to choose those codes."""
    if "/" in name:
        if not os.path.exists(name):
            raise CommandNotFound(f"exec: {name}: no such file or directory in the container",
                                  "check the path, e.g. minict run IMAGE ls -l " + os.path.dirname(name))
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise CommandNotExecutable(f"exec: {name}: permission denied (not executable)",
                                       "check its permissions")
        return name
    path_var = next((e[5:] for e in env if e.startswith("PATH=")), "")
    denied = None
    for directory in path_var.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = candidate
    if denied:
        raise CommandNotExecutable(f"exec: {denied}: permission denied (not executable)",
                                   "check its permissions")
    raise CommandNotFound(f"exec: {name!r}: executable file not found in $PATH ({path_var})",
                          "check the command exists in the image")


def exec_command(kernel, argv: list[str], env: list[str]) -> None:
    execute(kernel, find_command(argv[0], env), argv, env)


def execute(kernel, path: str, argv: list[str], env: list[str]) -> None:
    """execve, its failures in docker's words and exit codes."""
    try:
        kernel.execve(path, argv, env, "Replace this process with the container's command")
    except OSError as exc:
        if exc.errno == errno.ENOENT:   # e.g. a script whose #! interpreter is missing
            raise CommandNotFound(f"cannot run {path}: {exc.strerror} (a missing interpreter?)",
                                  "check the #! line and that its interpreter is in the image") from None
        if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EPERM):
            raise CommandNotExecutable(f"cannot execute {path}: {exc.strerror}",
                                       "check it is a program for this machine") from None
        raise RunFailed(f"execve {path} failed: {exc}") from None


def exit_code_of(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def parse_signal(value) -> int:
    """'SIGTERM', 'TERM', 'term', '15' -> 15: what docker's --signal and
    StopSignal, and runc's kill, take."""
    text = str(value).strip().upper()
    if text.isdigit():
        if int(text) != 0 and int(text) not in signal.valid_signals():   # (0: is it alive?)
            raise BadArgument(f"unknown signal {value!r}",
                              f"signal numbers go from 1 to {int(signal.SIGRTMAX)}")
        return int(text)
    try:
        return int(signal.Signals[text if text.startswith("SIG") else "SIG" + text])
    except KeyError:
        raise BadArgument(f"unknown signal {value!r}",
                          "use a name such as TERM or SIGKILL, or a number such as 9") from None


def forward_signal(kernel, pid: int, number: int) -> None:
    """Pass a signal minict (or the --init reaper) received on to the
    container's process (gone already: nothing to do)."""
    try:
        kernel.kill(pid, number, f"Forward {sc.signal_name(number)} to the container")
    except ProcessLookupError:
        pass
