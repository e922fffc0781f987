"""`minict run` without root: a user namespace first, then everything else.

Only when minict runs as an ordinary user (os.geteuid() != 0); as root
nothing here is used. The kernel lets any user make a user namespace
(user_namespaces(7)); inside it the user may be root, and the new PID,
network, mount... namespaces it then makes belong to that user namespace,
so root in there may mount, set a hostname, drop capabilities. Outside it
is still the same user: every file it makes on the host is the caller's.

    owner (uid U)                         container's first process
    clone(NEWUSER|NEWPID|NEWNET) -------> born in all three, no uid yet
    /proc/PID/uid_map   "0 U 1"           (waits for "go")
    /proc/PID/setgroups "deny"
    /proc/PID/gid_map   "0 G 1"
    "go" -------------------------------> uid 0 inside = U outside

The map is one id: the caller's. (Ranges from /etc/subuid written by
newuidmap, so that an image's other users exist too, are not done yet;
see docs/ARCHITECTURE.md.) What root mode does for security still holds
inside: the capability bounding set, no_new_privs, seccomp, masked paths.

What the kernel refuses a user namespace, and what minict does instead:
- mknod (device nodes): /dev gets binds of the host's null, zero, full,
  random, urandom and tty (devices.populate_dev);
- overlayfs' trusted.* xattrs: the overlay is mounted with `userxattr`
  (Linux >= 5.11), and image layers are unpacked with user.overlay.*
  xattrs (image/extract.py);
- a veth into the host's bridge, and cgroup writes: see check_request.
"""

import ctypes
import os
import platform
import signal

from .. import syscalls as sc
from ..errors import BadArgument, CgroupUnavailable, NotRoot, RunFailed

# overlayfs accepts user.overlay.* xattrs (mount option userxattr) from
# Linux 5.11 on (Documentation/filesystems/overlayfs.rst, "User xattr").
OVERLAY_USERXATTR_KERNEL = (5, 11)

SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220, "ppc64le": 120, "s390x": 120}


def active() -> bool:
    """Does this minict run without root (and so in a user namespace)?"""
    return os.geteuid() != 0


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel, e.g. (6, 8) for "6.8.0-45-generic"."""
    parts = (release or platform.release()).split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def check_request(config, options: dict, network_given: bool) -> None:
    """Refuse, before anything is made, what phase 1 of rootless minict
    cannot do; each error says what to do instead. `options`: `minict run`'s
    (click's names). `network_given`: --network was on the command line.
    Without it the rootless default is `none` (see default_network)."""
    if kernel_version() < OVERLAY_USERXATTR_KERNEL:
        raise RunFailed(f"minict run without root needs Linux >= 5.11 (overlayfs in a user "
                        f"namespace, mount option userxattr); this kernel is "
                        f"{platform.release()}", "run it as root, or on a newer kernel")
    from .resources import RESOURCE_FLAGS
    _check_own_store(config)
    limits = [name for name in RESOURCE_FLAGS if options.get(name) not in (None, (), [], "")]
    if limits:
        flag = "--" + limits[0].replace("_", "-")
        raise CgroupUnavailable(f"{flag} needs a cgroup, and minict without root cannot make one "
                                f"(delegated cgroup v2 is not supported yet)",
                                f"drop {flag}, or run minict as root")
    network = options.get("network") or "bridge"
    if network_given and network not in ("none", "host"):
        raise BadArgument(f"--network {network} needs root (a veth into the host's bridge); "
                          f"without root minict has none and host",
                          "pass --network none (loopback only) or --network host "
                          "(slirp4netns/pasta is not supported yet)")
    if options.get("publish") or options.get("publish_all"):
        raise BadArgument("-p/-P need a bridge network, which needs root",
                          "drop -p/-P (with --network host the container's ports are the "
                          "host's), or run minict as root")
    for name, flag in (("detach", "-d"), ("gpu", "--gpu"), ("gpus", "--gpus"),
                       ("gpu_plan", "--gpu-plan"), ("device", "--device"),
                       ("privileged", "--privileged")):
        if options.get(name) not in (None, False, (), [], ""):
            raise BadArgument(f"{flag} is not supported without root yet",
                              f"drop {flag}, or run minict as root")
    for name in ("pid", "ipc"):
        value = options.get(name)
        if value not in (None, "", "private", "shareable"):
            raise BadArgument(f"--{name} {value} is not supported without root yet "
                              f"(the container must own its {name.upper()} namespace)",
                              f"drop --{name}, or run minict as root")


def _check_own_store(config) -> None:
    """Root's store (/var/lib/minict) is not the user's: say so in one line."""
    for what, path in (("store", config.root), ("state directory", config.state)):
        existing = path
        while not os.path.exists(existing):
            existing = existing.parent
        if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
            raise NotRoot(f"minict run without root needs a {what} of its own, and {path} is "
                          f"not writable by uid {os.geteuid()}",
                          "give one with --root/--state (MINICT_ROOT/MINICT_STATE); the default "
                          "without root is ~/.local/share/minict and $XDG_RUNTIME_DIR/minict")


def default_network(kernel: sc.Kernel) -> str:
    """The network of a rootless container that asked for none: `none`.
    Docker's rootless mode gives it a user-mode network stack (slirp4netns);
    minict has none yet, and sharing the host's network silently would be a
    surprise, so it gets its own namespace with only loopback."""
    kernel.explain("Without root there is no bridge (its veth needs root): the container "
                   "gets --network none, loopback only (pass --network host for the host's)")
    return "none"


def clone_into_namespaces(kernel: sc.Kernel, flags: int, why: str) -> int:
    """fork(), but born in new namespaces, CLONE_NEWUSER among them; returns
    the child's pid (0 in the child). os.fork cannot take clone flags, and
    unshare(CLONE_NEWUSER) would move minict itself into the new user
    namespace, from which it could never step back. clone(2) with SIGCHLD
    and no new stack is exactly fork plus flags. The caller is a single
    thread (the owner forks nothing else meanwhile), as fork needs too."""
    kernel.explain(why, f"clone({sc.clone_flags_text(flags)}|SIGCHLD, stack=NULL)")
    number = SYS_CLONE.get(os.uname().machine)
    if number is None:
        raise RunFailed(f"minict does not know clone(2)'s number on {os.uname().machine}",
                        "run minict as root")
    libc = ctypes.CDLL(None, use_errno=True)
    pid = libc.syscall(ctypes.c_long(number), ctypes.c_ulong(flags | signal.SIGCHLD),
                       None, None, None, None)
    if pid < 0:
        err = ctypes.get_errno()
        raise RunFailed(f"the kernel refused a user namespace: clone: {os.strerror(err)}",
                        "unprivileged user namespaces are disabled on this host "
                        "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone, "
                        "or an AppArmor/SELinux policy); run minict as root")
    return pid


def write_id_maps(kernel: sc.Kernel, pid: int, uid: int, gid: int) -> None:
    """Map root in the child's user namespace to the caller, one id each.
    setgroups must be denied before an unprivileged gid_map is written
    (CVE-2014-8989: else dropping a group with setgroups could *gain*
    access to files that deny that group)."""
    kernel.write_proc(f"/proc/{pid}/uid_map", f"0 {uid} 1\n",
                      f"User namespace: uid 0 inside is uid {uid} (you) outside; no other uid "
                      f"exists in there")
    kernel.write_proc(f"/proc/{pid}/setgroups", "deny\n",
                      "Deny setgroups in there: the kernel's condition for an unprivileged gid_map")
    kernel.write_proc(f"/proc/{pid}/gid_map", f"0 {gid} 1\n",
                      f"User namespace: gid 0 inside is gid {gid} outside")


def in_user_namespace() -> bool:
    """Is this process in a user namespace minict made (not the host's)?
    The container's side asks this, not geteuid(): in there it is uid 0.
    The host's namespace maps every id to itself: "0 0 4294967295"."""
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() != ["0", "0", "4294967295"]
    except OSError:
        return False
