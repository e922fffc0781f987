"""config.json's `mounts`, and the devices of `linux.devices`, made in the new root.

Each entry of `mounts` is one mount(2): a filesystem type, a source, a
destination inside the container, and options in mount(8)'s words. The
words are of three kinds, and mount(2) takes them in three places:
- flags (ro, nosuid, nodev, noexec, relatime...) are bits of its flags
  argument; their opposites (rw, suid, dev, exec) clear the bit;
- propagation (private, rslave, shared...) cannot be given with a mount:
  it is a second call on the mount just made;
- everything else (mode=755, size=65536k, newinstance, gid=5) is the
  filesystem's own data string, passed as it is.
A "bind" (or "rbind": with every mount below the source) copies a
directory or file that already exists; its flags come from its source, so
the ones asked for are applied by a second call, a remount.

Every destination is reached through runtime/rootfs.py's mountpoint(): a
handle opened inside the root, never a path the kernel walks again, so a
symlink in the image cannot send a mount outside it (CVE-2021-30465).
"""

import os
import shutil

from .. import syscalls as sc
from ..cgroups.detect import whole_hierarchy_mountpoint
from ..errors import RunFailed
from ..runtime import devices as default_devices
from ..runtime.rootfs import bind_mount, mountpoint, path_in_root, preserved_flags

FLAGS = {"ro": (sc.MS_RDONLY, True), "rw": (sc.MS_RDONLY, False),
         "nosuid": (sc.MS_NOSUID, True), "suid": (sc.MS_NOSUID, False),
         "nodev": (sc.MS_NODEV, True), "dev": (sc.MS_NODEV, False),
         "noexec": (sc.MS_NOEXEC, True), "exec": (sc.MS_NOEXEC, False),
         "sync": (sc.MS_SYNCHRONOUS, True), "async": (sc.MS_SYNCHRONOUS, False),
         "dirsync": (sc.MS_DIRSYNC, True), "mand": (sc.MS_MANDLOCK, True),
         "nomand": (sc.MS_MANDLOCK, False), "noatime": (sc.MS_NOATIME, True),
         "atime": (sc.MS_NOATIME, False), "nodiratime": (sc.MS_NODIRATIME, True),
         "diratime": (sc.MS_NODIRATIME, False), "relatime": (sc.MS_RELATIME, True),
         "norelatime": (sc.MS_RELATIME, False), "strictatime": (sc.MS_STRICTATIME, True),
         "nostrictatime": (sc.MS_STRICTATIME, False), "remount": (sc.MS_REMOUNT, True),
         "nosymfollow": (sc.MS_NOSYMFOLLOW, True), "symfollow": (sc.MS_NOSYMFOLLOW, False),
         "lazytime": (sc.MS_LAZYTIME, True), "nolazytime": (sc.MS_LAZYTIME, False),
         "iversion": (sc.MS_I_VERSION, True), "noiversion": (sc.MS_I_VERSION, False),
         "silent": (sc.MS_SILENT, True), "loud": (sc.MS_SILENT, False), "defaults": (0, True)}
# The recursive ones (runtime spec 1.1): the flag on the mount and on every
# mount below it, which only mount_setattr(2) with AT_RECURSIVE can give.
RECURSIVE = {"rro": (sc.MOUNT_ATTR_RDONLY, True), "rrw": (sc.MOUNT_ATTR_RDONLY, False),
             "rnosuid": (sc.MOUNT_ATTR_NOSUID, True), "rsuid": (sc.MOUNT_ATTR_NOSUID, False),
             "rnodev": (sc.MOUNT_ATTR_NODEV, True), "rdev": (sc.MOUNT_ATTR_NODEV, False),
             "rnoexec": (sc.MOUNT_ATTR_NOEXEC, True), "rexec": (sc.MOUNT_ATTR_NOEXEC, False),
             "rnosymfollow": (sc.MOUNT_ATTR_NOSYMFOLLOW, True),
             "rsymfollow": (sc.MOUNT_ATTR_NOSYMFOLLOW, False)}
PROPAGATION = {"private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
               "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
               "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
               "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC}
# Options that ask the runtime (not the kernel) to do something.
RUNTIME_OPTIONS = {"bind", "rbind", "tmpcopyup"}


class Options:
    """One mount's options, sorted into mount(2)'s three places."""

    def __init__(self, options):
        self.flags, self.propagation, data = 0, [], []
        self.attr_set = self.attr_clr = 0           # the recursive flags (RECURSIVE)
        self.bind = self.recursive = self.copy_up = False
        for option in options:
            if option in FLAGS:
                bit, on = FLAGS[option]
                self.flags = self.flags | bit if on else self.flags & ~bit
            elif option in RECURSIVE:
                bit, on = RECURSIVE[option]
                self.attr_set = self.attr_set | bit if on else self.attr_set & ~bit
                self.attr_clr = self.attr_clr & ~bit if on else self.attr_clr | bit
            elif option in PROPAGATION:
                self.propagation.append(PROPAGATION[option])   # one call each
            elif option in ("bind", "rbind"):
                self.bind, self.recursive = True, self.recursive or option == "rbind"
            elif option == "tmpcopyup":
                self.copy_up = True
            else:
                data.append(option)
        self.data = ",".join(data) or None


def make_mount(kernel: sc.Kernel, root: str, bundle: str, mount: dict, nodev: bool,
               cgroup_namespace: bool = False) -> None:
    """One entry of config.json's mounts, inside `root` (before pivot_root).
    `nodev`: no device controller guards the container, so nothing but the
    runtime's own /dev may hold openable device nodes (runtime/device_access.py).
    `cgroup_namespace`: the container has one of its own (linux.namespaces)."""
    options = Options(mount.get("options", []))
    kind = mount.get("type") or ("bind" if options.bind else "")
    destination = os.path.normpath(mount["destination"])
    source = mount.get("source") or kind
    hierarchy = None
    if kind == "cgroup" and not cgroup_namespace and not options.bind and options.data is None:
        hierarchy = whole_hierarchy_mountpoint()
    if hierarchy is not None:
        # In the host's cgroup namespace a new cgroup2 mount would show what
        # this bind shows (the whole tree), but mounting it there also
        # resets the tree's system-wide mount options (nsdelegate,
        # memory_recursiveprot: cgroup-v2.rst, "Mounting") to its own, for
        # every cgroup on the host (runc issue 5258), and waits out an RCU
        # grace period.
        kernel.explain(f"No cgroup namespace of its own: the cgroup v2 tree at {hierarchy} is "
                       f"bound at {destination}, not mounted anew")
        _bind(kernel, root, bundle, hierarchy, destination, options, nodev)
    elif options.bind or kind == "bind":
        _bind(kernel, root, bundle, source, destination, options, nodev)
    else:
        openable = destination in ("/dev", "/dev/pts")   # the runtime's own device nodes
        flags = options.flags | (sc.MS_NODEV if nodev and not openable else 0)
        if kind == "cgroup":
            # In its own cgroup namespace the container sees only its part of
            # the tree; without one (and no tree here to bind) all of it, as
            # runc mounts it. A cgroup v1 host gets the unified hierarchy too.
            kind, source = "cgroup2", "cgroup2"
        below = _hold_image_directory(root, destination) if options.copy_up else None
        fallback = False
        with mountpoint(kernel, root, destination, True) as target:
            try:
                kernel.mount(source, target, kind, flags, options.data,
                             f"Mount {kind} at {destination} (config.json mounts)")
            except PermissionError:
                if kind != "sysfs":
                    raise
                # A fresh sysfs needs a network namespace of our own: with the
                # host's network, runc binds the host's /sys instead. So do we
                # (after the with: the handle is on the directory, not the mount).
                fallback = True
        if fallback:
            bind_mount(kernel, root, "/sys", destination, bool(flags & sc.MS_RDONLY),
                       "No network namespace of our own: bind the host's /sys instead",
                       nodev=bool(flags & sc.MS_NODEV))
        if below is not None:
            _copy_up(kernel, root, destination, below)
    _set_recursive(kernel, root, destination, options, nodev)
    _propagate(kernel, root, destination, options)


def _is_directory(root, destination) -> bool:
    return os.path.isdir(path_in_root(root, destination))


def _bind(kernel, root, bundle, source, destination, options: Options, nodev: bool) -> None:
    if not source.startswith("/"):
        source = os.path.join(bundle, source)   # relative sources are the bundle's
    if not os.path.exists(source):
        raise RunFailed(f"mount source {source} (for {destination}) does not exist",
                        "create it, or fix config.json's mounts")
    directory = os.path.isdir(source)
    node = default_devices.is_device_node(source)
    wanted = options.flags | (sc.MS_NODEV if nodev and not node else 0)
    if options.recursive and not wanted & ~(sc.MS_RDONLY | sc.MS_NODEV | sc.MS_REMOUNT):
        # rbind with ro or nodev: set on the whole tree before it is attached,
        # submounts included (a remount changes one mount only), and with no
        # window for a swapped destination to get the mount (CVE-2021-30465).
        what = f"the host's device node {source}" if node else source
        bind_mount(kernel, root, source, destination, bool(wanted & sc.MS_RDONLY),
                   f"Bind {what} at {destination}"
                   + (" with its submounts" if directory else "")
                   + (" (read-only)" if wanted & sc.MS_RDONLY else ""),
                   nodev=bool(wanted & sc.MS_NODEV))
        return
    flags = sc.MS_BIND | (sc.MS_REC if options.recursive else 0)
    with mountpoint(kernel, root, destination, directory) as target:
        kernel.mount(source, target, None, flags, None,
                     f"Bind {source} at {destination}{' with its submounts' if options.recursive else ''}")
    if wanted & ~sc.MS_REMOUNT:
        # A bind takes its flags from its source: changing them is a remount,
        # which must repeat the ones it copied (or it would clear them).
        with mountpoint(kernel, root, destination, directory) as target:
            kernel.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | wanted
                         | preserved_flags(source), None,
                         f"Give the bind at {destination} its flags")


def _set_recursive(kernel, root, destination, options: Options, nodev: bool) -> None:
    clear = options.attr_clr
    if nodev and clear & sc.MOUNT_ATTR_NODEV:
        kernel.explain(f"No device controller here: {destination} stays nodev (rdev ignored)")
        clear &= ~sc.MOUNT_ATTR_NODEV
    if not (options.attr_set or clear):
        return
    if not sc.has_mount_setattr():
        raise RunFailed(f"mount options for {destination}: the recursive ones (rro, rnosuid...) "
                        f"need Linux 5.12's mount_setattr(2)", "use ro, nosuid... instead")
    with mountpoint(kernel, root, destination, _is_directory(root, destination)) as target:
        kernel.set_tree_attributes(target, options.attr_set, clear,
                                   f"The recursive options of {destination}: every mount in it")


def _propagate(kernel, root, destination, options: Options) -> None:
    for propagation in options.propagation:
        with mountpoint(kernel, root, destination, _is_directory(root, destination)) as target:
            kernel.mount(None, target, None, propagation, None,
                         f"Set the propagation of {destination}")


def _hold_image_directory(root, destination) -> int | None:
    """An fd on what the image has at `destination`, taken before a tmpfs hides it."""
    try:
        return os.open(path_in_root(root, destination), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None   # nothing there: nothing to copy


def _copy_up(kernel, root, destination, below: int) -> None:
    """tmpcopyup (crun's and podman's option): the image's files at the
    destination, hidden by the new tmpfs, are copied into it, through the
    fd taken on the hidden directory before the mount."""
    try:
        kernel.explain(f"tmpcopyup: copy the image's {destination} into the new tmpfs")
        shutil.copytree(f"/proc/self/fd/{below}", path_in_root(root, destination), symlinks=True,
                        dirs_exist_ok=True)
    finally:
        os.close(below)


def make_devices(kernel: sc.Kernel, root: str, devices: list, bind_host: bool) -> None:
    """linux.devices, then the defaults every container gets (runtime spec,
    config-linux.md "Default Devices") unless the config named them, and the
    /dev links (fd, stdin, stdout, stderr, ptmx)."""
    dev = path_in_root(root, "/dev")
    named = {d["path"] for d in devices}
    for name, major, minor in default_devices.DEFAULT_DEVICES:
        if f"/dev/{name}" not in named:
            devices = devices + [{"path": f"/dev/{name}", "type": "c", "major": major,
                                  "minor": minor, "fileMode": 0o666, "uid": 0, "gid": 0}]
    for node in devices:
        path = path_in_root(root, node["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.lexists(path):
            os.unlink(path)
        if bind_host and node["type"] != "p":     # (a fifo needs no privilege to make)
            kernel.write_file(path, b"", 0o666, f"Mount point for {node['path']}")
            kernel.mount(node["path"], path, None, sc.MS_BIND, None,
                         f"Bind the host's {node['path']} (no mknod in a user namespace)")
            continue
        kind = "p" if node["type"] == "p" else ("b" if node["type"] == "b" else "c")
        kernel.mknod(path, kind, node.get("major", 0), node.get("minor", 0),
                     # (the permission bits only: a set-id device node, as in runc, is not made)
                     node.get("fileMode", 0o666) & 0o777, f"Create {node['path']} (linux.devices)",
                     uid=node.get("uid", 0), gid=node.get("gid", 0))
    for name, target in default_devices.LINKS:
        link = os.path.join(dev, name)
        if name == "ptmx" and os.path.lexists(link):
            continue
        if not os.path.lexists(link):
            kernel.symlink(target, link, f"/dev/{name} -> {target}")
