"""One picture of a directory tree, to prove that something left it as it was
(the host outside a layer dir, a store after a failed load or pull)."""

import hashlib
import os
from pathlib import Path


def snapshot(root: Path) -> dict:
    """Everything observable about a tree: type, mode, owner, size, content, target."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            entry = (st.st_mode, st.st_uid, st.st_gid, st.st_nlink)
            if path.is_symlink():
                entry += (os.readlink(path),)
            elif path.is_file():
                entry += (hashlib.sha256(path.read_bytes()).hexdigest(),)
            state[str(path.relative_to(root))] = entry
    return state
