"""The C library through ctypes, for the calls Python's os module lacks
(mount, pivot_root, unshare, setns, the new mount API, bpf, clone with flags).

`libc()` is the C library with its argument types declared; `check()` turns
a -1 into OSError with the errno, the call and its arguments; `path_arg()`
makes a path a C string (None stays NULL).
"""

import ctypes
import os

_LIBC = None


def libc():
    global _LIBC
    if _LIBC is None:
        lib = ctypes.CDLL(None, use_errno=True)
        lib.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                              ctypes.c_ulong, ctypes.c_char_p]
        lib.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        lib.pivot_root.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.unshare.argtypes = [ctypes.c_int]
        lib.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        lib.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.syscall.restype = ctypes.c_long
        _LIBC = lib
    return _LIBC


def path_arg(value):
    if value is None:
        return None
    return os.fsencode(value)


def check(result: int, call: str, *args) -> int:
    if result < 0:
        err = ctypes.get_errno()
        shown = ", ".join(str(a) for a in args)
        raise OSError(err, f"{call}({shown}) failed: {os.strerror(err)}")
    return result
