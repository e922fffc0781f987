#!/usr/bin/env python3
"""Level 4 (reference solution): /proc, a minimal /dev, masked paths.

Goal: the container sees its own processes (a fresh /proc: `ps` shows the
command as PID 1), a /dev with only the handful of harmless devices every
program expects, and none of the kernel's files that leak the host
(/proc/kcore, /proc/keys, /sys/firmware ...).

Run:    sudo python3 level4.py IMAGE_DIR CMD [ARG...]
        (MINICT_EXPLAIN=1 narrates every step, as `minict run --explain` does)
Check:  sudo examples/build-your-own/check.sh 4 [FILE]
Time:   30-40 minutes.
API:    minict's kernel layer (minicontainer.syscalls.Kernel): mount, mknod, mkdir, symlink.
Read:   minicontainer/runtime/mounts.py (mount_proc, mount_sys, MASKED_PATHS, mask_paths),
        minicontainer/runtime/devices.py (DEFAULT_DEVICES, populate_dev),
        minicontainer/oci/defaults.py (default_spec: the mounts `runc spec` starts from).
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

try:
    from minicontainer import syscalls as sc
except ImportError:   # run as `python3 level4.py` from a checkout: use the checkout's minicontainer
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents
                                if (p / "minicontainer").is_dir())))
    from minicontainer import syscalls as sc

kernel = sc.Kernel(sc.Narrator(os.environ.get("MINICT_EXPLAIN") == "1"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# ---- levels 1-3, compactly: namespaces, an overlay root, pivot_root ----------------------------

def overlay_root(image_dir: str, scratch: str) -> str:
    """IMAGE_DIR under a writable overlay (level 3). Level 3 kept upper/ in
    CONTAINER_DIR to look at; from here on it is on a tmpfs of this mount
    namespace, so every write vanishes with the container (docker run --rm),
    and it works in the VM too, whose /tmp is itself an overlay (overlayfs
    refuses one as its upper dir). The image stays untouched either way."""
    kernel.mount("tmpfs", scratch, "tmpfs", 0, "mode=755", "A tmpfs for the container's writes")
    for name in ("upper", "work", "root"):
        kernel.mkdir(f"{scratch}/{name}", 0o755, f"The overlay's {name} directory")
    kernel.mount("overlay", f"{scratch}/root", "overlay", 0,
                 f"lowerdir={image_dir},upperdir={scratch}/upper,workdir={scratch}/work",
                 "The image read-only below, the container's writes above")
    return f"{scratch}/root"


def pivot(root: str) -> None:
    """Make `root` the root and detach the host's (level 2: why not chroot)."""
    kernel.chdir(root, "Go into the new root")
    kernel.pivot_root(".", ".", "Swap the root of this mount namespace for the container's")
    kernel.umount2(".", sc.MNT_DETACH, "Detach the old root: the host's files are out of reach")
    kernel.chdir("/", "Stand at the new root")


# ---- LEVEL 4 (new): /proc, /sys, /dev, masked paths --------------------------------------------

NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC

# name, major, minor (Documentation/admin-guide/devices.txt; runc's list, minict's DEFAULT_DEVICES)
DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
           ("tty", 5, 0)]

# minict's (and docker's) list: minicontainer/runtime/mounts.py MASKED_PATHS
MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
          "/sys/firmware", "/sys/devices/virtual/powercap"]


def mount_proc_and_sys() -> None:
    # proc shows the PID namespace of the process that mounts it: ours.
    kernel.mount("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, None,
                 "A /proc of the new PID namespace: the container sees only its own processes")
    kernel.mount("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC | sc.MS_RDONLY, None,
                 "/sys, read-only: the kernel's devices to look at, not to change")


def make_dev() -> None:
    # A fresh tmpfs, not the host's /dev: that one holds every disk of the machine.
    kernel.mount("tmpfs", "/dev", "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k",
                 "A fresh tmpfs for /dev: the host's devices stay out of reach")
    for name, major, minor in DEVICES:
        kernel.mknod(f"/dev/{name}", "c", major, minor, 0o666, f"Create /dev/{name}")
    kernel.mkdir("/dev/pts", 0o755, "Mount point for the container's terminals")
    kernel.mount("devpts", "/dev/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620",
                 "A devpts of its own (newinstance): the container sees only its own ptys")
    kernel.mkdir("/dev/shm", 0o1777, "Mount point for POSIX shared memory")
    kernel.mount("shm", "/dev/shm", "tmpfs", NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k",
                 "/dev/shm: shared memory private to this container")
    for name, target in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"),
                         ("ptmx", "pts/ptmx")]:
        kernel.symlink(target, f"/dev/{name}", f"/dev/{name} -> {target}")


def mask_paths() -> None:
    for path in MASKED:
        if not os.path.lexists(path):
            continue   # this kernel has no such file: nothing to hide
        if os.path.isdir(path):
            kernel.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None,
                         f"Hide {path} under an empty read-only tmpfs")
        else:
            kernel.mount("/dev/null", path, None, sc.MS_BIND, None,
                         f"Hide {path}: a bind of /dev/null, it now reads as empty")


# ---- the container's side, then the parent's ---------------------------------------------------

def container(image_dir: str, scratch: str, argv: list[str]) -> None:
    kernel.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS, "A mount table and a hostname of its own")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "No mount made here may propagate back to the host")
    kernel.sethostname("level4", "The container's own hostname")
    pivot(overlay_root(image_dir, scratch))
    mount_proc_and_sys()       # LEVEL 4
    make_dev()                 # LEVEL 4
    mask_paths()               # LEVEL 4
    command = shutil.which(argv[0], path=PATH) or argv[0]
    kernel.execve(command, argv, [f"PATH={PATH}", "HOME=/root", "HOSTNAME=level4"],
                  "Become the container's command, PID 1")


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: level4.py IMAGE_DIR CMD [ARG...]", file=sys.stderr)
        return 2
    image_dir, argv = os.path.abspath(sys.argv[1]), sys.argv[2:]
    if not os.path.isdir(image_dir):
        print(f"level4: no such image directory: {image_dir}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("level4: run this as root (sudo): it makes namespaces and mounts", file=sys.stderr)
        return 2
    scratch = tempfile.mkdtemp(prefix="byo-level4-")
    try:
        kernel.unshare(sc.CLONE_NEWPID, "Our next child is born in a new PID namespace")
        pid = kernel.fork("The container's first process: PID 1 in the new namespace")
        if pid == 0:
            try:
                container(image_dir, scratch, argv)
            except BaseException as exc:   # noqa: BLE001 (the child must never return into main)
                print(f"level4: {exc}", file=sys.stderr)
            os._exit(127)
        _, status = os.waitpid(pid, 0)
    finally:
        os.rmdir(scratch)      # the tmpfs on it was in the child's mount namespace: gone
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
