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

def where(path):
    """The real path behind /proc/self/fd/N[/rest], read while N is open."""
    if not isinstance(path, str) or not path.startswith("/proc/self/fd/"):
        return path
    number, _, rest = path[len("/proc/self/fd/"):].partition("/")
    held = os.readlink(f"/proc/self/fd/{number}")
    return os.path.join(held, rest) if rest else held


class TreeKernel(sc.RecordingKernel):
    """Records like RecordingKernel, paths as the places they name; makes
    directories and files for real."""

    def _record(self, name, *args):
        # symlink's first argument is the link's text, not a place: kept as written
        # (/dev/stdin -> /proc/self/fd/0 must not turn into this test's own stdin)
        kept = 1 if name == "symlink" else 0
        super()._record(name, *args[:kept], *[where(a) for a in args[kept:]])

    def _do_mkdir(self, path, mode):
        super()._do_mkdir(path, mode)
        sc.Kernel._do_mkdir(self, path, mode)

    def _do_write_file(self, path, data, mode):
        super()._do_write_file(path, data, mode)
        sc.Kernel._do_write_file(self, path, data, mode)


def build_root(kernel, spec, record_dir: str, root: str, *, nodev: bool = False,
               shm: int | None = None, own_cgroup: bool = False) -> None:
    """What `minict run`'s init mounts in the new root before pivot_root,
    for `spec` (an EngineRecord's fields, with the binds and tmpfs the
    flags asked for: its mounts and devices as the engine writes them into
    config.json, runtime/bundle.py), on `kernel`. `shm`: --ipc container:'s
    detached /dev/shm (an fd; it is closed)."""
    from minicontainer.oci import init
    from minicontainer.runtime import bundle, child
    for name in ("hostname", "hosts", "resolv.conf"):   # the container's own /etc files
        path = os.path.join(record_dir, name)
        if not os.path.exists(path):
            open(path, "w").close()
    config = {"root": {"path": root},
              "mounts": bundle.mounts_of(spec, record_dir, spec.binds, spec.tmpfs, own_cgroup),
              "linux": {"devices": bundle.devices_of(spec.devices),
                        # minict run's containers always have one (bundle.namespaces_of)
                        "namespaces": [{"type": "cgroup"}]}}
    engine = child.MinictRun(spec, record_dir, nodev=nodev)
    engine.shm = shm
    init.build_root(kernel, config, record_dir, nodev, engine)
