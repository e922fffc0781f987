"""The build cache: "this step, on top of that state, gave this image".

Each step's key chains the key before it with what the step is (docker's
rules, docs.docker.com "Build cache invalidation"):

    key(FROM image)  = the image's id (its config digest)
    key(step)        = sha256(key(previous step) + the instruction, its
                       variables expanded
                       + COPY/ADD: a digest of the copied files' names,
                         modes and contents (never their modification times)
                       + RUN: the build arguments it sees)

so one changed step (or file) misses, and so does every step after it.

An entry, ROOT/build-cache/<key>.json, holds the whole image state after the
step (config and layer list), not a diff: a hit is one file read. The layers
themselves stay in the image store; an entry whose layers the store has
collected since (no image uses them any more) is a miss, never an error.
"""

import hashlib
import json
from pathlib import Path

from ..fsutil import atomic_write


def chain(previous: str, *parts: str) -> str:
    h = hashlib.sha256(previous.encode())
    for part in parts:
        h.update(b"\0" + part.encode())
    return "sha256:" + h.hexdigest()


class BuildCache:
    def __init__(self, root: Path):
        self.dir = Path(root) / "build-cache"

    def _path(self, key: str) -> Path:
        return self.dir / (key.split(":", 1)[1] + ".json")

    def get(self, key: str, usable) -> dict | None:
        """The entry for key, if `usable(entry)` says its layers are all still there."""
        try:
            entry = json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None
        return entry if usable(entry) else None

    def put(self, key: str, entry: dict) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path(key), json.dumps(entry, sort_keys=True).encode(), durable=False)
