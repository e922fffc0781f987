#!/usr/bin/env python3
"""Level 3: an overlay root, so the image stays untouched.

Goal: level 2's container, with its root an overlayfs mount: the image
directory read-only below (lowerdir), the container's own directory above
(upperdir), where every write lands. A new file appears in upper/, a
changed file is copied up there first, a deleted one becomes a whiteout
(a 0/0 character device) there, and the image directory never changes: a
hundred containers can share one image, and starting one copies nothing.

CONTAINER_DIR holds upper/ (the writes), work/ (overlayfs's scratch, on the
same filesystem as upper/) and merged/ (the mount point: the root the
container sees). It is kept after the run, so you can look at upper/, as
docker keeps a container's until `docker rm`. The overlay itself is mounted
in the container's mount namespace, so it goes away when the container ends.

Run:    sudo python3 level3.py IMAGE_DIR CONTAINER_DIR CMD [ARG...]
        e.g. sudo python3 level3.py /tmp/img /tmp/c1 sh -c 'echo hi > /hi; rm /bin/vi'
             ls -l /tmp/c1/upper /tmp/c1/upper/bin
Check:  sudo examples/build-your-own/check.sh 3 [FILE]
Time:   25-30 minutes.
Show:   (on the projector) ls -l CONTAINER_DIR/upper CONTAINER_DIR/upper/bin after the
        example (a new file, a 0/0 whiteout for /bin/vi); a second container on the same
        image has no /hi; the mount("overlay", ...) line of `minict --explain run`.
API:    minict's kernel layer (mkdir, mount with fstype "overlay", then
        level 2's pivot_root).
Read:   minicontainer/runtime/rootfs.py (mount_overlay, overlay_options: the
        options string, and why paths are escaped), minicontainer/runtime/child.py
        (MinictRun.mount_root), minicontainer/image/whiteouts.py (the whiteouts
        an image's layers carry, as overlayfs wants them).
"""

import os
import sys
from pathlib import Path

try:
    from minicontainer import syscalls as sc
except ImportError:   # run as `python3 level3.py` from a checkout: use the checkout's minicontainer
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents
                                if (p / "minicontainer").is_dir())))
    from minicontainer import syscalls as sc

HOSTNAME = "level3"
kernel = sc.Kernel(sc.Narrator(os.environ.get("MINICT_EXPLAIN") == "1"))


# ---- levels 1 and 2: PID, UTS and mount namespaces, pivot_root -----------------------------

def before_fork() -> None:
    kernel.unshare(sc.CLONE_NEWPID, "A new PID namespace for the next child: it will be PID 1 there")


def own_hostname() -> None:
    kernel.unshare(sc.CLONE_NEWUTS, "A UTS namespace of its own: the hostname it sets stays inside")
    kernel.sethostname(HOSTNAME, "The container's hostname")


def own_mount_namespace() -> None:
    """A copy of the host's mount table, then every mount in it made private:
    on a systemd host "/" is shared, and a mount made here would appear in
    the host's table too (and pivot_root refuses a shared root, EINVAL)."""
    kernel.unshare(sc.CLONE_NEWNS, "A mount table of its own (a copy of the host's)")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "Make every mount private, so what we mount stays ours")


def pivot_into(root: str) -> None:
    """Make `root`, a mount point, the root; detach the host's (level 2)."""
    kernel.chdir(root, "Go into the new root")
    kernel.pivot_root(".", ".", "Swap the root of this mount namespace for the container's "
                                "(the old root is stacked on top of it)")
    kernel.umount2(".", sc.MNT_DETACH, "Detach the old root, the host's: nothing can reach it now")
    kernel.chdir("/", "Stand at the new root")


# ---- LEVEL 3 (new): an overlay root ---------------------------------------------------------

def overlay_root(image_dir: str, container_dir: str) -> str:
    """Mount IMAGE_DIR under the container's own writable layer; returns the
    mount point, the root the container will see."""
    upper, work, merged = (os.path.join(container_dir, name) for name in ("upper", "work", "merged"))
    # TODO level 3, step 1: make the three directories that are missing
    #   (kernel.mkdir(path, 0o755, "why")).
    # TODO level 3, step 2: kernel.mount("overlay", merged, "overlay", 0, OPTIONS, "why"),
    #   OPTIONS being "lowerdir=IMAGE,upperdir=UPPER,workdir=WORK", then return merged.
    #   (Never return image_dir itself: the container would write into the image.)
    raise NotImplementedError("TODO level 3: overlay_root: mount the image under an overlay "
                              "whose upper dir is CONTAINER_DIR/upper")


def in_the_child(image_dir: str, container_dir: str) -> None:
    own_hostname()
    own_mount_namespace()   # the overlay is mounted in it: it goes when the container ends
    pivot_into(overlay_root(image_dir, container_dir))


def run(image_dir: str, container_dir: str, argv: list[str]) -> int:
    before_fork()
    pid = kernel.fork("Fork the container's first process")
    if pid == 0:
        try:
            in_the_child(image_dir, container_dir)
            os.execvp(argv[0], argv)
        except BaseException as exc:   # never return into the parent's code
            print(f"level3: {type(exc).__name__}: {exc}", file=sys.stderr)
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit("usage: level3.py IMAGE_DIR CONTAINER_DIR CMD [ARG...]")
    image, container = sys.argv[1], sys.argv[2]
    if not os.path.isdir(image):
        sys.exit(f"level3.py: {image}: not a directory (an image directory, e.g. from "
                 f"python -m tests.helpers.busybox DIR)")
    os.makedirs(container, exist_ok=True)
    sys.exit(run(os.path.abspath(image), os.path.abspath(container), sys.argv[3:]))
