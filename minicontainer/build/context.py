"""The build context: the directory COPY and ADD take files from, less
what `.dockerignore` leaves out.

.dockerignore (docker's rules): one pattern per line, `#` comments; `*`, `?`
and `[...]` match within one path component, `**` any number of them; a
leading `/` means nothing (patterns are relative to the context); `!`
re-includes; the last matching line wins; a pattern that matches a
directory leaves out everything under it.

COPY sources are resolved here, inside the context: `..` or a symlink that
would lead out of it is refused (a Dockerfile must not read the rest of the
builder's disk), and the cache key of a COPY is the content of what it
copies (`digest_of`), not the files' modification times.
"""

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadDockerfile, BuildFailed


@dataclass
class Pattern:
    regex: re.Pattern
    include: bool      # a "!pattern": put back what an earlier line left out


def read_ignore_file(context: Path) -> list[Pattern]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        text = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        patterns.append(Pattern(re.compile(_to_regex(text)), include))
    return patterns


def _to_regex(pattern: str) -> str:
    """A .dockerignore pattern as a regex over a relative path ('a/b/c')."""
    parts = pattern.split("/")
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _component(part) + ("" if last else "/")
    return regex + "(?:/.*)?\\Z"     # a directory takes everything under it along


def _component(part: str) -> str:
    """One path component: * ? and [...] never match a '/'."""
    out, i = [], 0
    while i < len(part):
        ch = part[i]
        end = part.find("]", i + 1) if ch == "[" else -1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif end > 0:
            body = part[i + 1:end]
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


class Context:
    def __init__(self, directory: Path):
        self.dir = Path(directory).resolve()
        self.patterns = read_ignore_file(self.dir)

    def ignored(self, relative: str) -> bool:
        verdict = False
        for pattern in self.patterns:
            if pattern.regex.match(relative):
                verdict = not pattern.include
        return verdict

    def sources(self, pattern: str, where: str) -> list[Path]:
        """The context paths a COPY source names (wildcards allowed)."""
        relative = os.path.normpath(pattern.lstrip("/")) if pattern.strip("/") else "."
        if relative == ".." or relative.startswith("../"):
            raise BadDockerfile(f"{where}{pattern} is outside the build context {self.dir}",
                              "copy only files under the context directory")
        if any(ch in relative for ch in "*?["):
            found = sorted(p for p in self.dir.glob(relative) if not self._ignored_path(p))
        else:
            path = self.dir / relative
            found = [path] if (os.path.lexists(path) and not self._ignored_path(path)) else []
        if not found:
            raise BuildFailed(f"{where}{pattern}: no such file in the build context {self.dir}"
                              + (" (or .dockerignore leaves it out)" if self.patterns else ""),
                              "check the path; sources are relative to the context")
        for path in found:
            self.check_inside(path, where, pattern)
        return found

    def check_inside(self, path: Path, where: str, shown: str) -> None:
        """Refuse a source whose real path leaves the context (a symlink out)."""
        real = Path(os.path.realpath(path))
        if real != self.dir and not real.is_relative_to(self.dir):
            raise BuildFailed(f"{where}{shown} leads outside the build context {self.dir}",
                              "copy only files under the context directory")

    def _ignored_path(self, path: Path) -> bool:
        rel = path.relative_to(self.dir).as_posix()
        return rel != "." and self.ignored(rel)

    def walk(self, top: Path):
        """(path, relative-to-top) of everything under `top` that is not
        ignored, sorted, directories before their contents."""
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames
                                 if not self._ignored_path(Path(dirpath) / d))
            for name in sorted(dirnames + filenames):
                path = Path(dirpath) / name
                if name in filenames and self._ignored_path(path):
                    continue
                yield path, path.relative_to(top)

    def entries(self, directory: Path) -> list[Path]:
        """The direct entries of a context directory that .dockerignore keeps, sorted."""
        return [p for p in sorted(directory.iterdir()) if not self._ignored_path(p)]

    def digest_of(self, paths: list[Path]) -> str:
        """sha256 over names, modes, link targets and contents (not mtimes)."""
        h = hashlib.sha256()
        for top in paths:
            entries = [(top, Path(top.name))]
            if top.is_dir() and not top.is_symlink():
                entries += [(p, Path(top.name) / r) for p, r in self.walk(top)]
            for path, rel in entries:
                st = path.lstat()
                h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(path).encode())
                elif stat.S_ISREG(st.st_mode):
                    with open(path, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                h.update(b"\0")
        return "sha256:" + h.hexdigest()
