#!/usr/bin/env python3
"""Level 4: /proc, a minimal /dev, masked paths.

Goal: the container sees its own processes (a fresh /proc: `ps` shows the
command as PID 1), a /dev with only the handful of harmless devices every
program expects, and none of the kernel's files that leak the host
(/proc/kcore, /proc/keys, /sys/firmware ...).

Your part: the three functions under "LEVEL 4 (new)" marked TODO; the rest is
levels 1-3, done. Until a TODO is done the container runs without that step.

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


def todo(what: str) -> None:
    """A step not written yet: say so, and go on without it (the check will tell)."""
    print(f"level4: TODO level 4: {what} (not done yet)", file=sys.stderr)


def mount_proc_and_sys() -> None:
    # TODO level 4 (1): mount a fresh proc at /proc (type "proc", flags NOSUID_NODEV_NOEXEC).
    # It shows the PID namespace of the process that mounts it: ours, so `ps` sees PID 1.
    # Then sysfs at /sys, read-only (add sc.MS_RDONLY). minict: runtime/mounts.py mount_proc.
    todo("mount /proc and /sys")


def make_dev() -> None:
    # TODO level 4 (2): a tmpfs at /dev ("mode=755,size=65536k", MS_NOSUID|MS_STRICTATIME);
    # kernel.mknod each of DEVICES as a character device ("c"), mode 0o666;
    # /dev/pts: mkdir, then mount a "devpts" with "newinstance,ptmxmode=0666,mode=0620";
    # /dev/shm: mkdir (0o1777), then a tmpfs; the links fd, stdin, stdout, stderr, ptmx.
    # minict: runtime/devices.py populate_dev.
    todo("make a minimal /dev")


def mask_paths() -> None:
    # TODO level 4 (3): for each path in MASKED that exists: a directory gets an empty
    # read-only tmpfs mounted on it, a file a bind mount (sc.MS_BIND) of /dev/null.
    # Why each path: minict's runtime/mounts.py docstring; how: its mask_paths.
    todo("cover the masked paths")


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
