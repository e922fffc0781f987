"""Whiteouts: how a layer deletes what the layers below it hold.

An OCI layer (image-spec layer.md, "Whiteouts") says so with names:
`.wh.NAME` hides NAME of the lower layers, `.wh..wh..opq` in a directory
hides everything the lower layers have in it. overlayfs, which stacks the
layers when a container runs, reads other forms; extract.py turns the one
into the other here, once, as a layer is unpacked, so that running a
container is a plain overlay mount. (build/layer.py goes the other way.)

With root:
- `.wh.NAME`      -> a character device 0/0 named NAME (hides NAME below);
- `.wh..wh..opq`  -> xattr trusted.overlay.opaque=y on the directory (hides
                     everything below it from lower layers), whatever the
                     order of the entries.

Without root (runtime/rootless.py) mknod and trusted.* xattrs are refused,
and the overlay is mounted in a user namespace with `userxattr`, which
reads user.overlay.* instead. So the layer gets overlayfs' other form
(Documentation/filesystems/overlayfs.rst, "Whiteouts and opaque
directories", Linux >= 6.7):
- `.wh.NAME`      -> an empty regular file NAME with xattr
                     user.overlay.whiteout, its directory marked
                     user.overlay.opaque=x ("holds such whiteouts");
- `.wh..wh..opq`  -> user.overlay.opaque=y on the directory.

A whiteout never hides an entry of its own layer (layer.md: whiteouts apply
only to lower layers), so NAME in the same layer wins over `.wh.NAME`
(extract.py checks that before it calls make_whiteout).
"""

import os

from .. import syscalls as sc
from ..errors import NotRoot

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
USER_OPAQUE_XATTR = "user.overlay.opaque"       # without root (userxattr)
USER_WHITEOUT_XATTR = "user.overlay.whiteout"
XATTR_WHITEOUT_KERNEL = (6, 7)                  # overlayfs reads xattr whiteouts from 6.7 on


def mark_opaque(fd: int, privileged: bool) -> None:
    """The directory `fd` holds hides everything the lower layers have in it."""
    if privileged:
        os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
        return
    # Without root: whiteouts already made in it are moot now (it hides
    # everything below), and an opaque ("y") directory's whiteout files would
    # show as empty files: remove them.
    os.setxattr(fd, USER_OPAQUE_XATTR, b"y")
    for name in os.listdir(fd):
        try:   # (getxattr takes no dir_fd: reach the entry through the fd's /proc link)
            os.getxattr(f"/proc/self/fd/{fd}/{name}", USER_WHITEOUT_XATTR, follow_symlinks=False)
        except OSError:
            continue
        os.unlink(name, dir_fd=fd)


def make_whiteout(kernel: sc.KernelApi, parent: int, hidden: str, entry: str, privileged: bool) -> None:
    """`hidden`, in the directory `parent` holds, hides the lower layers' entry of that name."""
    if privileged:
        kernel.mknod_at(parent, hidden, "c", 0, 0, 0o000,
                        f"Whiteout {entry}: overlayfs hides a lower {hidden} behind a 0:0 "
                        "character device")
        return
    if sc.kernel_version() < XATTR_WHITEOUT_KERNEL:
        raise NotRoot("the layer deletes files (whiteouts); without root minict stores them "
                      "as overlayfs xattr whiteouts, which need Linux >= 6.7, and this "
                      f"kernel is {os.uname().release}", "run minict as root (sudo)")
    try:
        if os.getxattr(parent, USER_OPAQUE_XATTR) == b"y":
            return   # an opaque directory hides everything below already
    except OSError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(hidden, flags, 0o600, dir_fd=parent)
    try:
        os.setxattr(fd, USER_WHITEOUT_XATTR, b"")
    finally:
        os.close(fd)
    os.setxattr(parent, USER_OPAQUE_XATTR, b"x")
