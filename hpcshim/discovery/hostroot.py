"""The host's filesystem under a prefix, with symlinks resolved inside it.

A fake driver tree in a temp dir must behave like `/`: an absolute symlink
`/usr/lib/libcuda.so.1 -> /usr/lib/libcuda.so.550` inside the tree points at
the tree's file, not the real host's. `resolve()` has the kernel follow
links as if the prefix were `/` (baselib.inroot: openat2 RESOLVE_IN_ROOT),
so a bind source is always inside the prefix.
"""

import os

from baselib.inroot import resolve_in_root


class HostRoot:
    """The host's `/` as seen under the prefix `root`."""

    def __init__(self, root: str = "/"):
        self.root = root

    @property
    def is_real(self) -> bool:
        return os.path.realpath(self.root) == "/"

    def join(self, path: str) -> str:
        """The real filesystem path of the host path `path` (absolute)."""
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.join(path))

    def resolve(self, path: str) -> str | None:
        """The host path that `path` finally names, following symlinks inside
        the root (as the kernel would from `/`); None when a link dangles
        or loops."""
        return resolve_in_root(self.root, path)

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(self.join(path)))
        except OSError:
            return []

    def read_text(self, path: str) -> str | None:
        try:
            with open(self.join(path), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return None
