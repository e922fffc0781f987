"""The host's filesystem under a prefix, with symlinks resolved inside it.

A fake driver tree in a temp dir must behave like `/`: an absolute symlink
`/usr/lib/libcuda.so.1 -> /usr/lib/libcuda.so.550` inside the tree points at
the tree's file, not the real host's. `resolve()` follows links itself,
re-rooting absolute targets, so a bind source is always inside the prefix.
"""

import os


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

    def unjoin(self, real: str) -> str:
        """The host path (as seen from the host's `/`) of a real path under the root."""
        if self.root == "/":
            return real
        rel = os.path.relpath(real, self.root)
        return "/" if rel == "." else "/" + rel

    def exists(self, path: str) -> bool:
        return os.path.lexists(self.join(path))

    def resolve(self, path: str, max_links: int = 40) -> str | None:
        """The host path that `path` finally names, following symlinks inside the root.

        None when a link dangles or loops. Like the kernel, give up after 40 links.
        """
        parts = [p for p in path.split("/") if p]
        done: list[str] = []
        links = 0
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join(done + [part])
            real = self.join(candidate)
            if os.path.islink(real):
                links += 1
                if links > max_links:
                    return None
                target = os.readlink(real)
                if target.startswith("/"):
                    done = []
                parts = [p for p in target.split("/") if p] + parts
                continue
            if not os.path.lexists(real):
                return None
            done.append(part)
        return "/" + "/".join(done)

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
