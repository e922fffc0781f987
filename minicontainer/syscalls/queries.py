"""Read-only questions to the kernel: they change nothing, so they are not
narrated (the kernel's version, a link, whether a call exists, a
capability in the bounding set; iptables' rules: programs.py)."""

import ctypes
import errno
import os

from .flags import SYS_MOUNT_SETATTR
from .libc import libc
from .optional import prctl


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel, e.g. (6, 8) for "6.8.0-45-generic"."""
    parts = (release or os.uname().release).split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def link_exists(ifname: str) -> bool:
    """Is there a network interface `ifname` in our network namespace? (read
    only; asked with an ioctl, which answers for the namespace we are in,
    unlike /sys/class/net, which shows the one /sys was mounted in)"""
    import socket   # only the network code asks (why here: programs.py)
    try:
        socket.if_nametoindex(ifname)
        return True
    except OSError:
        return False


def has_mount_setattr() -> bool:
    """Does this kernel have mount_setattr(2) (Linux 5.12)? A call with a
    bad size answers EINVAL if it does, ENOSYS if not; it changes nothing."""
    result = libc().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(-1), None,
                             ctypes.c_uint(0), None, ctypes.c_size_t(0))
    return result == 0 or ctypes.get_errno() != errno.ENOSYS


def in_bounding_set(number: int) -> bool:
    """Is capability `number` in this process's bounding set? (PR_CAPBSET_READ)"""
    try:
        return bool(prctl().capbset_read(number))
    except (OSError, ValueError):
        return False
