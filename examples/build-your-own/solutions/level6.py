#!/usr/bin/env python3
"""Level 6 (reference solution): dropping capabilities, no_new_privs and a seccomp filter.

Goal: root in the container is still root on the host's kernel (no user
namespace here), so what keeps it in its box is what it may NOT do:
- capabilities: root's powers come in ~40 pieces; keep Docker's default
  14 (KEEP) and drop the rest from the bounding set (a limit no process in
  the container can ever raise again) and from the process's own sets;
- no_new_privs: execve can never grant more (a setuid-root program run by
  a user in the container stays that user);
- a seccomp filter: system calls a container has no business making
  (new namespaces, mounts, the kernel keyring, loading BPF...) answer
  EPERM before any kernel code behind them runs.
All three are inherited by every process the command starts, and kept across execve.

Run:    sudo python3 level6.py IMAGE_DIR CMD [ARG...]
        e.g. ... level6.py IMAGE sh -c 'grep Cap /proc/self/status; unshare -U true'
        (MINICT_EXPLAIN=1 narrates every step)
Check:  sudo examples/build-your-own/check.sh 6 [FILE]
Time:   30-40 minutes.
API:    minict's kernel layer: kernel.drop_bounding_cap, set_capabilities,
        set_no_new_privs, load_seccomp; libseccomp's Python bindings (`import seccomp`)
        build the filter.
Read:   minicontainer/runtime/capabilities.py (DOCKER_DEFAULT),
        minicontainer/oci/process.py (identity_and_capabilities, load_seccomp),
        minicontainer/runtime/syscall_filter.py (DENIED: why each call; build),
        minicontainer/oci/seccomp.py (build); the lesson examples/capabilities-and-seccomp/.
"""

import errno
import os
import shutil
import sys
import tempfile
from pathlib import Path

import seccomp  # libseccomp's bindings (Debian: python3-seccomp; scripts/setup.sh links them)

try:
    from minicontainer import syscalls as sc
    from minicontainer.runtime.capabilities import DOCKER_DEFAULT, NAMES, NUMBERS, last_cap
except ImportError:   # run as `python3 level6.py` from a checkout: use the checkout's minicontainer
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents
                                if (p / "minicontainer").is_dir())))
    from minicontainer import syscalls as sc
    from minicontainer.runtime.capabilities import DOCKER_DEFAULT, NAMES, NUMBERS, last_cap

kernel = sc.Kernel(sc.Narrator(os.environ.get("MINICT_EXPLAIN") == "1"))
sc.prctl()   # python-prctl (capabilities), imported now: after pivot_root .venv is out of reach
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


# ---- LEVEL 6 (new): capabilities, no_new_privs, a seccomp filter -------------------------------

KEEP = DOCKER_DEFAULT        # CAP_CHOWN, CAP_DAC_OVERRIDE, ... CAP_KILL: no CAP_SYS_ADMIN

# The calls the filter refuses (a short deny list; minict's longer one, each
# with its reason: runtime/syscall_filter.py DENIED).
DENY = [
    "unshare", "setns",                           # new namespaces (a user namespace: all caps in it)
    "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsmount",  # mounts
    "keyctl", "add_key", "request_key",           # the kernel keyring is not namespaced
    "bpf", "perf_event_open", "userfaultfd",      # programs in the kernel, whole-machine counters
    "init_module", "finit_module", "delete_module", "kexec_load", "reboot",   # the host's kernel
]


def drop_capabilities() -> None:
    keep = [NUMBERS[name] for name in KEEP if sc.in_bounding_set(NUMBERS[name])]
    for number in range(last_cap() + 1):
        if number not in keep and sc.in_bounding_set(number):
            kernel.drop_bounding_cap(number, NAMES[number],
                                     f"Drop {NAMES[number]} from the bounding set, for good")
    kernel.set_capabilities(keep, [NAMES[n] for n in keep],
                            "Keep only these in the effective and permitted sets (none inheritable)")


def set_no_new_privs() -> None:
    kernel.set_no_new_privs("execve can never grant privileges again (setuid bits, file caps)")


def load_seccomp_filter() -> None:
    # Allow by default; each listed call answers EPERM. libseccomp compiles
    # the rules into a BPF program the kernel runs on every system call.
    syscall_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    if os.uname().machine == "x86_64":   # the same calls through the 32-bit entry points
        syscall_filter.add_arch(seccomp.Arch.X86)
        syscall_filter.add_arch(seccomp.Arch.X32)
    for name in DENY:
        try:
            syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except RuntimeError:    # newer than this libseccomp: it does not know the number
            kernel.explain(f"This libseccomp does not know {name}: not filtered")
    # Loading a filter needs CAP_SYS_ADMIN, or no_new_privs (set just before).
    kernel.load_seccomp(syscall_filter, f"EPERM for {', '.join(DENY)}",
                        "Load the seccomp filter: these calls never reach the kernel")


# ---- the container's side, then the parent's ---------------------------------------------------

def container(image_dir: str, scratch: str, argv: list[str]) -> None:
    kernel.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS, "A mount table and a hostname of its own")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "No mount made here may propagate back to the host")
    kernel.sethostname("level6", "The container's own hostname")
    pivot(overlay_root(image_dir, scratch))
    kernel_filesystems()
    command = shutil.which(argv[0], path=PATH) or argv[0]
    # LEVEL 6: last, just before execve (mounting needed CAP_SYS_ADMIN), in this order:
    drop_capabilities()
    set_no_new_privs()
    load_seccomp_filter()
    kernel.execve(command, argv, [f"PATH={PATH}", "HOME=/root", "HOSTNAME=level6"],
                  "Become the container's command, PID 1")


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: level6.py IMAGE_DIR CMD [ARG...]", file=sys.stderr)
        return 2
    image_dir, argv = os.path.abspath(sys.argv[1]), sys.argv[2:]
    if not os.path.isdir(image_dir):
        print(f"level6: no such image directory: {image_dir}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("level6: run this as root (sudo): it makes namespaces and mounts", file=sys.stderr)
        return 2
    scratch = tempfile.mkdtemp(prefix="byo-level6-")
    try:
        kernel.unshare(sc.CLONE_NEWPID, "Our next child is born in a new PID namespace")
        pid = kernel.fork("The container's first process: PID 1 in the new namespace")
        if pid == 0:
            try:
                container(image_dir, scratch, argv)
            except BaseException as exc:   # noqa: BLE001 (the child must never return into main)
                print(f"level6: {exc}", file=sys.stderr)
            os._exit(127)
        _, status = os.waitpid(pid, 0)
    finally:
        os.rmdir(scratch)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
