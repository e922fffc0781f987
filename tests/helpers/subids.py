"""Run minict as `nobody`, with or without subordinate ids granted.

An administrator grants subordinate ids in /etc/subuid and /etc/subgid.
The tests do it without touching the host's files: each command runs in
a mount namespace of its own where two files of the test's are bound over
them. newuidmap and newgidmap (setuid root, Debian's uidmap) read them
there, check the grant and write the ranges.
"""

import os
import subprocess
from pathlib import Path

from tests.helpers.rootless import MINICT, NOBODY, nobody_argv

SUB_START, SUB_COUNT = 300000, 65536
__all__ = ["MINICT", "NOBODY", "SUB_COUNT", "SUB_START", "Nobody"]


class Nobody:
    """Runs minict as nobody, with or without subordinate ids granted."""

    def __init__(self, base: Path):
        self.base = base
        self.env = {"PATH": os.environ["PATH"], "HOME": str(base),
                    "MINICT_ROOT": str(base / "root"), "MINICT_STATE": str(base / "state")}
        grants = base / "grants"
        grants.mkdir()
        for name in ("subuid", "subgid"):
            (grants / name).write_text(f"nobody:{SUB_START}:{SUB_COUNT}\n")
        self.grants = grants

    def minict(self, *args, granted=True, timeout=60):
        drop = nobody_argv(self.env, MINICT, *args)
        if not granted:
            return subprocess.run(drop, capture_output=True, text=True, timeout=timeout, check=False)
        bind_grants = ('mount --bind "$1" /etc/subuid && mount --bind "$2" /etc/subgid '
                       '&& shift 2 && exec "$@"')
        cmd = ["unshare", "--mount", "sh", "-c", bind_grants, "sh",
               str(self.grants / "subuid"), str(self.grants / "subgid"), *drop]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
