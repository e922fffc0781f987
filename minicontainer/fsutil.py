"""Small file-system helpers that make the store crash- and concurrency-safe.

Two rules carry the whole design (DESIGN.md, "State on disk"):
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
from contextlib import contextmanager
from pathlib import Path

from .errors import DiskFull

CHUNK = 1 << 20  # 1 MiB reads: big enough to amortise syscalls, small enough for memory


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def raise_if_disk_full(exc: OSError, what: str):
    """Turn ENOSPC/EDQUOT into DiskFull with a hint; re-raise anything else."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFull(f"no space left on device while {what}",
                       "free some space (minict rmi unused images) and try again") from exc
    raise exc


TEMP_MARK = ".tmp-"   # atomic_write's temp files: .<name>.tmp-<writer pid>-<random>


def atomic_write(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write data to path so that a crash leaves either the old or the new file.

    `durable` fsyncs the data before the rename, so that even a power cut
    cannot leave the new name pointing at empty blocks; records that only
    matter while the machine is up (a running container's pid) skip it.
    """
    path = Path(path)
    # A name no other writer uses (pid + random; O_EXCL makes sure), made
    # here rather than by tempfile.mkstemp: `minict run` writes its records
    # through this function, and importing tempfile costs every start ~2 ms.
    # The writer's pid in the name lets a cleanup tell a temp file whose
    # writer was killed before the rename from one still being written.
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}")
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())  # the rename must not land before the data
            os.chmod(tmp, mode)
            os.rename(tmp, path)
        except OSError as exc:
            raise_if_disk_full(exc, f"writing {path}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stale_temp_files(directory: Path) -> list[Path]:
    """atomic_write temp files in `directory` whose writer has died.

    A SIGKILL between the write and the rename leaves the temp file behind;
    nothing ever reads it, so it is only litter. A temp file whose writer is
    still running is left alone: it is about to be renamed. (Should the pid
    have been reused, the file just waits for a later cleanup.)
    """
    stale = []
    for entry in os.scandir(directory):
        if not entry.name.startswith(".") or TEMP_MARK not in entry.name:
            continue
        writer = entry.name.rsplit(TEMP_MARK, 1)[1].split("-", 1)[0]
        if writer.isdigit() and not _running(int(writer)):
            stale.append(Path(entry.path))
    return sorted(stale)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)          # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True              # it exists, but belongs to someone else
    return True


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
