"""Resolve `--user` / the image's User against the image's /etc/passwd.

A user spec is `user[:group]`, each part a name or a number (docker's
`--user`, OCI image-spec config.md "User"). Names are looked up in the
image's own /etc/passwd and /etc/group, never the host's: a container's
"student" need not exist on the host, and may have another uid there.

The files are read straight from the image's layer directories (top layer
first, honouring overlay whiteouts), so a bad user is reported before
anything is created.
"""

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UnknownUser


@dataclass
class User:
    """A resolved account."""
    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)   # supplementary groups
    name: str | None = None                                     # from /etc/passwd, if listed there
    home: str = "/"                                             # HOME, unless the env sets one


def _is_whiteout(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, "trusted.overlay.opaque", follow_symlinks=False) == b"y"
    except OSError:
        return False


def find_in_layers(layer_dirs: list[Path], relpath: str) -> Path | None:
    """The path of `relpath` as the merged overlay would show it, found in
    the layer directories (bottom first, as Image.layer_dirs lists them),
    or None if no layer has it or an upper layer deleted it."""
    parts = [p for p in relpath.strip("/").split("/") if p]
    for layer in reversed(layer_dirs):
        hidden_below = False
        current = Path(layer)
        for i, part in enumerate(parts):
            current = current / part
            if _is_whiteout(current):
                return None  # deleted by this layer: lower layers do not count
            if i < len(parts) - 1 and current.is_dir() and _is_opaque(current):
                hidden_below = True  # this directory replaces lower ones wholesale
        if current.exists() and not _is_whiteout(current):
            return current
        if hidden_below:
            return None
    return None


def _read_table(layer_dirs, relpath) -> list[list[str]]:
    path = find_in_layers(layer_dirs, relpath)
    if path is None or not path.is_file():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def resolve_user(spec: str, layer_dirs: list[Path]) -> User:
    """Turn `user[:group]` into uid, gid, supplementary gids and HOME."""
    spec = (spec or "").strip()
    user_part, _, group_part = spec.partition(":")
    passwd = _read_table(layer_dirs, "etc/passwd")
    groups = _read_table(layer_dirs, "etc/group")

    entry = None
    if user_part == "":
        user_part = "0"
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((row for row in passwd if len(row) >= 4 and row[2] == user_part), None)
    else:
        entry = next((row for row in passwd if row and row[0] == user_part), None)
        if entry is None or len(entry) < 4 or not entry[2].isdigit():
            raise UnknownUser(f"unable to find user {user_part!r} in the image's /etc/passwd",
                              "give a user the image defines, or a numeric uid[:gid]")
        uid = int(entry[2])
    name = entry[0] if entry else None
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"

    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            row = next((r for r in groups if r and r[0] == group_part), None)
            if row is None or len(row) < 3 or not row[2].isdigit():
                raise UnknownUser(f"unable to find group {group_part!r} in the image's /etc/group",
                                  "give a group the image defines, or a numeric gid")
            gid = int(row[2])

    # Supplementary groups: every group that lists the user as a member
    # (what login(1) would give them), unless a group was forced.
    additional = []
    if name and not group_part:
        for row in groups:
            if len(row) >= 4 and row[2].isdigit() and name in row[3].split(","):
                if int(row[2]) != gid and int(row[2]) not in additional:
                    additional.append(int(row[2]))
    return User(uid=uid, gid=gid, additional_gids=additional, name=name, home=home)
