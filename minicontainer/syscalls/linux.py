"""Kernel: KernelApi with the real primitives, for Linux.

Each `_do_*` makes one call, keeping C's semantics visible (rubber-docker
style): flags are the kernel's bit masks, and a failed call raises OSError
with the errno, the call and its arguments. Where Python's os module has
the call, it is used; the rest go through the C library (libc.py), bpf(2)
through bpf.py, netlink through pyroute2 and capabilities through
python-prctl.
"""

import ctypes
import errno
import fcntl
import os
import resource
import signal
import struct

from baselib import inroot

from .api import KernelApi
from .bpf import attach_cgroup_device_program
from .flags import (PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, AT_EMPTY_PATH, AT_FDCWD, AT_RECURSIVE, AF_INET, CLONE_NEWNET, IFF_UP,
                    MOUNT_ATTR_NAMES, MOUNT_ATTR_NODEV, MOUNT_ATTR_RDONLY, MOVE_MOUNT_F_EMPTY_PATH,
                    MOVE_MOUNT_T_SYMLINKS, OPEN_TREE_CLOEXEC, OPEN_TREE_CLONE, SIOCGIFFLAGS,
                    SIOCSIFFLAGS, SOCK_CLOEXEC, SOCK_DGRAM, SYS_CLONE, SYS_MOUNT_SETATTR,
                    SYS_MOVE_MOUNT, SYS_OPEN_TREE, TIOCGPTN, TIOCGPTPEER, TIOCGWINSZ, TIOCSCTTY,
                    TIOCSPTLCK, TIOCSWINSZ, clone_flags_text, flags_text)
from .libc import check, libc, path_arg
from .narrator import Narrator
from .optional import netlink, prctl
from .programs import iptables_path, run_program


class Kernel(KernelApi):
    """Every kernel-facing call minict makes, narrated and made."""

    def __init__(self, narrator: Narrator | None = None):
        super().__init__(narrator)
        self._netlink = None   # a pyroute2 IPRoute, for the network namespace we are in

    # ---- the real primitives -------------------------------------------------

    def _do_unshare(self, flags):
        check(libc().unshare(flags), "unshare", clone_flags_text(flags))

    def _do_attach_device_program(self, cgroup_path, program):
        attach_cgroup_device_program(cgroup_path, program)

    def _do_load_seccomp(self, syscall_filter):
        syscall_filter.load()

    def _do_clone(self, flags):
        machine = os.uname().machine
        number = SYS_CLONE.get(machine)
        if number is None:
            raise OSError(errno.ENOSYS, f"clone(2): minict does not know its number on {machine}")
        return check(libc().syscall(ctypes.c_long(number), ctypes.c_ulong(flags | signal.SIGCHLD),
                                      None, None, None, None), "clone", clone_flags_text(flags))

    def _do_write_id_map(self, argv):
        result = run_program(argv)
        if result.returncode != 0:
            raise OSError(errno.EPERM, (result.stderr.strip().splitlines() or ["no message"])[-1])

    def _do_setns(self, fd, nstype):
        check(libc().setns(fd, nstype), "setns", fd, clone_flags_text(nstype))
        if nstype & CLONE_NEWNET and self._netlink is not None:
            self._netlink.close()    # its socket belongs to the namespace we left
            self._netlink = None

    def _ipr(self):
        """The netlink socket of the network namespace we are in."""
        if self._netlink is None:
            iproute, _ = netlink()
            self._netlink = iproute()
        return self._netlink

    def _netlink_call(self, what: str, call):
        _, NetlinkError = netlink()   # noqa: N806 (a class)
        try:
            return call(self._ipr())
        except NetlinkError as exc:
            raise OSError(exc.code, f"{what}: {os.strerror(exc.code)}") from None

    def _index(self, ipr, ifname: str) -> int:
        found = ipr.link_lookup(ifname=ifname)
        if not found:
            raise OSError(errno.ENODEV, f"no interface {ifname}")
        return found[0]

    def _do_create_bridge(self, name):
        self._netlink_call(f"create bridge {name}",
                           lambda ipr: ipr.link("add", ifname=name, kind="bridge"))

    def _do_create_veth(self, name, peer, netns_fd):
        self._netlink_call(f"create veth {name}",
                           lambda ipr: ipr.link("add", ifname=name, kind="veth",
                                                peer={"ifname": peer, "net_ns_fd": netns_fd}))

    def _do_set_link_up(self, ifname, master):
        def up(ipr):
            extra = {"master": self._index(ipr, master)} if master else {}
            ipr.link("set", index=self._index(ipr, ifname), state="up", **extra)
        self._netlink_call(f"set {ifname} up", up)

    def _do_add_address(self, ifname, address, prefixlen):
        self._netlink_call(f"add {address} to {ifname}",
                           lambda ipr: ipr.addr("add", index=self._index(ipr, ifname),
                                                address=address, prefixlen=prefixlen))

    def _do_add_default_route(self, gateway):
        self._netlink_call(f"route via {gateway}",
                           lambda ipr: ipr.route("add", dst="0.0.0.0/0", gateway=gateway))

    def _do_delete_link(self, ifname):
        self._netlink_call(f"delete {ifname}",
                           lambda ipr: ipr.link("del", index=self._index(ipr, ifname)))

    def _do_write_sysctl(self, name, value):
        with open(f"/proc/sys/{name.replace('.', '/')}", "w") as f:
            f.write(value)

    def _do_firewall(self, table, action, rule):
        result = run_program([iptables_path(), "-w", "-t", table, action, *rule])
        if result.returncode != 0:
            raise OSError(errno.EINVAL, f"iptables -t {table} {action} {' '.join(rule)}: "
                                        f"{result.stderr.strip()}")

    def _do_mount(self, source, target, fstype, flags, data):
        check(libc().mount(path_arg(source), path_arg(target), path_arg(fstype), ctypes.c_ulong(flags),
                           path_arg(data)),
               "mount", source, target, fstype, flags_text(flags), data)

    def _do_bind_with_attributes(self, source, target, readonly, nodev):
        c = libc()
        tree = check(c.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), path_arg(source),
                                   ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)),
                      "open_tree", source)
        try:
            if readonly:
                _mount_setattr(tree, MOUNT_ATTR_RDONLY, recursive=False)
            if nodev:
                _mount_setattr(tree, MOUNT_ATTR_NODEV, recursive=True)
            check(c.syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), b"",
                            ctypes.c_int(AT_FDCWD), path_arg(target),
                            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS)),
                   "move_mount", target)
        finally:
            os.close(tree)

    def _do_set_tree_attributes(self, target, attr_set, attr_clr):
        _mount_setattr(AT_FDCWD, attr_set, recursive=True, path=target, attr_clr=attr_clr)

    def _do_clone_mount(self, source):
        return check(libc().syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD),
                                      path_arg(source), ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)),
                      "open_tree", source)

    def _do_attach_mount(self, tree, target):
        try:
            check(libc().syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), b"",
                                   ctypes.c_int(AT_FDCWD), path_arg(target),
                                   ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)),
                   "move_mount", target)
        finally:
            os.close(tree)

    def _do_open_in_root(self, root_fd, path):
        return inroot.open_in_root(root_fd, path, os.O_PATH)

    def _do_umount2(self, target, flags):
        check(libc().umount2(path_arg(target), flags), "umount2", target)

    def _do_pivot_root(self, new_root, put_old):
        check(libc().pivot_root(path_arg(new_root), path_arg(put_old)), "pivot_root", new_root, put_old)

    def _do_chdir(self, path):
        os.chdir(path)

    def _do_mkdir(self, path, mode):
        os.mkdir(path, mode)
        os.chmod(path, mode)  # mkdir(2) applies the umask; the caller asked for exactly this mode

    def _do_symlink(self, target, linkpath):
        os.symlink(target, linkpath)

    def _do_write_file(self, path, data, mode):
        # A new file only (O_EXCL): whatever is already there, even a FIFO
        # another process put at that name, gets FileExistsError rather than
        # being opened (opening a FIFO for writing would block until some
        # process reads it, stalling the container's start).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def _do_write_proc(self, path, text):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())   # one write: the kernel takes a map in one go
        finally:
            os.close(fd)

    def _do_mknod(self, path, mode_with_type, device, mode, uid, gid):
        os.mknod(path, mode_with_type, device)
        os.chmod(path, mode)  # the umask applied to mknod(2) too
        if uid or gid:
            os.chown(path, uid, gid)

    def _do_sethostname(self, name):
        raw = name.encode()
        check(libc().sethostname(raw, len(raw)), "sethostname", name)

    def _do_setrlimit(self, number, soft, hard):
        infinity = resource.RLIM_INFINITY
        resource.setrlimit(number, (infinity if soft == -1 else soft, infinity if hard == -1 else hard))

    def _do_link_up(self, ifname):
        fd = libc().socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)
        check(fd, "socket", "AF_INET", "SOCK_DGRAM")
        try:
            # struct ifreq: char ifr_name[16]; short ifr_flags; (padded to 40 bytes)
            request = struct.pack("16sh22x", ifname.encode(), 0)
            flags = struct.unpack("16sh22x", fcntl.ioctl(fd, SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(fd, SIOCSIFFLAGS, struct.pack("16sh22x", ifname.encode(), flags | IFF_UP))
        finally:
            os.close(fd)

    def _do_fork(self):
        return os.fork()

    def _do_open_namespace(self, path):
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def _do_mknod_at(self, dir_fd, name, mode_with_type, device):
        os.mknod(name, mode_with_type, device, dir_fd=dir_fd)

    def _do_kill(self, pid, sig):
        os.kill(pid, sig)

    def _do_open_pty(self):
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
            try:
                peer = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
            except OSError:    # before Linux 4.13: by its number, the only way there was
                number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
                peer = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY)
        except BaseException:
            os.close(master)
            raise
        return master, peer

    def _do_set_window_size(self, fd, rows, columns):
        fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))

    def _do_copy_window_size(self, from_fd, to_fd):
        fcntl.ioctl(to_fd, TIOCSWINSZ, fcntl.ioctl(from_fd, TIOCGWINSZ, b"\0" * 8))

    def _do_dup2(self, fd, target):
        os.dup2(fd, target)

    def _do_become_foreground_job(self):
        os.setpgid(0, 0)
        os.tcsetpgrp(0, os.getpid())

    def _do_pidfd_open(self, pid):
        return os.pidfd_open(pid)

    def _do_pidfd_send_signal(self, pidfd, sig):
        signal.pidfd_send_signal(pidfd, sig)

    def _do_setsid(self):
        os.setsid()

    def _do_set_controlling_tty(self, fd):
        fcntl.ioctl(fd, TIOCSCTTY, 0)

    def _do_drop_bounding_cap(self, cap):
        prctl().capbset_drop(cap)

    def _do_set_capabilities(self, keep):
        caps = prctl()
        flags = [caps.CAP_EFFECTIVE, caps.CAP_PERMITTED, caps.CAP_INHERITABLE]
        drop = [c for c in caps.ALL_CAPS if c not in keep]
        caps.set_caps((drop, flags, False),
                      (keep, [caps.CAP_EFFECTIVE, caps.CAP_PERMITTED], True),
                      (keep, caps.CAP_INHERITABLE, False))

    def _do_set_capability_sets(self, effective, permitted, inheritable):
        caps = prctl()
        every = caps.ALL_CAPS
        caps.set_caps(*[(chosen, flag, True) for chosen, flag in
                        ((permitted, caps.CAP_PERMITTED), (effective, caps.CAP_EFFECTIVE),
                         (inheritable, caps.CAP_INHERITABLE))],
                      *[([c for c in every if c not in chosen], flag, False) for chosen, flag in
                        ((permitted, caps.CAP_PERMITTED), (effective, caps.CAP_EFFECTIVE),
                         (inheritable, caps.CAP_INHERITABLE))])

    def _do_raise_ambient(self, cap):
        check(libc().prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "prctl",
              "PR_CAP_AMBIENT_RAISE")

    def _do_set_personality(self, persona):
        check(libc().personality(ctypes.c_ulong(persona)), "personality", hex(persona))

    def _do_prctl_value(self, function, value):
        getattr(prctl(), function)(value)

    def _do_setgroups(self, gids):
        os.setgroups(gids)

    def _do_setgid(self, gid):
        os.setresgid(gid, gid, gid)

    def _do_setuid(self, uid):
        os.setresuid(uid, uid, uid)

    def _do_close_fds_except(self, keep):
        start = 3
        for fd in sorted(k for k in keep if k >= 3):
            os.closerange(start, fd)
            start = fd + 1
        os.closerange(start, _max_fd())

    def _do_execve(self, path, argv, env):
        os.execve(path, argv, dict(e.split("=", 1) for e in env))


def _mount_setattr(tree: int, attributes: int, recursive: bool, path=None,
                   attr_clr: int = 0) -> None:
    """On the mount `tree` (a file descriptor), or on the one at `path`
    when `tree` is AT_FDCWD."""
    # struct mount_attr: attr_set, attr_clr, propagation, userns_fd (all u64)
    attr = ctypes.create_string_buffer(struct.pack("=QQQQ", attributes, attr_clr, 0, 0), 32)
    flags = (AT_EMPTY_PATH if path is None else 0) | (AT_RECURSIVE if recursive else 0)
    check(libc().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(tree),
                           b"" if path is None else path_arg(path),
                           ctypes.c_uint(flags), attr, ctypes.c_size_t(32)),
           "mount_setattr", path or tree, flags_text(attributes, MOUNT_ATTR_NAMES))


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 1 << 20
