"""A recording kernel that really makes files and directories, for the
root filesystem logic (no root needed: it all happens in a test's temp tree).

minict creates each mount point through a handle held open on its parent
(`/proc/self/fd/N/name`) and mounts onto `/proc/self/fd/N`
(rootfs.mountpoint, CVE-2021-30465). The directories must therefore exist
for the next step to open them, and a recorded `/proc/self/fd/N` says
nothing once N is closed. TreeKernel does mkdir and write_file for real,
records everything else as RecordingKernel does, and records each path as
the place it names at the moment of the call, which is where the kernel
would have put the mount.
"""

import os

from minicontainer import syscalls as sc

MADE_FOR_REAL = ("_do_mkdir", "_do_write_file")


def where(path):
    """The real path behind /proc/self/fd/N[/rest], read while N is open."""
    if not isinstance(path, str) or not path.startswith("/proc/self/fd/"):
        return path
    number, _, rest = path[len("/proc/self/fd/"):].partition("/")
    held = os.readlink(f"/proc/self/fd/{number}")
    return os.path.join(held, rest) if rest else held


class TreeKernel(sc.RecordingKernel):
    def __getattribute__(self, name):
        if not name.startswith("_do_"):
            return super().__getattribute__(name)
        record = super().__getattribute__(name)
        real = getattr(type(self), name).__get__(self) if name in MADE_FOR_REAL else None

        def call(*args):
            # symlink's first argument is the link's text, not a place: kept as written
            # (/dev/stdin -> /proc/self/fd/0 must not turn into this test's own stdin)
            kept = 1 if name == "_do_symlink" else 0
            record(*args[:kept], *[where(a) for a in args[kept:]])
            if real:
                real(*args)
        return call
