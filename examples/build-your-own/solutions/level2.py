#!/usr/bin/env python3
"""Level 2 (reference solution): a mount namespace and a root of its own.

Goal: level 1's container, now also in a mount namespace of its own, with
an image directory as its root (`ls /` shows the image, not the host).
First with chroot (--chroot), then with pivot_root, and why:

chroot(2) changes one thing, this process's idea of "/". The host's root
is still the root of the mount namespace, only out of sight, and a root
process can get back to it: chroot into a subdirectory without chdir and
walk up with "..", or setns(2) into its own mount namespace, which sets
its root to the namespace's, the host's (check.sh does that, with busybox
nsenter). pivot_root(2) changes the mount namespace itself: the image
becomes its root mount and the old root is moved aside, then detached
(umount2 MNT_DETACH). After that there is no host root left to go back to.

Run:    sudo python3 level2.py [--chroot] IMAGE_DIR CMD [ARG...]
        e.g. sudo python3 level2.py --chroot /tmp/img ls /
        (an image directory: sudo .venv/bin/python -m tests.helpers.busybox /tmp/img)
Check:  sudo examples/build-your-own/check.sh 2 [FILE]
Time:   30-40 minutes (chroot 10, pivot_root 20, the escape on the projector).
Show:   (on the projector) with --chroot, as the container's command:
        sh -c 'mount -t proc proc /proc; nsenter -m/proc/self/ns/mnt ls /'  -- the host's /,
        the escape; the same without --chroot lists the image: nothing left to escape to.
API:    minict's kernel layer (unshare, mount, chdir, pivot_root, umount2);
        chroot is plain os.chroot (the kernel layer has none: minict never
        uses it), narrated with kernel.explain.
Read:   minicontainer/runtime/rootfs.py (pivot: pivot_root(".", ".") then
        umount2(".", MNT_DETACH)), minicontainer/oci/init.py (_init: the mounts
        made private first, then build_root, then rootfs.pivot).
"""

import os
import sys
from pathlib import Path

try:
    from minicontainer import syscalls as sc
except ImportError:   # run as `python3 level2.py` from a checkout: use the checkout's minicontainer
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents
                                if (p / "minicontainer").is_dir())))
    from minicontainer import syscalls as sc

HOSTNAME = "level2"
kernel = sc.Kernel(sc.Narrator(os.environ.get("MINICT_EXPLAIN") == "1"))


# ---- level 1: PID and UTS namespaces -------------------------------------------------------

def before_fork() -> None:
    kernel.unshare(sc.CLONE_NEWPID, "A new PID namespace for the next child: it will be PID 1 there")


def own_hostname() -> None:
    kernel.unshare(sc.CLONE_NEWUTS, "A UTS namespace of its own: the hostname it sets stays inside")
    kernel.sethostname(HOSTNAME, "The container's hostname")


# ---- LEVEL 2 (new): a mount namespace, then chroot or pivot_root ---------------------------

def own_mount_namespace() -> None:
    """A copy of the host's mount table, then every mount in it made private:
    on a systemd host "/" is shared, and a mount made here would appear in
    the host's table too (and pivot_root refuses a shared root, EINVAL)."""
    kernel.unshare(sc.CLONE_NEWNS, "A mount table of its own (a copy of the host's)")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "Make every mount private, so what we mount stays ours")


def enter_with_chroot(image_dir: str) -> None:
    kernel.explain("Make the image this process's / (only its view: the host's root stays "
                   "in the mount namespace)", f'chroot("{image_dir}")')
    os.chroot(image_dir)
    kernel.chdir("/", "Stand at the new root (the old cwd would still be outside it)")


def enter_with_pivot_root(image_dir: str) -> None:
    # pivot_root wants the new root to be a mount point: bind it onto itself.
    kernel.mount(image_dir, image_dir, None, sc.MS_BIND | sc.MS_REC, None,
                 "pivot_root needs a mount point: bind the image onto itself")
    kernel.chdir(image_dir, "Go into the new root")
    kernel.pivot_root(".", ".", "Swap the root of this mount namespace for the image "
                                "(the old root is stacked on top of it)")
    kernel.umount2(".", sc.MNT_DETACH, "Detach the old root, the host's: nothing can reach it now")
    kernel.chdir("/", "Stand at the new root")


def in_the_child(image_dir: str, use_chroot: bool) -> None:
    own_hostname()
    own_mount_namespace()
    if use_chroot:
        enter_with_chroot(image_dir)
    else:
        enter_with_pivot_root(image_dir)


def run(image_dir: str, argv: list[str], use_chroot: bool) -> int:
    before_fork()
    pid = kernel.fork("Fork the container's first process")
    if pid == 0:
        try:
            in_the_child(image_dir, use_chroot)
            os.execvp(argv[0], argv)
        except BaseException as exc:   # never return into the parent's code
            print(f"level2: {type(exc).__name__}: {exc}", file=sys.stderr)
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    args = sys.argv[1:]
    use_chroot = bool(args) and args[0] == "--chroot"
    args = args[1:] if use_chroot else args
    if len(args) < 2:
        sys.exit("usage: level2.py [--chroot] IMAGE_DIR CMD [ARG...]")
    if not os.path.isdir(args[0]):
        sys.exit(f"level2.py: {args[0]}: not a directory (an image directory, e.g. from "
                 f"python -m tests.helpers.busybox DIR)")
    sys.exit(run(os.path.abspath(args[0]), args[1:], use_chroot))
