"""An image unpacked to a directory for ch-run, once, in hpcshim's cache.

    <cache>/images/<config digest hex>/     the root filesystem ch-run gets

ch-run runs only a directory. umoci does the unpacking (it applies the layers
in order, honours whiteouts and opaque directories, and refuses paths that
leave the root): hpcshim gives it a minimal OCI layout holding the one image
(layout.write_layout) and takes the `rootfs` of the bundle it makes.

Crash safety and concurrency (every rank of a job may start at once, on a
shared home): everything is built in a temporary directory in the same
parent, `.tmp-<host>-<pid>-XXXX`, and the finished tree is renamed to its
final name in one rename(2). A directory under its final name is therefore
always complete. When two processes race, both unpack, the first rename
wins, and the second finds the name taken (ENOTEMPTY/EEXIST), deletes its
own copy and uses the winner's. A process killed mid-unpack leaves its
temporary directory; the next unpack on that host removes those whose
process is gone (the host name keeps a shared cache from reaping another
node's work in progress).
"""

import errno
import os
import shutil
import socket
import stat
import subprocess
import tempfile

from ..errors import ConversionFailed, NotAnImage, ToolNotFound
from .layout import TAG, Image, write_layout


def cached_rootfs(cache: str, digest: str) -> str:
    return os.path.join(cache, "images", digest.split(":", 1)[1])


def unpack(image: Image, cache: str, env: dict[str, str]) -> tuple[str, bool]:
    """(the image's directory, True if it was already there)."""
    final = cached_rootfs(cache, image.config_digest)
    if os.path.isdir(final):
        return final, True
    umoci = shutil.which("umoci", path=env.get("PATH", os.defpath))
    if umoci is None:
        raise ToolNotFound("ch-run needs the image unpacked, and umoci (which unpacks it) is not on PATH",
                           hint="install umoci, or unpack it yourself (ch-convert IMAGE DIR) and pass DIR")
    with building(os.path.dirname(final)) as work:
        layout = os.path.join(work, "layout")
        try:
            write_layout(image, layout)
        except KeyError as exc:          # TarSource: no such member
            raise NotAnImage(f"{image.source.label}: {exc.args[0]} is missing from the archive",
                             hint="the archive is incomplete; make it again") from exc
        bundle = os.path.join(work, "bundle")
        argv = [umoci, "unpack"] + (["--rootless"] if os.geteuid() != 0 else []) + \
            ["--image", f"{layout}:{TAG}", bundle]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ConversionFailed(f"umoci unpack of {image.config_digest} failed: {last.strip()}",
                                   hint="is the archive complete? is there disk space in the cache?")
        rootfs = os.path.join(bundle, "rootfs")
        add_mount_points(rootfs)
        return publish(rootfs, final), False


# What ch-run mounts over in every container (0.31: the host's /dev, /proc,
# /sys, /tmp, home, /etc/hosts, /etc/resolv.conf, /etc/passwd, /etc/group).
# It refuses to start when one is missing, and a minimal image (FROM scratch)
# has none of them; Charliecloud's own unpack (ch-image, ch-convert) creates
# the same empty placeholders.
MOUNT_DIRS = ("dev", "proc", "sys", "tmp", "home", "mnt")
MOUNT_FILES = ("etc/hosts", "etc/resolv.conf", "etc/passwd", "etc/group")


def add_mount_points(rootfs: str) -> None:
    for rel in MOUNT_DIRS + MOUNT_FILES:
        parent, _, _ = rel.rpartition("/")
        if parent and not _real_dir(os.path.join(rootfs, parent)):
            if os.path.lexists(os.path.join(rootfs, parent)):
                continue            # a symlink or file in the image: never write through it
            os.mkdir(os.path.join(rootfs, parent), 0o755)
        path = os.path.join(rootfs, rel)
        if os.path.lexists(path):
            continue
        if rel in MOUNT_DIRS:
            os.mkdir(path, 0o755)
            if rel == "tmp":
                os.chmod(path, 0o1777)      # mkdir's mode passes through the umask
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))


def _real_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


class building:
    """A temporary directory next to the result, removed on the way out
    whatever happens (an error, Ctrl-C): nothing half-made stays."""

    def __init__(self, parent: str):
        self.parent = parent

    def __enter__(self) -> str:
        os.makedirs(self.parent, mode=0o700, exist_ok=True)
        reap_abandoned(self.parent)
        self.path = tempfile.mkdtemp(prefix=f"{_TMP}{socket.gethostname()}-{os.getpid()}-", dir=self.parent)
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


_TMP = ".tmp-"


def publish(built: str, final: str) -> str:
    """Rename built to final; if another process got there first, use theirs."""
    try:
        os.rename(built, final)
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not os.path.isdir(final):
            raise ConversionFailed(f"cannot move the unpacked image to {final}: {exc.strerror}",
                                   hint="check the cache directory (HPCSHIM_CACHE_DIR)") from exc
    return final


def reap_abandoned(parent: str) -> None:
    """Remove temporary directories of this host's processes that no longer exist."""
    mine = f"{_TMP}{socket.gethostname()}-"
    for entry in os.listdir(parent):
        if not entry.startswith(mine):
            continue
        pid = entry[len(mine):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
