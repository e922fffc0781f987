"""COPY, ADD and WORKDIR: changing a stage's files without running a container.

The stage's layers are stacked as an overlayfs root with an empty upper
directory of its own, exactly as for a container, and the files are written
into that root. What lands in the upper directory is the change, and
layer.py turns it into a layer: one path for RUN and COPY alike.

Every path inside the root is resolved as if the root were `/`
(baselib.inroot: openat2 RESOLVE_IN_ROOT), so a destination that is a
symlink in the image (Debian's /bin -> usr/bin) is followed the way the
container would follow it, and one pointing at `/..` or an absolute host path
cannot lead the copy out of the root (CVE-2018-15664, docker cp).

The builder runs in a mount namespace of its own (builder.py), so these
mounts are never seen by the host and vanish with the builder if it dies.
"""

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from baselib.inroot import open_in_root

from .. import syscalls as sc
from ..errors import BuildFailed
from ..image.extract import LayerExtractor
from ..runtime.rootfs import mount_overlay


@dataclass
class Owner:
    uid: int = 0
    gid: int = 0


class Workbench:
    """An overlay root of the stage at `step_dir/merged`, while in a `with`."""

    def __init__(self, kernel: sc.Kernel, layer_dirs: list[str], step_dir: Path):
        self.kernel = kernel
        self.layer_dirs = layer_dirs
        self.dir = step_dir
        self.merged = step_dir / "merged"
        self.root_fd = -1

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    def __enter__(self):
        for name in ("upper", "work", "merged"):
            (self.dir / name).mkdir()
        mount_overlay(self.kernel, self.layer_dirs, str(self.dir), str(self.merged))
        self.root_fd = os.open(self.merged, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return self

    def __exit__(self, *exc):
        os.close(self.root_fd)
        self.kernel.umount2(str(self.merged), 0, "The step's files are written: unmount its root")

    # ---- directories --------------------------------------------------------------------

    def is_dir(self, path: str) -> bool:
        try:
            fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return False
        os.close(fd)
        return True

    def make_dirs(self, path: str, owner: Owner) -> int:
        """An O_PATH fd of the directory `path` in the root, made (with its
        missing parents, mode 755) where it does not exist."""
        fd = os.dup(self.root_fd)
        done = "/"
        for part in [p for p in path.split("/") if p]:
            done = os.path.join(done, part)
            try:
                new = open_in_root(self.root_fd, done, os.O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, owner.uid, owner.gid, dir_fd=fd, follow_symlinks=False)
                new = open_in_root(self.root_fd, done, os.O_PATH | os.O_DIRECTORY)
            except NotADirectoryError:
                os.close(fd)
                raise BuildFailed(f"{done} is a file in the image, not a directory",
                                  "copy to another destination") from None
            os.close(fd)
            fd = new
        return fd

    # ---- copies -------------------------------------------------------------------------

    def copy(self, source: Path, dir_fd: int, name: str, owner: Owner | None, walk=None) -> None:
        """Copy `source` (file, symlink or directory tree) as `name` in the
        directory dir_fd. `owner` None: keep the source's owner (COPY --from
        a stage); `walk`: how to list a directory (the context skips ignored files)."""
        st = source.lstat()
        ids = (st.st_uid, st.st_gid) if owner is None else (owner.uid, owner.gid)
        if stat.S_ISDIR(st.st_mode):
            try:
                os.mkdir(name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
            except FileExistsError:
                pass
            sub = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            try:
                for child in (walk(source) if walk else sorted(source.iterdir())):
                    self.copy(child, sub, child.name, owner, walk)
            finally:
                os.close(sub)
        else:
            self._remove_non_directory(dir_fd, name)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(source), name, dir_fd=dir_fd)
            elif stat.S_ISREG(st.st_mode):
                self._copy_file(source, dir_fd, name, stat.S_IMODE(st.st_mode))
            else:
                return      # devices, fifos, sockets: not copied (docker refuses devices too)
        os.chown(name, *ids, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dir_fd, follow_symlinks=False)

    @staticmethod
    def _remove_non_directory(dir_fd: int, name: str) -> None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise BuildFailed(f"cannot copy a file over the directory {name}",
                              "copy into it: end the destination with /")
        os.unlink(name, dir_fd=dir_fd)

    @staticmethod
    def _copy_file(source: Path, dir_fd: int, name: str, mode: int) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode, dir_fd=dir_fd)
        with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def extract_tar(self, archive: Path, dest: str, owner: Owner) -> None:
        """ADD of a local tar: unpacked into dest by the same hardened
        extractor as image layers (no `..`, no absolute paths, no links out)."""
        fd = self.make_dirs(dest, owner)
        try:
            # The directory found inside the root, used through its fd: never
            # its path again, which a symlink could send elsewhere.
            with tarfile.open(archive) as tar, LayerExtractor(dest, dest_fd=fd) as extractor:
                extractor.extract_all(tar)
        except tarfile.TarError as exc:
            raise BuildFailed(f"{archive.name}: not a tar archive minict can unpack ({exc})",
                              "ADD unpacks plain, gzip, bzip2 and xz tars") from None
        finally:
            os.close(fd)


def is_tar_archive(path: Path) -> bool:
    """ADD unpacks a local file that is a tar archive (maybe compressed)."""
    return path.is_file() and not path.is_symlink() and tarfile.is_tarfile(path)
