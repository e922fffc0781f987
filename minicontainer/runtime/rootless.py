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

That map is one id, the caller's. When an administrator granted the
caller subordinate ids (/etc/subuid) and newuidmap is installed, the map
has ranges too, written by newuidmap/newgidmap, so that an image's other
users exist inside: idmap.py explains both. What root mode does for
security still holds inside: the capability bounding set, no_new_privs,
seccomp, masked paths.

What the kernel refuses a user namespace, and what minict does instead:
- mknod (device nodes): /dev gets binds of the host's null, zero, full,
  random, urandom and tty (devices.populate_dev);
- overlayfs' trusted.* xattrs: the overlay is mounted with `userxattr`
  (Linux >= 5.11), and image layers are unpacked with user.overlay.*
  xattrs (image/extract.py);
- a veth into the host's bridge: the default network is slirp4netns, a
  network in user space (usernet.py), when it is installed;
- cgroups outside a subtree delegated to the user (cgroups/delegated.py)
  and the rest check_request refuses.
"""

import os
import shutil

from .. import idmap
from .. import syscalls as sc
from ..cgroups import delegated
from ..cgroups.limits import RESOURCE_FLAGS
from ..errors import BadArgument, NotRoot, RunFailed
from . import usernet
from .flags import Bind, parse_device

# overlayfs accepts user.overlay.* xattrs (mount option userxattr) from
# Linux 5.11 on (Documentation/filesystems/overlayfs.rst, "User xattr").
OVERLAY_USERXATTR_KERNEL = (5, 11)

def active() -> bool:
    """Does this minict run without root (and so in a user namespace)?"""
    return os.geteuid() != 0


def check_request(config, request) -> None:
    """Refuse, before anything is made, what minict cannot do without
    root; each error says what to do instead. `request`: `minict run`'s
    (request.RunRequest), with the rootless default network
    (default_network) where --network was not given."""
    if sc.kernel_version() < OVERLAY_USERXATTR_KERNEL:
        raise RunFailed(f"minict run without root needs Linux >= 5.11 (overlayfs in a user "
                        f"namespace, mount option userxattr); this kernel is "
                        f"{os.uname().release}", "run it as root, or on a newer kernel")
    _check_own_store(config)
    idmap.of_store(config.root)    # a store whose id map is gone fails here, before any change
    limits = [name for name in RESOURCE_FLAGS if name in request.resources]
    if limits:
        # Only in a cgroup v2 subtree delegated to the caller (systemd's
        # Delegate=yes), with each limit's controller delegated too; else
        # CgroupUnavailable says why, and what to do (cgroups/delegated.py).
        delegated.check_flags(limits)
    network = request.network
    if network not in ("none", "host", usernet.NAME):
        raise BadArgument(f"--network {network} needs root (a veth into the host's bridge); "
                          f"without root minict has {usernet.NAME}, none and host",
                          f"pass --network {usernet.NAME} (a network in user space), none "
                          f"(loopback only) or host (the host's own)")
    if (request.publish or request.publish_all) and network != usernet.NAME:
        raise BadArgument(f"-p/-P without root need --network {usernet.NAME} (installed: "
                          f"{'yes' if shutil.which(usernet.NAME) else 'no'})",
                          f"install {usernet.NAME} and pass --network {usernet.NAME}, or drop "
                          f"-p/-P (with --network host the container's ports are the host's)")
    # -d works: the supervisor is the user's process like any other.
    # --gpu, --gpus, --gpu-plan and --device work: device nodes are bound
    # from the host instead of made with mknod (gpu.py, device_binds).
    if request.privileged:
        raise BadArgument("--privileged is not supported without root yet",
                          "drop --privileged, or run minict as root")
    # --ipc host needs no privilege: the container's process just does not
    # unshare its IPC namespace (child.py), and binds the host's /dev/shm.
    # hpcshim's jobs ask for it, so that the ranks of one node share memory.
    for name, allowed in (("pid", ("private", "shareable")),
                          ("ipc", ("private", "shareable", "host"))):
        value = getattr(request, name)
        if value not in allowed:
            raise BadArgument(f"--{name} {value} is not supported without root yet "
                              f"(the container must own its {name.upper()} namespace)",
                              f"drop --{name}, or run minict as root")


def device_binds(kernel: sc.Kernel, flags) -> list:
    """--device HOST[:CONTAINER][:rwm] without root: the host's node, bound at
    CONTAINER (mknod is refused in a user namespace). Checked as root mode
    checks it (flags.parse_device), and that the caller may open it: root
    inside is still you outside, and the kernel checks your uid and groups
    against the host's node. Without a device controller the rwm letters
    cannot narrow that further: the node's own mode is what counts."""
    binds = []
    for text in flags:
        node = parse_device(text)
        host = text.split(":")[0]
        needed = os.R_OK | (os.W_OK if "w" in node.access else 0)
        if not os.access(host, needed):
            st = os.stat(host)
            raise BadArgument(f"--device {host}: uid {os.getuid()} may not open it (mode "
                              f"{st.st_mode & 0o7777:04o}, owner {st.st_uid}:{st.st_gid})",
                              "ask for access to it (often a group such as video, render or "
                              "disk), or run minict as root")
        kernel.explain(f"--device {host}: bound from the host at {node.path} (no mknod without "
                       f"root); the kernel checks your access to the host's node")
        binds.append(Bind(host, node.path, False))
    return binds


def _check_own_store(config) -> None:
    """Root's store (/var/lib/minict) is not the user's: say so in one line."""
    refused = config.not_writable()
    if refused is not None:
        what, path = refused
        raise NotRoot(f"minict run without root needs a {what} of its own, and {path} is "
                      f"not writable by uid {os.geteuid()}",
                      "give one with --root/--state (MINICT_ROOT/MINICT_STATE); the default "
                      "without root is ~/.local/share/minict and $XDG_RUNTIME_DIR/minict")


def default_network(kernel: sc.Kernel) -> str:
    """The network of a rootless container that named none: a network in
    user space (usernet.py) when slirp4netns is installed, as podman and
    Docker's rootless mode give; else `none`, loopback only (sharing the
    host's network silently would be a surprise)."""
    if shutil.which(usernet.NAME):
        kernel.explain(f"Without root there is no bridge (its veth needs root): the container "
                       f"gets --network {usernet.NAME}, a network in user space")
        return usernet.NAME
    kernel.explain(f"Without root there is no bridge (its veth needs root), and {usernet.NAME} "
                   f"is not installed: the container gets --network none, loopback only "
                   f"(pass --network host for the host's)")
    return "none"


def choose_id_map(kernel: sc.Kernel, store_root) -> idmap.IdMap:
    """The container's map is its store's (idmap.of_store): the layers'
    files are owned through it. Narrated, with why it is that one."""
    chosen = idmap.of_store(store_root)
    possible, reason = idmap.caller_map()
    if possible.ranged and not chosen.ranged:
        reason = ("this store's files were unpacked with one id, before subordinate ids were "
                  "used; a new store (--root) would keep the image's owners")
    kernel.explain(f"Id map of the user namespace: {chosen.describe()}. Why: {reason}")
    return chosen
