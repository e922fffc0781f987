#!/usr/bin/env python3
"""Level 0: fork and exec a command.

Goal: run CMD the way a shell (and every container runtime) does: fork a
child, have the child replace itself with CMD (exec), and wait for it in
the parent, passing its output and its exit status on. A container is
exactly this, with the child changed before it execs (levels 1-7).

Run:    python3 level0.py CMD [ARG...]      (no root needed for this one)
        e.g. python3 level0.py sh -c 'echo hello; exit 3'; echo $?
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
    # TODO level 0, step 1: pid = os.fork(). It returns twice: 0 in the
    #   child (a copy of this process), the child's pid in the parent.
    # TODO level 0, step 2: in the child, os.execvp(argv[0], argv) replaces
    #   the process with the command; it returns only if that failed (catch
    #   OSError, print it, and os._exit(127) for "not found", 126 otherwise:
    #   the child must never return into the parent's code).
    # TODO level 0, step 3: in the parent, _, status = os.waitpid(pid, 0),
    #   then return exit_code(status).
    raise NotImplementedError("TODO level 0: fork, exec the command in the child, "
                              "wait for it in the parent")


def exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128+N for signal N."""
    # TODO level 0, step 4: a command killed by a signal has no exit code:
    #   os.waitstatus_to_exitcode(status) gives -N for signal N, and a shell
    #   reports 128+N (143 for SIGTERM). This line gets that case wrong.
    return os.WEXITSTATUS(status)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: level0.py CMD [ARG...]")
    sys.exit(run(sys.argv[1:]))
