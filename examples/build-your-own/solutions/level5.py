#!/usr/bin/env python3
"""Level 5 (reference solution): a cgroup v2 memory and pids limit.

NEEDS cgroup v2 with the memory and pids controllers. A host whose
controllers cgroup v1 holds (ls /sys/fs/cgroup shows memory/, pids/ ...)
cannot do this: run it in the VM, `vagrant up && vagrant ssh` (the repo's
Vagrantfile), then cd minicontainer (the checkout there).

Goal: the container cannot use more than MEMORY_MAX bytes of memory (past
it the kernel's OOM killer ends a process of the container, not of the
host) nor run more than PIDS_MAX processes (a fork bomb's fork fails).
A cgroup is a directory; its limits are files in it; a process is put in
it by writing its pid to cgroup.procs; rmdir removes it once it is empty.

Run:    sudo python3 level5.py IMAGE_DIR CMD [ARG...]
        e.g. ... level5.py IMAGE sh -c 'dd if=/dev/zero of=/dev/null bs=128M count=1'
        (MINICT_EXPLAIN=1 narrates every step; BYO_CGROUP_PARENT picks the cgroup the
        container's goes under, default /sys/fs/cgroup: the check gives one of its own)
Check:  sudo examples/build-your-own/check.sh 5 [FILE]   (in the VM)
Time:   30 minutes.
API:    cgroups are files: plain open/write/mkdir/rmdir (narrated by `write` below);
        the kernel layer for the rest.
Read:   minicontainer/cgroups/hierarchy.py (the module docstring's rules; prepare_subtree,
        Cgroup.create, Cgroup.add_pid, Cgroup.oom_killed, Cgroup.destroy),
        minicontainer/cgroups/limits.py (Limits.writes: which file each limit is).
"""

import errno
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
import time

try:
    from minicontainer import syscalls as sc
except ImportError:   # run as `python3 level5.py` from a checkout: use the checkout's minicontainer
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents
                                if (p / "minicontainer").is_dir())))
    from minicontainer import syscalls as sc

kernel = sc.Kernel(sc.Narrator(os.environ.get("MINICT_EXPLAIN") == "1"))
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


# ---- levels 1-4, compactly: namespaces, an overlay root, pivot_root, /proc, /dev, masks -------

def overlay_root(image_dir: str, scratch: str) -> str:
    """IMAGE_DIR under an overlay (level 3) whose upper dir is a tmpfs of this
    mount namespace: the writes vanish with the container (docker run --rm)."""
    kernel.mount("tmpfs", scratch, "tmpfs", 0, "mode=755", "A tmpfs for the container's writes")
    for name in ("upper", "work", "root"):
        kernel.mkdir(f"{scratch}/{name}", 0o755, f"The overlay's {name} directory")
    kernel.mount("overlay", f"{scratch}/root", "overlay", 0,
                 f"lowerdir={image_dir},upperdir={scratch}/upper,workdir={scratch}/work",
                 "The image read-only below, the container's writes above")
    return f"{scratch}/root"


def pivot(root: str) -> None:
    kernel.chdir(root, "Go into the new root")
    kernel.pivot_root(".", ".", "Swap the root of this mount namespace for the container's")
    kernel.umount2(".", sc.MNT_DETACH, "Detach the old root: the host's files are out of reach")
    kernel.chdir("/", "Stand at the new root")


def kernel_filesystems() -> None:
    """Level 4: /proc, /sys, a minimal /dev, the masked paths."""
    kernel.mount("proc", "/proc", "proc", NOSUID_NODEV_NOEXEC, None, "/proc of the new PID namespace")
    kernel.mount("sysfs", "/sys", "sysfs", NOSUID_NODEV_NOEXEC | sc.MS_RDONLY, None, "/sys, read-only")
    kernel.mount("tmpfs", "/dev", "tmpfs", sc.MS_NOSUID | sc.MS_STRICTATIME, "mode=755,size=65536k",
                 "A fresh tmpfs for /dev")
    for name, major, minor in [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                               ("urandom", 1, 9), ("tty", 5, 0)]:
        kernel.mknod(f"/dev/{name}", "c", major, minor, 0o666, f"Create /dev/{name}")
    kernel.mkdir("/dev/pts", 0o755, "Mount point for the container's terminals")
    kernel.mount("devpts", "/dev/pts", "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620", "A devpts of its own")
    kernel.mkdir("/dev/shm", 0o1777, "Mount point for POSIX shared memory")
    kernel.mount("shm", "/dev/shm", "tmpfs", NOSUID_NODEV_NOEXEC, "mode=1777,size=65536k", "/dev/shm")
    for path in ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                 "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                 "/sys/firmware", "/sys/devices/virtual/powercap"]:
        if os.path.isdir(path):
            kernel.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY, None, f"Hide {path}")
        elif os.path.lexists(path):
            kernel.mount("/dev/null", path, None, sc.MS_BIND, None, f"Hide {path}")


# ---- LEVEL 5 (new): a cgroup v2 with a memory and a pids limit ---------------------------------

CGROUP_PARENT = os.environ.get("BYO_CGROUP_PARENT", "/sys/fs/cgroup")
MEMORY_MAX = 32 * 2**20     # bytes: memory.max
PIDS_MAX = 16               # processes (threads count too): pids.max


def write(path: str, value: str, why: str) -> None:
    """One cgroup file write, narrated like minict's (cgroups/hierarchy.py write)."""
    kernel.explain(why, f"write '{value}' to {path}")
    with open(path, "w") as f:
        f.write(value)


def make_cgroup(name: str) -> str:
    if not os.path.exists(f"{CGROUP_PARENT}/cgroup.controllers"):
        raise SystemExit(f"level5: no cgroup v2 at {CGROUP_PARENT} (cgroup v1 holds the "
                         f"controllers here): run this in the VM (vagrant up)")
    # "Controlling controllers": a child has memory.max only if its parent
    # lists +memory in cgroup.subtree_control.
    write(f"{CGROUP_PARENT}/cgroup.subtree_control", "+memory +pids",
          "Let the child cgroups use the memory and pids controllers")
    path = f"{CGROUP_PARENT}/{name}"
    kernel.explain("A cgroup is a directory", f"mkdir {path}")
    os.mkdir(path)
    write(f"{path}/memory.max", str(MEMORY_MAX),
          f"Limit memory to {MEMORY_MAX >> 20} MiB: past it, the OOM killer ends a process in here")
    if os.path.exists(f"{path}/memory.swap.max"):   # no such file without swap accounting
        write(f"{path}/memory.swap.max", "0", "No swap either, or the limit only slows things down")
    write(f"{path}/pids.max", str(PIDS_MAX), f"At most {PIDS_MAX} processes: fork fails past it")
    return path


def add_to_cgroup(path: str, pid: int) -> None:
    # The child is still waiting on the pipe: not one instruction of the
    # command runs outside the limits. Its children are born in here too.
    write(f"{path}/cgroup.procs", str(pid), f"Move process {pid} into the cgroup")


def remove_cgroup(path: str) -> None:
    # The container's PID 1 has exited, so the kernel killed every other
    # process of its PID namespace; rmdir says EBUSY until they are gone.
    with open(f"{path}/memory.events") as f:
        kills = dict(line.split() for line in f)["oom_kill"]
    kernel.explain(f"The OOM killer ended {kills} process(es) in the cgroup (memory.events)")
    kernel.explain("Remove the cgroup, now empty", f"rmdir {path}")
    for _ in range(100):
        try:
            os.rmdir(path)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.05)
    os.rmdir(path)


# ---- the container's side, then the parent's ---------------------------------------------------

def container(image_dir: str, scratch: str, argv: list[str], go: int) -> None:
    os.read(go, 1)              # wait until the parent has put us in the cgroup
    os.close(go)
    kernel.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS, "A mount table and a hostname of its own")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "No mount made here may propagate back to the host")
    kernel.sethostname("level5", "The container's own hostname")
    pivot(overlay_root(image_dir, scratch))
    kernel_filesystems()
    command = shutil.which(argv[0], path=PATH) or argv[0]
    kernel.execve(command, argv, [f"PATH={PATH}", "HOME=/root", "HOSTNAME=level5"],
                  "Become the container's command, PID 1")


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: level5.py IMAGE_DIR CMD [ARG...]", file=sys.stderr)
        return 2
    image_dir, argv = os.path.abspath(sys.argv[1]), sys.argv[2:]
    if not os.path.isdir(image_dir):
        print(f"level5: no such image directory: {image_dir}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("level5: run this as root (sudo): it makes namespaces, mounts and cgroups",
              file=sys.stderr)
        return 2
    cgroup = make_cgroup(f"byo-level5-{os.getpid()}")          # LEVEL 5
    scratch = tempfile.mkdtemp(prefix="byo-level5-")
    try:
        go_read, go_write = os.pipe()
        kernel.unshare(sc.CLONE_NEWPID, "Our next child is born in a new PID namespace")
        pid = kernel.fork("The container's first process: PID 1 in the new namespace")
        if pid == 0:
            os.close(go_write)
            try:
                container(image_dir, scratch, argv, go_read)
            except BaseException as exc:   # noqa: BLE001 (the child must never return into main)
                print(f"level5: {exc}", file=sys.stderr)
            os._exit(127)
        os.close(go_read)
        try:
            add_to_cgroup(cgroup, pid)                         # LEVEL 5
        except BaseException:
            kernel.kill(pid, signal.SIGKILL, "The container could not be limited: stop it")
            os.waitpid(pid, 0)
            raise
        os.close(go_write)             # "go"
        _, status = os.waitpid(pid, 0)
    finally:
        os.rmdir(scratch)
        remove_cgroup(cgroup)                                  # LEVEL 5
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
