"""Small file-system helpers that make the store crash- and concurrency-safe.

Two rules carry the whole design (docs/ARCHITECTURE.md, "State on disk"):
- every write that must survive a crash goes to a temporary name in the same
  directory and is then renamed over the real name: rename(2) is atomic, so a
  reader sees the old file or the new one, never half of one;
- every multi-step change holds an flock(2) lock, which the kernel drops when
  the holder dies, even by SIGKILL, so a crash never leaves a stale lock.
"""

import errno
import fcntl
import hashlib
import os
import re
from contextlib import contextmanager
from pathlib import Path

import psutil

from baselib import files
from .errors import DiskFull, StoreCorrupt

CHUNK = 1 << 20  # 1 MiB reads: big enough to amortise syscalls, small enough for memory


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    """The hex part of a "sha256:<64 hex>" digest (StoreCorrupt for anything else)."""
    algo, _, hexpart = digest.partition(":")
    if algo != "sha256" or not re.fullmatch(r"[a-f0-9]{64}", hexpart):
        raise StoreCorrupt(f"invalid digest {digest!r}", "only sha256 digests are supported")
    return hexpart


def raise_if_disk_full(exc: OSError, what: str):
    """Turn ENOSPC/EDQUOT into DiskFull with a hint; re-raise anything else."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFull(f"no space left on device while {what}",
                       "free some space (minict rmi unused images) and try again") from exc
    raise exc


def atomic_write(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """baselib's atomic_write (the old file or the new one, never half), with
    a full disk reported as DiskFull."""
    try:
        files.atomic_write(path, data, mode, durable)
    except OSError as exc:
        raise_if_disk_full(exc, f"writing {path}")


def stale_temp_files(directory: Path) -> list[Path]:
    """atomic_write temp files in `directory` whose writer has died.

    A SIGKILL between the write and the rename leaves the temp file behind;
    nothing ever reads it, so it is only litter. A temp file whose writer is
    still running is left alone: it is about to be renamed. (Should the pid
    have been reused, the file just waits for a later cleanup.)
    """
    stale = []
    for entry in os.scandir(directory):
        writer = files.writer_pid(entry.name) if entry.name.startswith(".") else None
        if writer is not None and not psutil.pid_exists(writer):
            stale.append(Path(entry.path))
    return sorted(stale)


@contextmanager
def file_lock(path: Path, shared: bool = False, blocking: bool = True):
    """Hold flock(2) on path (created if missing) for the with-block.

    Yields True when the lock is held; with blocking=False yields False
    instead of waiting when someone else holds it.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        op = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        if not blocking:
            op |= fcntl.LOCK_NB
        try:
            fcntl.flock(fd, op)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the last fd drops the lock


def walk_sorted(top: Path):
    """Every path under `top`, sorted by name, each directory before its
    contents, sockets left out (they cannot be archived and mean nothing in
    an image; docker skips them too). The order of a layer's tar entries:
    the same tree gives the same bytes."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            if not path.is_socket():
                yield path
