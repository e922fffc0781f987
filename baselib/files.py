"""Writing a file so that a crash leaves either the old one or the new one.

The data goes to a temporary name in the same directory, which is then
renamed over the real name: rename(2) is atomic, so a reader sees the old
file or the new one, never half of one. The temporary name is made with
O_EXCL (tempfile.mkstemp), so no other writer, and no symlink planted
there, can be written through; it carries the writer's pid, so a cleanup
can tell a temp file whose writer died before the rename (stale_temp_files)
from one still being written.
"""

import os
import tempfile
from pathlib import Path

TEMP_MARK = ".tmp-"   # temp files are named .<name>.tmp-<writer pid>-<random>


def atomic_write(path, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data`, whole or not at all.

    `durable` fsyncs the data before the rename, so that even a power cut
    cannot leave the new name pointing at empty blocks; files that only
    matter while the machine is up (a running container's pid) skip it.
    On failure the temp file is removed and the error raised.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())  # the rename must not land before the data
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def writer_pid(temp_name: str) -> int | None:
    """The pid of the writer of an atomic_write temp file, from its name."""
    _, mark, rest = temp_name.partition(TEMP_MARK)
    pid = rest.split("-", 1)[0]
    return int(pid) if mark and pid.isdigit() else None
