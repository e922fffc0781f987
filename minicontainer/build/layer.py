"""A container's upper directory, turned into an image layer (a tar).

overlayfs records a change in the upper directory in its own way; the OCI
image spec ("layer.md", whiteouts) records it in another:

    overlayfs upper dir                        OCI layer tar
    a file, dir, link...                       the same entry
    char device 0:0 named X (X was deleted)    empty file .wh.X
    dir with xattr trusted.overlay.opaque=y    the dir, and .wh..wh..opq in it
    (its lower contents are hidden)

Deterministic: entries in sorted order, numeric owners only, no user or
group names, and every time clamped to the build's epoch (`epoch`, from
SOURCE_DATE_EPOCH, 0 when unset: files keep older times, newer ones get the
epoch). So building the same context twice gives the same bytes, hence the
same digests, even though RUN made its files at another time. gzip's own
header carries no name and time 0 for the same reason.

Left out: the empty files and directories minict's runtime made only to
mount onto (/etc/hosts, /proc...; docker keeps these in a separate "init"
layer that is never committed): what a RUN writes to /etc/hosts goes to the
container's own copy, not into the image, in docker too.
"""

import gzip
import os
import stat
import tarfile
from pathlib import Path

from ..fsutil import walk_sorted
from ..image.importer import layer_member
from ..image.whiteouts import OPAQUE_MARKER, WHITEOUT_PREFIX
from ..image.whiteouts import OVERLAY_OPAQUE_XATTR as OPAQUE_XATTR
# Mount points the runtime makes in a container's root (rootfs.py, mounts.py).
RUNTIME_MOUNT_POINTS = {"etc/hostname", "etc/hosts", "etc/resolv.conf", "proc", "sys", "dev"}
# gzip's level 6 (Go's and docker's default): level 9, Python's default, takes
# about twice as long for a few percent less, which a 1 GB layer of Python
# packages feels.
GZIP_LEVEL = 6


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def write_layer(upper: Path, dest: Path, epoch: int, lowers: list[Path] = ()) -> int:
    """Write upper's changes as a gzip'd layer tar at dest; returns the number
    of entries. `lowers`: the stage's layer dirs, bottom first (to tell a
    directory copied up only for a mount point from one really changed)."""
    count = 0
    with open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                          compresslevel=GZIP_LEVEL) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in walk_sorted(upper):
            rel = path.relative_to(upper).as_posix()
            st = path.lstat()
            if _is_placeholder(rel, st, path) or _only_holds_placeholders(rel, st, path, lowers):
                continue
            if is_whiteout(st):
                parent, name = os.path.split(rel)
                tar.addfile(_empty_file(os.path.join(parent, WHITEOUT_PREFIX + name), epoch))
                count += 1
                continue
            info = tar.gettarinfo(str(path), arcname=rel)
            _normalize(info, upper, epoch)
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
            count += 1
            if stat.S_ISDIR(st.st_mode) and _is_opaque(path):
                tar.addfile(_empty_file(f"{rel}/{OPAQUE_MARKER}", epoch))
                count += 1
    return count


def _is_placeholder(rel: str, st: os.stat_result, path: Path) -> bool:
    if rel not in RUNTIME_MOUNT_POINTS:
        return False
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    return stat.S_ISDIR(st.st_mode) and not any(path.iterdir())


def _only_holds_placeholders(rel: str, st: os.stat_result, path: Path, lowers) -> bool:
    """/etc, copied up by overlayfs only because the runtime made /etc/hosts
    in it: unchanged, so not part of the layer (its mode and owner are the
    ones the layers below give it)."""
    if not stat.S_ISDIR(st.st_mode) or _is_opaque(path):
        return False
    names = os.listdir(path)
    if not names or not all(_is_placeholder(f"{rel}/{name}", (path / name).lstat(), path / name)
                            for name in names):
        return False
    for lower in reversed(list(lowers)):
        try:
            below = (Path(lower) / rel).lstat()
        except FileNotFoundError:
            continue
        return (below.st_mode, below.st_uid, below.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    return False


def _is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _normalize(info: tarfile.TarInfo, upper: Path, epoch: int) -> None:
    """A layer member as `minict import` writes one (numeric ids, file
    capabilities kept), its time clamped to the epoch."""
    layer_member(upper, info)
    info.mtime = min(int(info.mtime), epoch)


def _empty_file(name: str, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    info.mtime = epoch
    return info
