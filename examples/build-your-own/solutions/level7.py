#!/usr/bin/env python3
"""Level 7 (reference solution): a veth pair into a network namespace.

Goal: the container gets a network of its own: a new network namespace
(only a loopback, down, at first) and one end of a veth pair, a virtual
cable whose other end stays on the host. Each end gets an address in a
private /24 (10.231.X.0/24: X from our pid, so two runs rarely meet), the
container routes everything through the host's end, and `ping` crosses.
The parent does the wiring while the child waits on a pipe, as minict's
owner does (runtime/launch.py, networking.attach). When the container
ends, its namespace goes, and the veth with it.

Levels 1-4 and 6 come along compactly; level 5's cgroup is left out so
that this level runs on any Linux machine (add it back in the VM).

Run:    sudo python3 level7.py IMAGE_DIR CMD [ARG...]
        e.g. ... level7.py IMAGE sh -c 'ip addr; ping -c 1 10.231.X.1'
        (the addresses are printed on stderr; MINICT_EXPLAIN=1 narrates every step)
Check:  sudo examples/build-your-own/check.sh 7 [FILE]
Time:   30-40 minutes.
API:    minict's kernel layer (netlink through pyroute2): kernel.open_namespace,
        create_veth, add_address, set_link_up, setns, add_default_route, delete_link.
Read:   minicontainer/runtime/networking.py (attach: the same steps, onto a bridge),
        minicontainer/syscalls/api.py (create_veth and the netlink calls),
        minicontainer/syscalls/linux.py (_do_create_veth: the pyroute2 call);
        the lesson examples/networking/.
"""

import errno
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import seccomp  # libseccomp's bindings (level 6)

try:
    from minicontainer import syscalls as sc
    from minicontainer.runtime.capabilities import DOCKER_DEFAULT, NAMES, NUMBERS, last_cap
except ImportError:   # run as `python3 level7.py` from a checkout: use the checkout's minicontainer
    sys.path.insert(0, str(next(p for p in Path(__file__).resolve().parents
                                if (p / "minicontainer").is_dir())))
    from minicontainer import syscalls as sc
    from minicontainer.runtime.capabilities import DOCKER_DEFAULT, NAMES, NUMBERS, last_cap

kernel = sc.Kernel(sc.Narrator(os.environ.get("MINICT_EXPLAIN") == "1"))
sc.prctl()   # python-prctl (capabilities), imported now: after pivot_root .venv is out of reach
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOSUID_NODEV_NOEXEC = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC


# ---- levels 1-4 and 6, compactly: an overlay root, pivot_root, /proc, /dev, confinement -------

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


def confine() -> None:
    """Level 6: Docker's capabilities, no_new_privs, a seccomp deny list."""
    keep = [NUMBERS[name] for name in DOCKER_DEFAULT if sc.in_bounding_set(NUMBERS[name])]
    for number in range(last_cap() + 1):
        if number not in keep and sc.in_bounding_set(number):
            kernel.drop_bounding_cap(number, NAMES[number], f"Drop {NAMES[number]}")
    kernel.set_capabilities(keep, [NAMES[n] for n in keep], "Keep Docker's default set")
    kernel.set_no_new_privs("execve can never grant privileges again")
    deny = ["unshare", "setns", "mount", "umount2", "pivot_root", "open_tree", "move_mount",
            "fsopen", "fsmount", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
            "userfaultfd", "init_module", "finit_module", "delete_module", "kexec_load", "reboot"]
    syscall_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    if os.uname().machine == "x86_64":
        syscall_filter.add_arch(seccomp.Arch.X86)
        syscall_filter.add_arch(seccomp.Arch.X32)
    for name in deny:
        try:
            syscall_filter.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except RuntimeError:
            kernel.explain(f"This libseccomp does not know {name}: not filtered")
    kernel.load_seccomp(syscall_filter, f"EPERM for {len(deny)} calls", "Load the seccomp filter")


# ---- LEVEL 7 (new): a network namespace, and a veth pair into it -------------------------------

NAMESPACES = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWNET    # the child's (PID: the parent's)
SUBNET = f"10.231.{os.getpid() % 250 + 1}"      # a private /24 from an uncommon range
HOST_ADDRESS, CONTAINER_ADDRESS, PREFIX = f"{SUBNET}.1", f"{SUBNET}.2", 24
VETH = f"byo{os.getpid()}"                      # the host's end (names: 15 characters at most)


def plug_host_end(netns: int, pid: int) -> None:
    """In our (the host's) network namespace: the pair, and the host's end."""
    kernel.create_veth(VETH, "eth0", netns, pid,
                       "A virtual cable: one end here, the other, eth0, made directly in the "
                       "container's network namespace")
    kernel.add_address(VETH, HOST_ADDRESS, PREFIX, "The host's end of the cable")
    kernel.set_link_up(VETH, "Bring the host's end up")


def configure_inside(netns: int, own: int, pid: int) -> None:
    """Step into the container's namespace to set up its end, then come back."""
    kernel.setns(netns, sc.CLONE_NEWNET, "Step into the container's network namespace",
                 what=f"/proc/{pid}/ns/net")
    try:
        kernel.add_address("eth0", CONTAINER_ADDRESS, PREFIX, "The container's address")
        kernel.set_link_up("eth0", "Bring the container's eth0 up")
        kernel.set_link_up("lo", "And its loopback (down in a new namespace)")
        kernel.add_default_route(HOST_ADDRESS, "Everything else goes through the host's end")
    finally:
        kernel.setns(own, sc.CLONE_NEWNET, "Back in our own network namespace",
                     what="/proc/self/ns/net")


def remove_veth() -> None:
    # The veth went with the container's namespace, but the kernel tears a
    # namespace down lazily: delete our end now, so the name is free at once.
    if sc.link_exists(VETH):
        try:
            kernel.delete_link(VETH, "Remove the host's end of the cable (the pair goes with it)")
        except OSError as exc:
            if exc.errno != errno.ENODEV:    # gone meanwhile: what we wanted
                raise


def wire_network(pid: int) -> None:
    """The parent's part, while the child waits: namespaces are held by fds."""
    netns = kernel.open_namespace(pid, "net", "Hold the container's network namespace")
    own = kernel.open_namespace("self", "net", "And ours, to come back to")
    try:
        plug_host_end(netns, pid)
        configure_inside(netns, own, pid)
    finally:
        os.close(netns)
        os.close(own)


# ---- the container's side, then the parent's ---------------------------------------------------

def container(image_dir: str, scratch: str, argv: list[str], ready: int, go: int) -> None:
    kernel.unshare(NAMESPACES, "Namespaces of its own: mounts, hostname, network")
    os.write(ready, b"1")          # the parent may wire our network namespace now
    if os.read(go, 1) != b"1":     # EOF: the parent could not; stop here
        os._exit(1)
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "No mount made here may propagate back to the host")
    kernel.sethostname("level7", "The container's own hostname")
    pivot(overlay_root(image_dir, scratch))
    kernel_filesystems()
    command = shutil.which(argv[0], path=PATH) or argv[0]
    confine()
    kernel.execve(command, argv, [f"PATH={PATH}", "HOME=/root", "HOSTNAME=level7"],
                  "Become the container's command, PID 1")


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: level7.py IMAGE_DIR CMD [ARG...]", file=sys.stderr)
        return 2
    image_dir, argv = os.path.abspath(sys.argv[1]), sys.argv[2:]
    if not os.path.isdir(image_dir):
        print(f"level7: no such image directory: {image_dir}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("level7: run this as root (sudo): it makes namespaces, mounts and links",
              file=sys.stderr)
        return 2
    print(f"level7: the container is {CONTAINER_ADDRESS}/{PREFIX}, the host's end {VETH} "
          f"{HOST_ADDRESS}", file=sys.stderr)
    scratch = tempfile.mkdtemp(prefix="byo-level7-")
    try:
        ready_read, ready_write = os.pipe()
        go_read, go_write = os.pipe()
        kernel.unshare(sc.CLONE_NEWPID, "Our next child is born in a new PID namespace")
        pid = kernel.fork("The container's first process: PID 1 in the new namespace")
        if pid == 0:
            os.close(ready_read)
            os.close(go_write)
            try:
                container(image_dir, scratch, argv, ready_write, go_read)
            except BaseException as exc:   # noqa: BLE001 (the child must never return into main)
                print(f"level7: {exc}", file=sys.stderr)
            os._exit(127)
        os.close(ready_write)
        os.close(go_read)
        if os.read(ready_read, 1) == b"1":
            try:
                wire_network(pid)                              # LEVEL 7
            except BaseException:
                kernel.kill(pid, signal.SIGKILL, "The container's network failed: stop it")
                os.waitpid(pid, 0)
                raise
            os.write(go_write, b"1")
        os.close(go_write)
        _, status = os.waitpid(pid, 0)
    finally:
        os.rmdir(scratch)
        remove_veth()                                          # LEVEL 7
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
