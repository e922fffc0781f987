#!/usr/bin/env python3
"""Level 0 (reference solution): fork and exec a command.

Goal: run CMD the way a shell (and every container runtime) does: fork a
child, have the child replace itself with CMD (exec), and wait for it in
the parent, passing its output and its exit status on. A container is
exactly this, with the child changed before it execs (levels 1-7).

Run:    python3 level0.py CMD [ARG...]      (no root needed for this one)
Check:  sudo examples/build-your-own/check.sh 0 [FILE]
Time:   15-20 minutes.
Show:   (on the projector) strace -f -e trace=clone,execve,wait4 python3 level0.py sh -c 'exit 3';
        echo $?  -- the three calls every runtime makes, and the status passed on.
API:    plain `os` (os.fork, os.execvp, os.waitpid, os.waitstatus_to_exitcode):
        the three calls every runtime is built on, before any kernel layer.
Read:   minicontainer/oci/create.py (fork_init: minict's fork),
        minicontainer/runtime/command.py (execute: the execve and its errors;
        exit_code_of: a wait status as a shell reports it).
"""

import os
import sys


def run(argv: list[str]) -> int:
    """Fork, exec argv in the child, wait in the parent; returns the exit code."""
    pid = os.fork()
    if pid == 0:
        # The child: a copy of this process. execvp replaces it with the
        # command (looked up on PATH); it returns only if that failed.
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"level0: {argv[0]}: {exc.strerror}", file=sys.stderr)
            # 127: not found, 126: found but not runnable (a shell's numbers).
            # os._exit, never return: a child that went on would run the
            # parent's code after the fork a second time.
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    # The parent: wait for the child, or it would end before its child and
    # never learn its status (and the child would linger as a zombie).
    _, status = os.waitpid(pid, 0)
    return exit_code(status)


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    code = os.waitstatus_to_exitcode(status)   # -N when a signal killed it
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: level0.py CMD [ARG...]")
    sys.exit(run(sys.argv[1:]))
