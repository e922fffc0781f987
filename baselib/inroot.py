"""Opening a path inside a directory tree as if that tree were `/`.

A container's root filesystem, or a fake host tree in a test, is full of
symlinks written for the machine they belong to: `/lib -> usr/lib`,
`/etc/mtab -> /proc/self/mounts`, or, in a hostile image,
`/data -> ../../../../etc`. Resolved by the host's kernel from the host's `/`,
an absolute or climbing link leads out of the tree, and a runtime that
writes or mounts there writes on the host (CVE-2021-30465 in runc, the
"symlink then write through it" family in image extractors).

openat2(2) (Linux 5.6) lets the kernel resolve a path inside a directory:

- RESOLVE_IN_ROOT: every component as if the directory were `/` (an
  absolute symlink restarts there, `..` stops there). For mount points and
  for hpcshim's host tree: symlinks are followed, but never out.
- RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: no symlink at all, anywhere on the
  path (ELOOP). For the layer extractor: nothing may be written through a
  symlink, wherever it points.
- RESOLVE_NO_MAGICLINKS in both: /proc/self/fd/N-style links, which jump
  anywhere, are refused.

The kernel resolves the whole path in one call, so nothing renamed in the
tree meanwhile can move the answer outside it. Kernels without openat2 get
the same walk done here, one component at a time with O_NOFOLLOW.

This module and minicontainer/syscalls.py are the two that call the kernel
through ctypes; this one is shared with hpcshim, which must not import
minicontainer.
"""

import ctypes
import errno
import os
import stat
import struct

SYS_OPENAT2 = 437            # the same on every architecture (the shared table, Linux 5.6)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
MAX_SYMLINKS = 40            # the kernel's own limit on links followed in one lookup

_openat2_missing = False     # set once the kernel has said ENOSYS


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, *,
                 follow_symlinks: bool = True) -> int:
    """Open `path` inside the directory `root_fd` refers to, as if it were `/`.

    follow_symlinks: symlinks are followed but stay inside (RESOLVE_IN_ROOT);
    otherwise any symlink on the path fails with ELOOP. Returns a new
    close-on-exec fd; raises OSError (FileNotFoundError, NotADirectoryError,
    ELOOP...) as openat would.
    """
    flags |= os.O_CLOEXEC
    relative = path.lstrip("/") or "."
    global _openat2_missing
    if not _openat2_missing:
        resolve = RESOLVE_NO_MAGICLINKS | (RESOLVE_IN_ROOT if follow_symlinks
                                           else RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)
        try:
            return _openat2(root_fd, relative, flags, resolve)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise
            # ENOSYS: a kernel before 5.6; EPERM: a seccomp filter that does
            # not know the call. Walk instead, from now on.
            _openat2_missing = True
    return _walk(root_fd, relative, flags, follow_symlinks)


def resolve_in_root(root: str, path: str) -> str | None:
    """The path inside `root` that `path` finally names, following symlinks
    as if `root` were `/` (e.g. "/usr/lib/libcuda.so.550"); None when it does
    not exist, a link dangles or loops."""
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = open_in_root(root_fd, path)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    top = os.path.realpath(root)
    if top == "/":
        return real
    inside = os.path.relpath(real, top)
    return "/" if inside == "." else "/" + inside


# ---- openat2 --------------------------------------------------------------------------

_LIBC = None


def _openat2(dirfd: int, path: str, flags: int, resolve: int) -> int:
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    # struct open_how { __u64 flags; __u64 mode; __u64 resolve; }
    how = struct.pack("=QQQ", flags, 0, resolve)
    fd = _LIBC.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dirfd), os.fsencode(path),
                       ctypes.c_char_p(how), ctypes.c_size_t(len(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


# ---- the same walk, for kernels without openat2 -------------------------------------------

def _walk(root_fd: int, path: str, flags: int, follow_symlinks: bool) -> int:
    """One component at a time, each opened with O_NOFOLLOW relative to the
    directory before it. A symlink is spliced into the rest of the path
    (an absolute one restarts from the root) or, without follow_symlinks,
    refused with ELOOP; `..` never climbs above the root."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    stack = [os.dup(root_fd)]          # directories from the root down
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            if stat.S_ISLNK(_lstat_mode(stack[-1], part)):
                if not follow_symlinks:
                    raise OSError(errno.ELOOP, f"{part} is a symlink", path)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=stack[-1])
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            # O_NOFOLLOW: should the name have become a symlink since the
            # look above, the open fails (ELOOP) rather than follow it.
            opening = flags if not pending else os.O_PATH | os.O_DIRECTORY
            fd = os.open(part, opening | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            if not pending:
                if stat.S_ISLNK(os.fstat(fd).st_mode):   # O_PATH opens a symlink itself
                    os.close(fd)
                    raise OSError(errno.ELOOP, f"{part} turned into a symlink", path)
                return fd
            stack.append(fd)
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def _lstat_mode(dir_fd: int, name: str) -> int:
    """The file type bits of `name` in `dir_fd`, or 0 when it does not exist
    (the open that follows reports that)."""
    try:
        return os.lstat(name, dir_fd=dir_fd).st_mode
    except FileNotFoundError:
        return 0
