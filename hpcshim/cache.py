"""A per-user cache of what is slow to find out and rarely changes.

Two things are kept: the host-wide part of GPU discovery (discovery/inventory.py)
and each container runtime's version (backends/apptainer.py: `apptainer
--version` starts a 50 MB Go program, ~11 ms on every job step).

Parsing ld.so.cache, scanning the driver directory and reading ELF headers
costs milliseconds that `hpcshim exec` would pay on every job step. The
result only changes when one of the files or directories it read changes, so
each cache entry stores the stat() of everything consulted (path, mtime in
ns, size, inode) and is used only while all of them are unchanged. A
directory's mtime changes when a file is added, removed or renamed in it,
which covers a driver upgrade; the driver version is also part of the key.

Where: $HPCSHIM_CACHE_DIR, else $XDG_CACHE_HOME/hpcshim, else ~/.cache/hpcshim.
HPCSHIM_NO_CACHE=1 turns it off. A cache that cannot be read or written is
ignored (it is only ever an optimisation); writes are temp file + rename.
"""

import json
import os
import zlib

FORMAT = 1


def cache_dir(env: dict[str, str]) -> str | None:
    if env.get("HPCSHIM_NO_CACHE") == "1":
        return None
    if env.get("HPCSHIM_CACHE_DIR"):
        return env["HPCSHIM_CACHE_DIR"]
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "hpcshim")


def _signature(path: str) -> list:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_mtime_ns, st.st_size, st.st_ino]


def _file_for(directory: str, key: dict, kind: str) -> str:
    # The name only has to spread keys apart (the key itself is checked on load),
    # so a CRC does: hashlib would cost the hot path 2 ms of OpenSSL set-up.
    digest = zlib.crc32(json.dumps(key, sort_keys=True).encode())
    return os.path.join(directory, f"{kind}-{digest:08x}.json")


def load(directory: str | None, key: dict, kind: str = "discovery") -> dict | None:
    """The cached data for key, if every file it was built from is unchanged."""
    if directory is None:
        return None
    try:
        with open(_file_for(directory, key, kind), encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if doc.get("format") != FORMAT or doc.get("key") != key:
        return None
    for recorded in doc.get("validators", []):
        if _signature(recorded[0]) != recorded:
            return None
    return doc.get("data")


def store(directory: str | None, key: dict, consulted: set[str], data: dict,
          kind: str = "discovery") -> None:
    if directory is None:
        return
    from baselib.files import atomic_write  # only a miss writes: tempfile is slow to import
    doc = {"format": FORMAT, "key": key,
           "validators": [_signature(p) for p in sorted(consulted)], "data": data}
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # Only an optimisation: no fsync, and a failed write is simply no cache.
        atomic_write(_file_for(directory, key, kind), json.dumps(doc).encode(), mode=0o600,
                     durable=False)
    except OSError:
        pass
