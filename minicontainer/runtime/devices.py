"""The container's /dev: a small tmpfs with only the devices it needs.

The host's /dev holds every disk and device the machine has; a container
gets a fresh tmpfs instead, with the handful of harmless character devices
every program expects (the same list as runc's default), its own devpts
instance for terminals, /dev/shm and /dev/mqueue, and the /dev/fd links.
Extra device nodes (hpcshim's GPU plan: /dev/nvidia0 ...) are added here too.
Without root (in a user namespace, where mknod is refused) every node in it
is a bind of the host's own node instead: the defaults here
(bind_host_device), a GPU plan's with the other binds (bind_host_node).
"""

import math
import os
import stat

from .. import syscalls as sc
from .rootfs import bind_mount, mountpoint, open_mountpoint, path_in_root

# name, major, minor (Documentation/admin-guide/devices.txt)
DEFAULT_DEVICES = [
    ("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
    ("tty", 5, 0),
]

LINKS = [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")]


def populate_dev(kernel: sc.Kernel, root: str, extra_devices=(), shm_size: int = 64 << 20,
                 shared_shm: str | int | None = None, bind_host: bool = False) -> None:
    """/dev: the default devices, ptys, /dev/shm, /dev/mqueue, the /dev/fd
    links, then `extra_devices`. /dev/shm is a tmpfs of `shm_size` bytes,
    unless `shared_shm` gives one to share: a path to bind (--ipc host: the
    host's /dev/shm) or a detached mount's fd (--ipc container:NAME).
    `bind_host`: in a user namespace (rootless.py), where mknod is refused,
    the default devices are binds of the host's own nodes."""
    with mountpoint(kernel, root, "/dev", True) as target:
        kernel.mount("tmpfs", target, "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME,
                     "mode=755,size=65536k", "A fresh tmpfs for /dev: the host's devices stay out of reach")
    # From here on, plain paths: the tmpfs was made a moment ago, in this
    # process's own mount namespace, before any volume is mounted, so no
    # other process can reach it to swap a name for a symlink.
    dev = path_in_root(root, "/dev")
    for name, major, minor in DEFAULT_DEVICES:
        if bind_host:
            bind_host_device(kernel, dev, name)
        else:
            kernel.mknod(os.path.join(dev, name), "c", major, minor, 0o666,
                         f"Create /dev/{name}")
    kernel.mkdir(os.path.join(dev, "pts"), 0o755, "Mount point for the container's terminals")
    # gid=5 (tty) exists only where it is mapped: not in a one-id user namespace.
    kernel.mount("devpts", os.path.join(dev, "pts"), "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620" + ("" if bind_host else ",gid=5"),
                 "A devpts of its own (newinstance): the container sees only its own ptys")
    kernel.mkdir(os.path.join(dev, "shm"), 0o1777, "Mount point for POSIX shared memory")
    if shared_shm is None:
        # PyTorch's DataLoader workers and NCCL pass tensors through /dev/shm:
        # docker's 64 MiB is often too small for them (--shm-size, --ipc host).
        kernel.mount("shm", os.path.join(dev, "shm"), "tmpfs",
                     sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC,
                     f"mode=1777,size={math.ceil(shm_size / 1024)}k",
                     f"/dev/shm: shared memory private to this container "
                     f"({shm_size / 2**20:g} MiB)")
    elif isinstance(shared_shm, int):
        kernel.attach_mount(shared_shm, os.path.join(dev, "shm"),
                            "/dev/shm: the copy of the joined container's, so both see one tmpfs")
    else:
        kernel.mount(shared_shm, os.path.join(dev, "shm"), None, sc.MS_BIND, None,
                     f"/dev/shm: bind the host's {shared_shm} (--ipc host)")
    kernel.mkdir(os.path.join(dev, "mqueue"), 0o755, "Mount point for POSIX message queues")
    host_ipc = isinstance(shared_shm, str)   # --ipc host: shared_shm is the host's /dev/shm
    if bind_host and host_ipc:
        bind_host_mqueue(kernel, dev)
    else:
        kernel.mount("mqueue", os.path.join(dev, "mqueue"), "mqueue",
                     sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC, None,
                     "/dev/mqueue: the message queues of the container's IPC namespace")
    for name, target in LINKS:
        kernel.symlink(target, os.path.join(dev, name), f"/dev/{name} -> {target}")
    for node in extra_devices:
        add_device(kernel, root, node)


def bind_host_device(kernel: sc.Kernel, dev: str, name: str) -> None:
    """/dev/NAME as a bind of the host's /dev/NAME (an empty file is the
    mount point). The host's node is the same harmless device mknod would
    have made; the bind is nosuid and noexec like the rest of /dev."""
    path = os.path.join(dev, name)
    kernel.write_file(path, b"", 0o666, f"Mount point for /dev/{name}")
    kernel.mount(f"/dev/{name}", path, None, sc.MS_BIND, None,
                 f"Bind the host's /dev/{name} (no mknod in a user namespace)")


def bind_host_mqueue(kernel: sc.Kernel, dev: str) -> None:
    """--ipc host without root: the kernel lets only the owner of an IPC
    namespace's user namespace mount its mqueue filesystem, and the host's
    belongs to the host's. So the host's /dev/mqueue is bound, when it has
    one; without it /dev/mqueue stays empty (mq_open(3) works all the same:
    the directory only lists the queues)."""
    if not os.path.isdir("/dev/mqueue"):
        kernel.explain("The host has no /dev/mqueue to bind: the container's stays empty "
                       "(mq_open still reaches the host's queues)")
        return
    kernel.mount("/dev/mqueue", os.path.join(dev, "mqueue"), None, sc.MS_BIND, None,
                 "/dev/mqueue: bind the host's (--ipc host; mounting one needs root)")


def is_device_node(path: str) -> bool:
    """Is `path` (on the host) a character or block device node?"""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def bind_host_node(kernel: sc.Kernel, root: str, source: str, destination: str) -> None:
    """Without root: the host's device node `source` bound onto an empty
    file at `destination` (a GPU plan's node: gpu.py), where root would
    mknod it. Not nodev, or it could not be opened. That gives nothing away:
    opening it is the kernel's check of the caller's own uid and groups
    against the host's node (root in the user namespace is not root to a
    node that namespace does not own), exactly as outside the container."""
    bind_mount(kernel, root, source, destination, False,
               f"Bind the host's device node {source} at {destination} (no mknod in a user "
               f"namespace; opening it is the kernel's check of your access to the host's node)")


def add_device(kernel: sc.Kernel, root: str, node) -> None:
    """mknod one extra device (a spec.DeviceNode) at its path under /dev."""
    parent = os.path.dirname(node.path)
    if parent != "/dev":
        os.close(open_mountpoint(kernel, root, parent, True))   # creates the directories
    path = path_in_root(root, node.path)
    if os.path.lexists(path):
        os.unlink(path)
    kernel.mknod(path, node.type, node.major, node.minor, node.mode,
                 f"Create device {node.path} (asked for by the container's spec)",
                 uid=node.uid, gid=node.gid)
