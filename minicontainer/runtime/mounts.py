"""The kernel's own filesystems in the container: /proc, /sys, /etc files,
and the parts of them a container must not see or change.

/proc is mounted fresh inside the new PID namespace, so it lists only the
container's processes. But /proc and /sys still expose the one kernel all
containers share, so (as Docker and runc do by default):

- masked paths are covered: a file by a bind of /dev/null, a directory by
  an empty read-only tmpfs. They leak host information (/proc/kcore is the
  kernel's memory, /proc/keys the kernel keyrings, /proc/timer_list
  other processes' timers) or let a container drive hardware
  (/sys/firmware). The container cannot unmount the covers: it lacks
  CAP_SYS_ADMIN.
- read-only paths are re-mounted read-only: they are knobs for the whole
  kernel (/proc/sys: sysctls; /proc/sysrq-trigger: reboot and crash the
  host; /proc/irq: interrupt routing).
"""

import os

from .. import syscalls as sc
from .rootfs import mountpoint, preserved_flags

MASKED_PATHS = [
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware",
    # CVE-2020-8694 (Intel RAPL power readings leak what other code computes)
    "/sys/devices/virtual/powercap",
]

READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


def mount_proc(kernel: sc.Kernel, root: str) -> None:
    with mountpoint(kernel, root, "/proc", True) as target:
        kernel.mount("proc", target, "proc", NOSUID_NODEV_NOEXEC, None,
                     "A /proc of the new PID namespace: the container sees only its own processes")


def mount_sys(kernel: sc.Kernel, root: str, readonly: bool) -> None:
    flags = NOSUID_NODEV_NOEXEC | (sc.MS_RDONLY if readonly else 0)
    with mountpoint(kernel, root, "/sys", True) as target:
        kernel.mount("sysfs", target, "sysfs", flags, None,
                     "/sys, read-only: the container may look at the kernel's devices but not "
                     "change them" if readonly else "/sys, writable (--privileged)")


def bind_sys(kernel: sc.Kernel, root: str) -> None:
    """/sys without root and without a network namespace of its own
    (--network host): the kernel mounts a fresh sysfs only for a user
    namespace that owns the network namespace, so the host's /sys is bound
    instead, read-only and nodev, with its submounts."""
    with mountpoint(kernel, root, "/sys", True) as target:
        kernel.bind_with_attributes("/sys", target, True, True,
                                    "/sys: the host's, bound read-only (no fresh sysfs without "
                                    "a network namespace of our own)")


def in_own_cgroup(container_id: str) -> bool:
    """Has the owner moved this process into the container's own cgroup?

    /proc/self/cgroup's cgroup v2 line is "0::<path>"; ours ends in
    /minict/<id> (cgroups.hierarchy.container_path). Read it BEFORE
    unsharing the cgroup namespace: inside a new one every path reads "/".
    No line, or another path: no cgroup was made (no limit asked, on a host
    without cgroup v2), and then there is nothing of its own to show.
    """
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    return any(line.startswith("0::") and line.endswith(f"/minict/{container_id}")
               for line in lines)


def mount_cgroup(kernel: sc.Kernel, root: str, readonly: bool) -> None:
    """cgroup2 at /sys/fs/cgroup. Mounted from inside the container's new
    cgroup namespace, the filesystem's root is the container's own cgroup:
    it sees itself at "/" and nothing of the host's tree above it. Read-only
    (like /sys), so it can read its limits and usage but not raise them or
    move processes; --privileged makes it writable, as docker does."""
    flags = NOSUID_NODEV_NOEXEC | (sc.MS_RDONLY if readonly else 0)
    with mountpoint(kernel, root, "/sys/fs/cgroup", True) as target:
        kernel.mount("cgroup2", target, "cgroup2", flags, None,
                     "The container's own cgroup at /sys/fs/cgroup, read-only: its limits and usage "
                     "to read, its cgroup namespace makes it the root" if readonly
                     else "The container's own cgroup at /sys/fs/cgroup, writable (--privileged)")


def bind_etc_files(kernel: sc.Kernel, root: str, record_dir: str, nodev: bool = False) -> None:
    """/etc/hostname, /etc/hosts and /etc/resolv.conf come from files minict
    wrote for this container (etcfiles.py), bind-mounted over the image's.
    (`nodev`: these writable mounts get it too, like every other but /dev:
    device_access.py's fallback.)"""
    for name in ("hostname", "hosts", "resolv.conf"):
        source = os.path.join(record_dir, name)
        with mountpoint(kernel, root, f"/etc/{name}", False) as target:
            kernel.mount(source, target, None, sc.MS_BIND, None,
                         f"Give the container its own /etc/{name}")
        if nodev:
            # A bind takes its flags from its source; changing them is a remount.
            with mountpoint(kernel, root, f"/etc/{name}", False) as target:
                kernel.mount(None, target, None,
                             sc.MS_BIND | sc.MS_REMOUNT | sc.MS_NODEV | preserved_flags(source),
                             None, f"Make /etc/{name} nodev")


def mask_paths(kernel: sc.Kernel, paths=MASKED_PATHS) -> None:
    """Runs after pivot_root: the paths are the container's own."""
    for path in paths:
        if not os.path.lexists(path):
            continue   # this kernel has no such file: nothing to hide
        if os.path.isdir(path):
            kernel.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None,
                         f"Hide {path} (host information) under an empty read-only tmpfs")
        else:
            kernel.mount("/dev/null", path, None, sc.MS_BIND, None,
                         f"Hide {path} (host information): it now reads as empty")


def readonly_paths(kernel: sc.Kernel, paths=READONLY_PATHS) -> None:
    """Runs after pivot_root. Bind each path onto itself, then remount that
    bind read-only (a mount's flags can only change on a mount of its own)."""
    for path in paths:
        if not os.path.lexists(path):
            continue
        kernel.mount(path, path, None, sc.MS_BIND | sc.MS_REC, None,
                     f"Make {path} a mount of its own, to change its flags")
        flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | preserved_flags(path)
        kernel.mount(None, path, None, flags, None,
                     f"Make {path} read-only: it is a knob for the whole host kernel")
