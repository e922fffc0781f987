"""The container's root filesystem: overlayfs, bind mounts, pivot_root.

Runs inside the container's new mount namespace (see child.py), so every
mount made here vanishes with the container: nothing is mounted in the
host's namespace, and a SIGKILL cannot leave a mount behind.

- The root is an overlay (Documentation/filesystems/overlayfs.rst): the
  image's layer directories are the read-only `lowerdir` (top layer first),
  and the container's own `upperdir` receives every write, so containers
  of one image never see each other's changes and creating one costs the
  same whatever the image's size.
- Mount destinations are resolved inside the root by the kernel, following
  the image's symlinks as if the root were `/` (openat2 RESOLVE_IN_ROOT,
  baselib.inroot): an image whose /etc is a symlink to
  `../../../../host/etc` cannot make minict mount over a host path (runc
  uses filepath-securejoin for the same reason). Each mount point is then
  mounted on through its file descriptor (`mountpoint`), so that nothing
  swapped in after the lookup can redirect the mount: runc's CVE-2021-30465.
- `pivot_root` (never chroot: a chroot can be escaped with a second chroot
  and `..`) swaps the root of the mount namespace, then the old root is
  detached so the host's filesystem is unreachable.
"""

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from baselib.inroot import MAX_SYMLINKS, open_in_root, resolve_in_root

from .. import syscalls as sc
from ..errors import RunFailed

# mount(2) copies its data argument into one page; overlay's option string
# must fit, including the terminating NUL.
MOUNT_DATA_MAX = 4095


def _escape(path: str) -> str:
    """overlayfs splits its options on ',' and lowerdir on ':'; escape both."""
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def overlay_options(lowers_top_first: list[str], upper: str, work: str) -> str:
    return (f"lowerdir={':'.join(_escape(p) for p in lowers_top_first)},"
            f"upperdir={_escape(upper)},workdir={_escape(work)}")


def mount_overlay(kernel: sc.Kernel, layer_dirs: list[str], record_dir: str, target: str,
                  nodev: bool = False, userxattr: bool = False) -> None:
    """Mount the container's root at `target` (layer_dirs: bottom first, as the store lists them).
    `nodev`: device nodes on it cannot be opened (device_access.py's fallback).
    `userxattr`: in a user namespace (rootless.py) overlayfs may not use its
    trusted.overlay.* xattrs; it reads and writes user.overlay.* instead."""
    lowers = list(reversed(layer_dirs))   # overlay wants the top layer first
    if not lowers:
        # An image with no layers: overlay still needs one lower directory.
        empty = os.path.join(record_dir, "empty-lower")
        if not os.path.isdir(empty):
            kernel.mkdir(empty, 0o755, "The image has no layers; give overlayfs an empty lower directory")
        lowers = [empty]
    upper = os.path.join(record_dir, "upper")
    work = os.path.join(record_dir, "work")
    options = overlay_options(lowers, upper, work)
    suffix = ",userxattr" if userxattr else ""
    if len(options) + len(suffix) > MOUNT_DATA_MAX:
        options = _short_overlay_options(kernel, lowers, record_dir)
    options += suffix
    try:
        kernel.mount("overlay", target, "overlay", sc.MS_NODEV if nodev else 0, options,
                     f"Stack the image's {len(layer_dirs)} layer(s) (read-only, top first) under "
                     f"the container's own upper directory (where its writes go)"
                     + (", nodev: no device node in the image or made later can be opened"
                        if nodev else ""))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        if userxattr:
            raise RunFailed("overlayfs refused the container's root in a user namespace "
                            "(option userxattr)", "this needs Linux >= 5.11, and the store on a "
                            "local filesystem (ext4, xfs, btrfs, tmpfs); or run minict as "
                            "root") from None
        raise _overlay_refused(upper) from None


# overlayfs's writable (upper) layer needs d_type, trusted.* xattrs and
# RENAME_WHITEOUT from its filesystem (Documentation/filesystems/overlayfs.rst,
# "Upper and Lower"): these filesystems lack one or more of them.
NO_UPPER_LAYER = {"overlay", "9p", "nfs", "nfs4", "cifs", "smb3", "vfat", "exfat", "fuse",
                  "fuseblk", "virtiofs", "squashfs", "iso9660", "ecryptfs"}


def _overlay_refused(upper: str) -> RunFailed:
    """The error for an overlay mount refused with EINVAL, naming the
    filesystem under the upper directory (the usual reason)."""
    fstype = filesystem_of(upper)
    fix = "put minict's store on a local filesystem such as ext4, xfs, btrfs or tmpfs " \
          "(--root or MINICT_ROOT)"
    if fstype in NO_UPPER_LAYER or fstype.startswith("fuse."):
        return RunFailed(f"the container's writable layer would be on {fstype} ({upper}), which "
                         f"overlayfs cannot use for it", fix)
    return RunFailed(f"overlayfs refused the container's root (Invalid argument); its writable "
                     f"layer is on {fstype} ({upper})", f"the kernel log (dmesg) says why; or {fix}")


def filesystem_of(path: str) -> str:
    """The type of the filesystem holding `path` (/proc/self/mountinfo's
    line whose device numbers match the path's), or "unknown"."""
    try:
        device = os.stat(path).st_dev
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return "unknown"
    wanted = f"{os.major(device)}:{os.minor(device)}"
    for line in reversed(lines):          # the last mount of a device is the one on top
        fields = line.split()
        if fields[2] == wanted:
            return fields[fields.index("-") + 1]
    return "unknown"


def _short_overlay_options(kernel, lowers, record_dir) -> str:
    """Many-layer images: the absolute paths do not fit in mount(2)'s one
    page. Do what docker's overlay2 driver does: make short symlinks to
    the layers (lower/0, lower/1, ...), change into the container's
    directory, and give overlayfs relative paths, which it resolves
    against the current directory at mount time."""
    links = os.path.join(record_dir, "lower")
    if not os.path.isdir(links):
        kernel.mkdir(links, 0o755, "Too many layers for one mount(2) page: make short links to them")
    names = []
    for index, layer in enumerate(lowers):
        link = os.path.join(links, str(index))
        if os.path.islink(link) and os.readlink(link) == layer:
            names.append(f"lower/{index}")
            continue
        if os.path.lexists(link):
            os.unlink(link)
        kernel.symlink(layer, link, f"Short name for layer {index} (counted from the top)")
        names.append(f"lower/{index}")
    kernel.chdir(record_dir, "Work from the container's directory so the layer paths can be relative")
    options = overlay_options(names, "upper", "work")
    if len(options) > MOUNT_DATA_MAX:
        raise RunFailed(f"the image has {len(lowers)} layers, too many for one overlay mount",
                        "flatten the image into fewer layers")
    return options


# ---- resolving paths inside the root ---------------------------------------------------------

# A handle on one place in the tree: O_PATH opens it for neither reading
# nor writing (so it works on any file, and has no side effects), and
# O_NOFOLLOW makes a symlink's handle the link itself, never its target.
PLACE = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def mountpoint(kernel: sc.Kernel, root: str, destination: str, directory: bool) -> Iterator[str]:
    """The path to give mount(2) for `destination`: /proc/self/fd/N, where
    N is a handle on the mount point, held open while the mount is made.

    Why not the path itself? The kernel would walk it again inside
    mount(2), and in between a process in another container that shares a
    volume on the way could swap one of its directories for a symlink to
    anywhere on the host: runc's symlink-exchange race, CVE-2021-30465. A
    handle names the directory itself, not a path to it; mount(2) on
    /proc/self/fd/N lands exactly there, whatever is renamed meanwhile.
    (/proc here is still the host's: this runs before pivot_root.)
    """
    fd = open_mountpoint(kernel, root, destination, directory)
    try:
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def open_mountpoint(kernel: sc.Kernel, root: str, destination: str, directory: bool) -> int:
    """A handle (an O_PATH fd, for the caller to close) on `destination`
    inside `root`, creating what is missing: the parent directories and the
    mount point itself (a directory, or an empty file for a file bind).
    Writes land in the container's upper layer (or in a volume on the way),
    never in the image, and never outside the root.

    The image's symlinks are followed as if the root were `/` (an image
    whose /etc links to `../../../../host/etc` gets the root's own /etc), by
    the kernel, in one call (baselib.inroot: openat2 RESOLVE_IN_ROOT), so
    nothing swapped in meanwhile can lead the answer out of the root.
    """
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_or_create(kernel, root_fd, "/" + destination.lstrip("/"), directory,
                             destination, links=0)
    finally:
        os.close(root_fd)
    if stat.S_ISDIR(os.fstat(fd).st_mode) != directory:
        os.close(fd)
        kind = "directory" if directory else "file"
        raise RunFailed(f"cannot mount a {kind} on {destination}: the image has a "
                        f"{'file' if directory else 'directory'} there", "choose another destination")
    return fd


def _open_or_create(kernel, root_fd: int, path: str, directory: bool, destination: str,
                    links: int) -> int:
    """A handle on `path` inside the root, made first if it is missing.

    When it is missing, its parent is opened the same way (and made if
    missing too), then the name is looked at there: nothing (make it), or
    a symlink that leads nowhere yet, such as an image's
    /etc/resolv.conf -> /run/systemd/resolve/stub-resolv.conf: then what
    the link names is made instead, as docker does.
    """
    try:
        return kernel.open_in_root(root_fd, path, f"Find {path} inside the new root, its symlinks "
                                                  f"resolved as if that root were / "
                                                  f"(CVE-2021-30465); mount through the handle")
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        raise not_a_directory(_first_non_directory(root_fd, path), destination) from None
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise RunFailed(f"too many symlinks resolving {destination} in the image",
                        "the image has a symlink loop") from None
    parent, name = os.path.split(path)
    parent_fd = _open_or_create(kernel, root_fd, parent, True, destination, links)
    try:
        try:
            mode = os.lstat(name, dir_fd=parent_fd).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and stat.S_ISLNK(mode):
            if links >= MAX_SYMLINKS:
                raise RunFailed(f"too many symlinks resolving {destination} in the image",
                                "the image has a symlink loop")
            target = os.readlink(name, dir_fd=parent_fd)
            followed = target if target.startswith("/") else f"{parent.rstrip('/')}/{target}"
            return _open_or_create(kernel, root_fd, followed, directory, destination, links + 1)
        if mode is None:
            _create(kernel, parent_fd, name, path, directory, destination)
        try:
            fd = os.open(name, PLACE, dir_fd=parent_fd)
        except FileNotFoundError:   # removed again, just after it was made
            raise _changed_meanwhile(f"{path} vanished", destination) from None
    finally:
        os.close(parent_fd)
    if stat.S_ISLNK(os.fstat(fd).st_mode):
        os.close(fd)
        raise _changed_meanwhile(f"{path} turned into a symlink", destination,
                                 "refusing to follow it (CVE-2021-30465)")
    return fd


def _create(kernel, parent_fd: int, name: str, shown: str, directory: bool,
            destination: str) -> None:
    """Make the mount point `name` in the directory `parent_fd` holds
    (`shown`: its path in the container), through the held handle."""
    place = f"/proc/self/fd/{parent_fd}/{name}"
    try:
        if directory:
            kernel.mkdir(place, 0o755, f"Create {shown} in the container (for a mount)")
        else:
            kernel.write_file(place, b"", 0o644,
                              f"Create an empty file in the container to mount {destination} onto")
    except FileExistsError:
        pass   # made by someone else meanwhile: opened and looked at like any other
    except FileNotFoundError:   # the directory held open was deleted meanwhile
        raise _changed_meanwhile(f"{os.path.dirname(shown)} vanished", destination) from None
    except OSError as exc:
        if exc.errno != errno.EROFS:
            raise
        raise RunFailed(f"cannot create {shown} to mount {destination} on: "
                        f"{os.path.dirname(shown)} is read-only",
                        "create it in the volume's source first, or mount that volume "
                        "read-write") from None


def _first_non_directory(root_fd: int, path: str) -> str:
    """The shallowest ancestor of `path` that is not a directory (for the error)."""
    parts = [p for p in path.split("/") if p]
    for depth in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:depth])
        try:
            fd = open_in_root(root_fd, ancestor)
        except OSError:
            return ancestor
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        os.close(fd)
        if not is_dir:
            return ancestor
    return os.path.dirname(path)


def path_in_root(root: str, path: str) -> str:
    """The host's path for `path` inside `root`, its directory resolved as if
    `root` were `/`. Only for places no other process can reach: the /dev
    tmpfs minict has just mounted in its own mount namespace."""
    directory = resolve_in_root(root, os.path.dirname(path)) or os.path.dirname(path)
    return os.path.join(root, directory.lstrip("/"), os.path.basename(path))


def _changed_meanwhile(change: str, destination: str, then: str = "giving up") -> RunFailed:
    """The tree changed between two steps: only another process can have done
    that, typically one in a container that shares a volume on the way."""
    return RunFailed(f"{change} while minict was mounting {destination}: {then}",
                     "something is changing that directory, perhaps another container "
                     "sharing the volume; try again once it stops")


def not_a_directory(parent: str, path: str) -> RunFailed:
    return RunFailed(f"cannot use {path} in the container: {parent} is not a directory there",
                     "choose another destination")


# ---- bind mounts, tmpfs, read-only root --------------------------------------------------------

def bind_mount(kernel: sc.Kernel, root: str, source: str, destination: str, readonly: bool,
               why: str, nodev: bool = False) -> None:
    """Make host `source` visible at `destination` inside the root
    (`nodev`: device nodes in it cannot be opened; device_access.py)."""
    if not os.path.exists(source):
        raise RunFailed(f"bind source {source} does not exist", "create it, or fix the path")
    directory = os.path.isdir(source)
    if (readonly or nodev) and sc.has_mount_setattr():
        # The flags are set on the bind before it is attached (the new mount
        # API): nothing swapped in at the destination meanwhile can receive
        # them instead (CVE-2021-30465's race, on the second step).
        with mountpoint(kernel, root, destination, directory) as target:
            kernel.bind_with_attributes(source, target, readonly, nodev,
                                        why + (", nodev, with every mount below it" if nodev
                                               else ""))
        return
    # Kernels before 5.12 (no mount_setattr): bind, then remount to change
    # its flags. A remount changes one mount only, so a nodev bind leaves its
    # submounts out.
    with mountpoint(kernel, root, destination, directory) as target:
        kernel.mount(source, target, None, sc.MS_BIND | (0 if nodev else sc.MS_REC), None,
                     why if not nodev else why + " (its submounts left out: this kernel cannot "
                                                 "make them nodev)")
    if readonly or nodev:
        # A bind mount copies the source's per-mount flags; the remount must
        # repeat those it copied (nosuid, nodev...) or it would clear them.
        # The handle above is on the directory under the new mount; opened
        # again, the destination is the new mount's own root.
        flags = sc.MS_BIND | sc.MS_REMOUNT | preserved_flags(source)
        flags |= (sc.MS_RDONLY if readonly else 0) | (sc.MS_NODEV if nodev else 0)
        what = " and ".join(w for w, asked in (("read-only", readonly), ("nodev", nodev)) if asked)
        with mountpoint(kernel, root, destination, directory) as target:
            kernel.mount(None, target, None, flags, None, f"Make {destination} {what}")


def preserved_flags(path: str) -> int:
    """The per-mount flags of the mount holding `path`, as MS_* bits."""
    st_flags = os.statvfs(path).f_flag
    mapping = [(os.ST_RDONLY, sc.MS_RDONLY), (os.ST_NOSUID, sc.MS_NOSUID), (os.ST_NODEV, sc.MS_NODEV),
               (os.ST_NOEXEC, sc.MS_NOEXEC), (os.ST_NOATIME, sc.MS_NOATIME),
               (os.ST_NODIRATIME, sc.MS_NODIRATIME), (os.ST_RELATIME, sc.MS_RELATIME)]
    return sum(ms for st, ms in mapping if st_flags & st)


TMPFS_FLAGS = {"ro": sc.MS_RDONLY, "noexec": sc.MS_NOEXEC, "nosuid": sc.MS_NOSUID, "nodev": sc.MS_NODEV}


def mount_tmpfs(kernel: sc.Kernel, root: str, destination: str, options: str,
                nodev: bool = False) -> None:
    """--tmpfs (`nodev`: whatever its options say; device_access.py's fallback)."""
    flags, data = sc.MS_NODEV if nodev else 0, []
    for opt in [o for o in options.split(",") if o]:
        if opt in TMPFS_FLAGS:
            flags |= TMPFS_FLAGS[opt]
        elif opt not in ("rw", "exec", "suid", "dev"):
            data.append(opt)
    with mountpoint(kernel, root, destination, True) as target:
        kernel.mount("tmpfs", target, "tmpfs", flags, ",".join(data) or None,
                     f"A fresh tmpfs at {destination} (--tmpfs): memory-backed, gone when the "
                     f"container stops")


def pivot(kernel: sc.Kernel, new_root: str) -> None:
    """Make `new_root` the root, and detach the host's root from this namespace.

    pivot_root(".", ".") (the trick runc uses) needs no put_old directory:
    the old root ends up stacked on top of the new one at "/", and the
    umount2 with MNT_DETACH takes it away.
    """
    kernel.chdir(new_root, "Go into the new root")
    kernel.pivot_root(".", ".", "Swap the root of this mount namespace for the container's "
                                "(the old root is stacked on top of it)")
    kernel.umount2(".", sc.MNT_DETACH, "Detach the old root, the host's filesystem: from here "
                                       "on nothing in the container can reach it")
    kernel.chdir("/", "Stand at the new root")


def remount_root_readonly(kernel: sc.Kernel) -> None:
    flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | preserved_flags("/")
    kernel.mount(None, "/", None, flags, None,
                 "Make the container's root read-only (--read-only); volumes and tmpfs stay writable")
