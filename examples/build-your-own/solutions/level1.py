#!/usr/bin/env python3
"""Level 1 (reference solution): a hostname and a PID namespace of its own.

Goal: level 0's fork and exec, with the child in two new namespaces: a UTS
namespace, where it sets the hostname "level1" without touching the host's,
and a PID namespace, where it is PID 1 (`echo $$` prints 1).

Run:    sudo python3 level1.py CMD [ARG...]
        e.g. sudo MINICT_EXPLAIN=1 python3 level1.py sh -c 'hostname; echo $$'
Check:  sudo examples/build-your-own/check.sh 1 [FILE]
Time:   20-30 minutes.
Show:   (on the projector) `hostname` and `echo $$` inside and on the host; readlink
        /proc/self/ns/uts on both sides; `ps` inside still lists the host's processes (its
        /proc is the host's, until level 4); MINICT_EXPLAIN=1 next to
        `minict --explain run --rm busybox true 2>&1 | grep unshare`.
API:    minict's kernel layer (minicontainer.syscalls.Kernel: unshare,
        sethostname, fork), because Python 3.11's os has no unshare or
        sethostname (os.unshare is 3.12+). Each call prints an [explain]
        line with MINICT_EXPLAIN=1, as `minict run --explain` does.
        os.execvp and os.waitpid stay plain os, as in level 0.
Read:   minicontainer/oci/create.py (fork_init: why
        unshare(CLONE_NEWPID) comes before the fork), minicontainer/oci/init.py
        (_init: the sethostname in the container's own UTS namespace),
        minicontainer/syscalls/api.py (KernelApi.unshare, sethostname: the narration).
"""

import os
import sys
from pathlib import Path

try:
    from minicontainer import syscalls as sc
except ImportError:   # run as `python3 level1.py` from a checkout: use the checkout's minicontainer
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents
                                if (p / "minicontainer").is_dir())))
    from minicontainer import syscalls as sc

HOSTNAME = "level1"
kernel = sc.Kernel(sc.Narrator(os.environ.get("MINICT_EXPLAIN") == "1"))


def before_fork() -> None:
    """In the parent: unshare(CLONE_NEWPID) does not move the caller (its pid
    cannot change); it decides where its *next child* is born. That child
    is PID 1 of the new namespace."""
    kernel.unshare(sc.CLONE_NEWPID, "A new PID namespace for the next child: it will be PID 1 there")


def in_the_child() -> None:
    """In the child, before exec: a UTS namespace of its own, then its name.
    (In the parent, sethostname would rename the host.)"""
    kernel.unshare(sc.CLONE_NEWUTS, "A UTS namespace of its own: the hostname it sets stays inside")
    kernel.sethostname(HOSTNAME, "The container's hostname")


def run(argv: list[str]) -> int:
    before_fork()
    pid = kernel.fork("Fork the container's first process")
    if pid == 0:
        try:
            in_the_child()
            os.execvp(argv[0], argv)
        except BaseException as exc:   # never return into the parent's code
            print(f"level1: {type(exc).__name__}: {exc}", file=sys.stderr)
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: level1.py CMD [ARG...]")
    sys.exit(run(sys.argv[1:]))
