"""The one module that talks to the kernel (docs/ARCHITECTURE.md, "Boundaries").

Every kernel-facing step minict takes to build a container goes through a
`Kernel` object: namespaces (unshare, setns), mounts (mount, umount2,
pivot_root), the files and device nodes it creates, the hostname, the
loopback interface, capabilities, no_new_privs, the user switch and the
final execve. Two things follow from having exactly one such place:

- Narration (`--explain`, MINICT_EXPLAIN=1). Each public method first
  prints one line to stderr: a plain sentence saying why, then the exact
  call with its arguments, e.g.

      [explain] Give the container its own mount table: unshare(CLONE_NEWNS)

  It is printed by the same method that makes the call, so it cannot
  drift from what really happens.
- Testability. Each public method narrates, then calls a private `_do_*`
  primitive that does the real work. `RecordingKernel` replaces the
  primitives with a recorder (youki's Syscall trait / TestHelperSyscall is
  the model), so the rootfs and namespace logic can be unit-tested without
  root and without touching the machine.

The primitives keep C's semantics visible (rubber-docker style): flags are
the kernel's bit masks, and a failed call raises OSError with the errno,
the call and its arguments.
"""

import ctypes
import errno
import fcntl
import os
import resource
import signal
import struct
from typing import NamedTuple

from baselib import inroot

# ---- constants from <sched.h>, <sys/mount.h>, <linux/prctl.h> ---------------

CLONE_NEWNS = 0x00020000      # mount table
CLONE_NEWCGROUP = 0x02000000  # cgroup root view
CLONE_NEWUTS = 0x04000000     # hostname
CLONE_NEWIPC = 0x08000000     # System V IPC, POSIX message queues
CLONE_NEWUSER = 0x10000000    # uids/gids (only without root: runtime/rootless.py)
CLONE_NEWPID = 0x20000000     # process ids
CLONE_NEWNET = 0x40000000     # network devices, addresses, routes

CLONE_NAMES = {
    CLONE_NEWNS: "CLONE_NEWNS", CLONE_NEWCGROUP: "CLONE_NEWCGROUP", CLONE_NEWUTS: "CLONE_NEWUTS",
    CLONE_NEWIPC: "CLONE_NEWIPC", CLONE_NEWUSER: "CLONE_NEWUSER", CLONE_NEWPID: "CLONE_NEWPID",
    CLONE_NEWNET: "CLONE_NEWNET",
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MS_NAMES = [
    (MS_RDONLY, "MS_RDONLY"), (MS_NOSUID, "MS_NOSUID"), (MS_NODEV, "MS_NODEV"),
    (MS_NOEXEC, "MS_NOEXEC"), (MS_SYNCHRONOUS, "MS_SYNCHRONOUS"), (MS_REMOUNT, "MS_REMOUNT"),
    (MS_MANDLOCK, "MS_MANDLOCK"), (MS_DIRSYNC, "MS_DIRSYNC"), (MS_NOATIME, "MS_NOATIME"),
    (MS_NODIRATIME, "MS_NODIRATIME"), (MS_BIND, "MS_BIND"), (MS_MOVE, "MS_MOVE"),
    (MS_REC, "MS_REC"), (MS_SILENT, "MS_SILENT"), (MS_UNBINDABLE, "MS_UNBINDABLE"),
    (MS_PRIVATE, "MS_PRIVATE"), (MS_SLAVE, "MS_SLAVE"), (MS_SHARED, "MS_SHARED"),
    (MS_RELATIME, "MS_RELATIME"), (MS_STRICTATIME, "MS_STRICTATIME"),
]

MNT_FORCE = 1
MNT_DETACH = 2

# The new mount API: open_tree(2) copies a mount tree into a detached mount
# held by a file descriptor, mount_setattr(2) (Linux 5.12) changes its flags
# (with AT_RECURSIVE, those of every mount in it), move_mount(2) attaches it.
# Their numbers are the same on every architecture (new system calls share
# one table since 5.1).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4   # from: the mount the fd holds
MOVE_MOUNT_T_SYMLINKS = 0x10    # to: follow a final symlink, as mount(2) does (/proc/self/fd/N)
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_NAMES = [(MOUNT_ATTR_RDONLY, "MOUNT_ATTR_RDONLY"), (MOUNT_ATTR_NOSUID, "MOUNT_ATTR_NOSUID"),
                    (MOUNT_ATTR_NODEV, "MOUNT_ATTR_NODEV"), (MOUNT_ATTR_NOEXEC, "MOUNT_ATTR_NOEXEC")]

# <linux/sockios.h>, <net/if.h>: bring an interface up
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = 0o2000000

TIOCSCTTY = 0x540E  # <asm-generic/ioctls.h>: make this tty our controlling terminal

# <linux/bpf.h>: the bpf(2) commands, program and attach types minict uses
# (the cgroup v2 device filter: cgroups/device_program.py)
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_GET_NEXT_ID = 11
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6          # the attach point: device access checks of a cgroup
BPF_F_ALLOW_MULTI = 2          # programs of the cgroups above and below ours all run
BPF_LICENSE = b"GPL"           # only matters for GPL-only kernel helpers; the filter calls none
# bpf(2) has no wrapper in the C library: its number, per architecture
# (<asm/unistd.h>).
SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
SYS_CLONE = {"x86_64": 56, "aarch64": 220, "riscv64": 220, "ppc64le": 120, "s390x": 120}


def kernel_version(release: str | None = None) -> tuple[int, int]:
    """(major, minor) of the running kernel, e.g. (6, 8) for "6.8.0-45-generic"."""
    parts = (release or os.uname().release).split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def flags_text(flags: int, names=MS_NAMES) -> str:
    """Render a bit mask the way C code would spell it: MS_BIND|MS_REC."""
    if not flags:
        return "0"
    parts, rest = [], flags
    for bit, name in names:
        if flags & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


def clone_flags_text(flags: int) -> str:
    return flags_text(flags, sorted(CLONE_NAMES.items()))


def _c(value):
    """Quote an argument as it would appear in C (NULL for None)."""
    return "NULL" if value is None else f'"{value}"'


# ---- narration ----------------------------------------------------------------

class Narrator:
    """Prints `[explain] <sentence>: <call>` lines to a file descriptor.

    The fd is a private duplicate of stderr taken at start (and marked
    close-on-exec), so the narration keeps going to the user's terminal
    even after the container's stdio has been pointed at a pty or a log,
    and never leaks into the container's command.
    """

    def __init__(self, enabled: bool, fd: int | None = None):
        self.enabled = enabled
        self.fd = fd
        if enabled and fd is None:
            self.fd = os.dup(2)
            os.set_inheritable(self.fd, False)

    def say(self, sentence: str, call: str | None = None) -> None:
        if not self.enabled:
            return
        line = f"[explain] {sentence}: {call}\n" if call else f"[explain] {sentence}\n"
        try:
            os.write(self.fd, line.encode(errors="replace"))
        except OSError:
            pass  # narration must never be the reason a container fails

    def close(self) -> None:
        if self.enabled and self.fd is not None and self.fd > 2:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None
        self.enabled = False


# ---- the kernel interface -------------------------------------------------------

class Kernel:
    """Every kernel-facing call minict makes, narrated.

    Public methods take `why`, the sentence printed with --explain, then
    call the matching `_do_*` primitive. Subclasses replace the
    primitives (see RecordingKernel).
    """

    def __init__(self, narrator: Narrator | None = None):
        self.narrator = narrator or Narrator(False)
        self._netlink = None   # a pyroute2 IPRoute, for the network namespace we are in

    def explain(self, sentence: str, call: str | None = None) -> None:
        """Narrate a step that is not a syscall (a decision, a fork)."""
        self.narrator.say(sentence, call)

    # -- namespaces --

    def unshare(self, flags: int, why: str) -> None:
        self.explain(why, f"unshare({clone_flags_text(flags)})")
        self._do_unshare(flags)

    def setns(self, fd: int, nstype: int, why: str, what: str = "") -> None:
        self.explain(why, f"setns({what or fd}, {clone_flags_text(nstype)})")
        self._do_setns(fd, nstype)

    def clone(self, flags: int, why: str) -> int:
        """fork(), but the child is born in new namespaces, CLONE_NEWUSER
        among them (without root: runtime/rootless.py, idmap.py); returns the
        child's pid, 0 in the child. os.fork cannot take clone flags, and
        unshare(CLONE_NEWUSER) would move minict itself into the new user
        namespace, from which it could never step back. clone(2) with SIGCHLD
        and no new stack is exactly fork plus flags. The caller must be a
        single thread, as for fork."""
        self.explain(why, f"clone({clone_flags_text(flags)}|SIGCHLD, stack=NULL)")
        return self._do_clone(flags)

    def write_id_map(self, tool: str, pid: int, ranges, why: str) -> None:
        """Id ranges ((inside, outside, count), ...) for the user namespace
        of `pid`, written by the setuid helper `tool` (newuidmap or
        newgidmap), which checks them against /etc/subuid or /etc/subgid."""
        argv = [tool, str(pid)] + [str(n) for r in ranges for n in r]
        self.explain(why, " ".join(argv))
        self._do_write_id_map(argv)

    # -- networks: netlink (through pyroute2), sysctls, iptables --

    def create_bridge(self, name: str, why: str) -> None:
        self.explain(why, f'RTM_NEWLINK {{ifname="{name}", kind="bridge"}} '
                          f'(ip link add {name} type bridge)')
        self._do_create_bridge(name)

    def create_veth(self, name: str, peer: str, netns_fd: int, pid: int, why: str) -> None:
        """A veth pair: `name` here, `peer` made directly in the network
        namespace `netns_fd` holds (the container's, PID `pid`)."""
        self.explain(why, f'RTM_NEWLINK {{ifname="{name}", kind="veth", peer={{ifname="{peer}", '
                          f'net_ns_fd={netns_fd}}}}} (ip link add {name} type veth peer name '
                          f'{peer} netns {pid})')
        self._do_create_veth(name, peer, netns_fd)

    def set_link_up(self, ifname: str, why: str, master: str | None = None) -> None:
        joined = f", master={master}" if master else ""
        self.explain(why, f'RTM_NEWLINK {{ifname="{ifname}", state=up{joined}}} '
                          f'(ip link set {ifname}{" master " + master if master else ""} up)')
        self._do_set_link_up(ifname, master)

    def add_address(self, ifname: str, address: str, prefixlen: int, why: str) -> None:
        self.explain(why, f'RTM_NEWADDR {{ifname="{ifname}", address={address}, '
                          f'prefixlen={prefixlen}}} (ip addr add {address}/{prefixlen} dev {ifname})')
        self._do_add_address(ifname, address, prefixlen)

    def add_default_route(self, gateway: str, why: str) -> None:
        self.explain(why, f"RTM_NEWROUTE {{dst=0.0.0.0/0, gateway={gateway}}} "
                          f"(ip route add default via {gateway})")
        self._do_add_default_route(gateway)

    def delete_link(self, ifname: str, why: str) -> None:
        self.explain(why, f'RTM_DELLINK {{ifname="{ifname}"}} (ip link del {ifname})')
        self._do_delete_link(ifname)

    def write_sysctl(self, name: str, value: str, why: str) -> None:
        """net.ipv4.ip_forward and the like, through /proc/sys."""
        self.explain(why, f"write '{value}' to /proc/sys/{name.replace('.', '/')} "
                          f"(sysctl -w {name}={value})")
        self._do_write_sysctl(name, value)

    def firewall(self, table: str, action: str, rule: list[str], why: str) -> None:
        """One iptables change: `action` is -A (append), -D (delete), -N (a new
        chain) or -I (insert at the top)."""
        import shlex
        self.explain(why, shlex.join(["iptables", "-t", table, action, *rule]))
        self._do_firewall(table, action, rule)

    # -- mounts --

    def mount(self, source, target, fstype, flags: int, data, why: str) -> None:
        self.explain(why, f"mount({_c(source)}, {_c(target)}, {_c(fstype)}, "
                          f"{flags_text(flags)}, {_c(data)})")
        self._do_mount(source, target, fstype, flags, data)

    def umount2(self, target, flags: int, why: str) -> None:
        names = [(MNT_FORCE, "MNT_FORCE"), (MNT_DETACH, "MNT_DETACH")]
        self.explain(why, f"umount2({_c(target)}, {flags_text(flags, names)})")
        self._do_umount2(target, flags)

    def bind_with_attributes(self, source, target, readonly: bool, nodev: bool, why: str) -> None:
        """A recursive bind of `source` at `target` whose flags are set before
        it is attached: read-only (its top mount, as a remount would make it)
        and/or nodev (every mount in it: a recursive bind brings the source's
        submounts along). Nothing is looked up by path after the mount
        exists, so nothing swapped in meanwhile can receive the flags
        instead (a remount must find the new mount again by its path).
        Needs Linux 5.12 (has_mount_setattr)."""
        steps = [f"open_tree(AT_FDCWD, {_c(source)}, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE)"
                 f" = tree"]
        if readonly:
            steps.append('mount_setattr(tree, "", AT_EMPTY_PATH, {attr_set=MOUNT_ATTR_RDONLY})')
        if nodev:
            steps.append('mount_setattr(tree, "", AT_EMPTY_PATH|AT_RECURSIVE, '
                         '{attr_set=MOUNT_ATTR_NODEV})')
        steps.append(f'move_mount(tree, "", AT_FDCWD, {_c(target)}, '
                     f'MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_SYMLINKS)')
        self.explain(why, "; ".join(steps))
        self._do_bind_with_attributes(source, target, readonly, nodev)

    def clone_mount(self, source, why: str) -> int:
        """A copy of the mount at `source` (not its submounts), detached and
        held by the returned fd until attach_mount puts it somewhere: unlike
        a bind mount, a detached copy can cross into another mount namespace."""
        self.explain(why, f"open_tree(AT_FDCWD, {_c(source)}, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC)"
                          f" = tree")
        return self._do_clone_mount(source)

    def attach_mount(self, tree: int, target, why: str) -> None:
        """Attach the detached mount `tree` (clone_mount's) at `target`; closes `tree`."""
        self.explain(why, f'move_mount(tree, "", AT_FDCWD, {_c(target)}, MOVE_MOUNT_F_EMPTY_PATH)')
        self._do_attach_mount(tree, target)

    def open_in_root(self, root_fd: int, path: str, why: str) -> int:
        """An O_PATH handle on `path` inside the directory `root_fd` holds,
        its symlinks resolved as if that directory were `/` (baselib.inroot:
        openat2 RESOLVE_IN_ROOT, or the same walk on older kernels)."""
        self.explain(why, f'openat2({root_fd}, "{path.lstrip("/") or "."}", '
                          f'{{O_PATH, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS}})')
        return self._do_open_in_root(root_fd, path)

    def pivot_root(self, new_root, put_old, why: str) -> None:
        self.explain(why, f"pivot_root({_c(new_root)}, {_c(put_old)})")
        self._do_pivot_root(new_root, put_old)

    def chdir(self, path, why: str) -> None:
        self.explain(why, f"chdir({_c(path)})")
        self._do_chdir(path)

    # -- files, directories, device nodes --

    def mkdir(self, path, mode: int, why: str) -> None:
        self.explain(why, f"mkdir({_c(path)}, {mode:#o})")
        self._do_mkdir(path, mode)

    def symlink(self, target, linkpath, why: str) -> None:
        self.explain(why, f"symlink({_c(target)}, {_c(linkpath)})")
        self._do_symlink(target, linkpath)

    def write_file(self, path, data: bytes, mode: int, why: str) -> None:
        """Create the new file `path` holding `data` (never an existing one)."""
        shown = data[:60].decode(errors="replace").replace("\n", "\\n")
        more = "..." if len(data) > 60 else ""
        self.explain(why, f'open({_c(path)}, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, {mode:#o}); '
                          f'write(fd, "{shown}{more}", {len(data)})')
        self._do_write_file(path, data, mode)

    def write_proc(self, path, text: str, why: str) -> None:
        """Write `text` to an existing kernel file (/proc/PID/uid_map...)."""
        self.explain(why, f'open({_c(path)}, O_WRONLY); write(fd, "{text.rstrip()}")')
        self._do_write_proc(path, text)

    def mknod(self, path, kind: str, major: int, minor: int, mode: int, why: str,
              uid: int = 0, gid: int = 0) -> None:
        type_bits = {"c": 0o020000, "b": 0o060000}[kind]
        self.explain(why, f"mknod({_c(path)}, S_IF{'CHR' if kind == 'c' else 'BLK'}|{mode:#o}, "
                          f"makedev({major}, {minor}))")
        self._do_mknod(path, type_bits | mode, os.makedev(major, minor), mode, uid, gid)

    # -- identity: hostname, network --

    def sethostname(self, name: str, why: str) -> None:
        self.explain(why, f"sethostname({_c(name)}, {len(name.encode())})")
        self._do_sethostname(name)

    def setrlimit(self, name: str, number: int, soft: int, hard: int, why: str) -> None:
        """setrlimit(2) for this process (inherited across fork and execve);
        -1 is RLIM_INFINITY. `name` is the RLIMIT_ suffix, for the narration."""
        shown = ", ".join("RLIM_INFINITY" if v == -1 else str(v) for v in (soft, hard))
        self.explain(why, f"setrlimit(RLIMIT_{name.upper()}, {{{shown}}})")
        self._do_setrlimit(number, soft, hard)

    def link_up(self, ifname: str, why: str) -> None:
        self.explain(why, f"ioctl(socket(AF_INET, SOCK_DGRAM), SIOCSIFFLAGS, "
                          f"{{ifr_name=\"{ifname}\", ifr_flags|=IFF_UP}})")
        self._do_link_up(ifname)

    # -- process attributes and security --

    def redirect_stdio(self, fd: int, targets, why: str) -> None:
        """Make each of `targets` (0, 1, 2) a copy of `fd`."""
        self.explain(why, "; ".join(f"dup2({fd}, {target})" for target in targets))
        for target in targets:
            self._do_dup2(fd, target)

    def become_foreground_job(self, why: str) -> None:
        """A process group of our own, in the terminal's foreground (job control)."""
        self.explain(why, "setpgid(0, 0); tcsetpgrp(0, getpid())")
        self._do_become_foreground_job()

    def pidfd_open(self, pid: int, why: str) -> int:
        """A file descriptor that names process `pid` itself: a signal sent
        through it can never reach another process that reuses the pid."""
        self.explain(why, f"pidfd_open({pid}, 0)")
        return self._do_pidfd_open(pid)

    def pidfd_send_signal(self, pidfd: int, sig: int, why: str, pid: int | None = None) -> None:
        shown = f"pidfd_open({pid})" if pid is not None else str(pidfd)
        self.explain(why, f"pidfd_send_signal({shown}, {signal.Signals(sig).name})")
        self._do_pidfd_send_signal(pidfd, sig)

    def setsid(self, why: str) -> None:
        self.explain(why, "setsid()")
        self._do_setsid()

    def set_controlling_tty(self, fd: int, why: str) -> None:
        self.explain(why, f"ioctl({fd}, TIOCSCTTY, 0)")
        self._do_set_controlling_tty(fd)

    def drop_bounding_cap(self, cap: int, name: str, why: str) -> None:
        self.explain(why, f"prctl(PR_CAPBSET_DROP, {name})")
        self._do_drop_bounding_cap(cap)

    def set_capabilities(self, keep: list[int], names: list[str], why: str) -> None:
        shown = ", ".join(names) if names else "none"
        self.explain(why, f"capset(effective=permitted={{{shown}}}, inheritable={{}})")
        self._do_set_capabilities(keep)

    def set_no_new_privs(self, why: str) -> None:
        self.explain(why, "prctl(PR_SET_NO_NEW_PRIVS, 1)")
        self._do_prctl_value("set_no_new_privs", 1)

    def set_dumpable(self, value: bool, why: str) -> None:
        self.explain(why, f"prctl(PR_SET_DUMPABLE, {int(value)})")
        self._do_prctl_value("set_dumpable", int(value))

    def set_pdeathsig(self, sig: int, why: str) -> None:
        self.explain(why, f"prctl(PR_SET_PDEATHSIG, {signal.Signals(sig).name})")
        self._do_prctl_value("set_pdeathsig", sig)

    def setgroups(self, gids: list[int], why: str) -> None:
        self.explain(why, f"setgroups({len(gids)}, {gids})")
        self._do_setgroups(gids)

    def setgid(self, gid: int, why: str) -> None:
        self.explain(why, f"setresgid({gid}, {gid}, {gid})")
        self._do_setgid(gid)

    def setuid(self, uid: int, why: str) -> None:
        self.explain(why, f"setresuid({uid}, {uid}, {uid})")
        self._do_setuid(uid)

    def attach_device_program(self, cgroup_path, program: bytes, why: str) -> None:
        """Load an eBPF device filter (cgroups/device_program.py) and attach
        it to a cgroup v2 directory. The cgroup keeps the program for as
        long as it exists; rmdir of the cgroup releases it."""
        count = len(program) // 8
        self.explain(why, f"bpf(BPF_PROG_LOAD, {{prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, "
                          f"insn_cnt={count}, license=\"{BPF_LICENSE.decode()}\"}}) = prog; "
                          f"bpf(BPF_PROG_ATTACH, {{target_fd=open({_c(cgroup_path)}), "
                          f"attach_bpf_fd=prog, attach_type=BPF_CGROUP_DEVICE, "
                          f"attach_flags=BPF_F_ALLOW_MULTI}})")
        self._do_attach_device_program(str(cgroup_path), program)

    def load_seccomp(self, syscall_filter, summary: str, why: str) -> None:
        """Load a libseccomp SyscallFilter (runtime/syscall_filter.py): the
        library compiles it to BPF and makes the call shown."""
        self.explain(why, f"seccomp(SECCOMP_SET_MODE_FILTER, 0, {{{summary}}})")
        self._do_load_seccomp(syscall_filter)

    def close_fds_except(self, keep: set[int], why: str) -> None:
        kept = ", ".join(str(fd) for fd in sorted(keep)) or "none"
        self.explain(why, f"close_range(3, ~0U, 0) keeping {{{kept}}}")
        self._do_close_fds_except(keep)

    def execve(self, path: str, argv: list[str], env: list[str], why: str):
        self.explain(why, f"execve({_c(path)}, {argv}, [{len(env)} variables])")
        self._do_execve(path, argv, env)

    # ---- the real primitives -------------------------------------------------

    def _do_unshare(self, flags):
        _check(_libc().unshare(flags), "unshare", clone_flags_text(flags))

    def _do_attach_device_program(self, cgroup_path, program):
        prog_fd = load_bpf_program(BPF_PROG_TYPE_CGROUP_DEVICE, program, "minict_devices")
        try:
            cgroup_fd = os.open(cgroup_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                # union bpf_attr for BPF_PROG_ATTACH: target_fd, attach_bpf_fd,
                # attach_type, attach_flags, replace_bpf_fd
                _bpf(BPF_PROG_ATTACH, struct.pack("=IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE,
                                                  BPF_F_ALLOW_MULTI, 0), cgroup_path)
            finally:
                os.close(cgroup_fd)
        finally:
            os.close(prog_fd)   # the cgroup holds its own reference now

    def _do_load_seccomp(self, syscall_filter):
        syscall_filter.load()

    def _do_clone(self, flags):
        machine = os.uname().machine
        number = SYS_CLONE.get(machine)
        if number is None:
            raise OSError(errno.ENOSYS, f"clone(2): minict does not know its number on {machine}")
        return _check(_libc().syscall(ctypes.c_long(number), ctypes.c_ulong(flags | signal.SIGCHLD),
                                      None, None, None, None), "clone", clone_flags_text(flags))

    def _do_write_id_map(self, argv):
        import subprocess
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise OSError(errno.EPERM, (result.stderr.strip().splitlines() or ["no message"])[-1])

    def _do_setns(self, fd, nstype):
        _check(_libc().setns(fd, nstype), "setns", fd, clone_flags_text(nstype))
        if nstype & CLONE_NEWNET and self._netlink is not None:
            self._netlink.close()    # its socket belongs to the namespace we left
            self._netlink = None

    def _ipr(self):
        """The netlink socket of the network namespace we are in (pyroute2,
        imported when a network is first set up: an optional dependency)."""
        if self._netlink is None:
            from pyroute2 import IPRoute
            self._netlink = IPRoute()
        return self._netlink

    def _netlink_call(self, what: str, call):
        from pyroute2.netlink.exceptions import NetlinkError
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
        import subprocess
        result = subprocess.run([iptables_path(), "-w", "-t", table, action, *rule],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(errno.EINVAL, f"iptables -t {table} {action} {' '.join(rule)}: "
                                        f"{result.stderr.strip()}")

    def _do_mount(self, source, target, fstype, flags, data):
        _check(_libc().mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
               "mount", source, target, fstype, flags_text(flags), data)

    def _do_bind_with_attributes(self, source, target, readonly, nodev):
        libc = _libc()
        tree = _check(libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), _b(source),
                                   ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)),
                      "open_tree", source)
        try:
            if readonly:
                _mount_setattr(tree, MOUNT_ATTR_RDONLY, recursive=False)
            if nodev:
                _mount_setattr(tree, MOUNT_ATTR_NODEV, recursive=True)
            _check(libc.syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), b"",
                                ctypes.c_int(AT_FDCWD), _b(target),
                                ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_SYMLINKS)),
                   "move_mount", target)
        finally:
            os.close(tree)

    def _do_clone_mount(self, source):
        return _check(_libc().syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD),
                                      _b(source), ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)),
                      "open_tree", source)

    def _do_attach_mount(self, tree, target):
        try:
            _check(_libc().syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), b"",
                                   ctypes.c_int(AT_FDCWD), _b(target),
                                   ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)),
                   "move_mount", target)
        finally:
            os.close(tree)

    def _do_open_in_root(self, root_fd, path):
        return inroot.open_in_root(root_fd, path, os.O_PATH)

    def _do_umount2(self, target, flags):
        _check(_libc().umount2(_b(target), flags), "umount2", target)

    def _do_pivot_root(self, new_root, put_old):
        _check(_libc().pivot_root(_b(new_root), _b(put_old)), "pivot_root", new_root, put_old)

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
        _check(_libc().sethostname(raw, len(raw)), "sethostname", name)

    def _do_setrlimit(self, number, soft, hard):
        infinity = resource.RLIM_INFINITY
        resource.setrlimit(number, (infinity if soft == -1 else soft, infinity if hard == -1 else hard))

    def _do_link_up(self, ifname):
        fd = _libc().socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)
        _check(fd, "socket", "AF_INET", "SOCK_DGRAM")
        try:
            # struct ifreq: char ifr_name[16]; short ifr_flags; (padded to 40 bytes)
            request = struct.pack("16sh22x", ifname.encode(), 0)
            flags = struct.unpack("16sh22x", fcntl.ioctl(fd, SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(fd, SIOCSIFFLAGS, struct.pack("16sh22x", ifname.encode(), flags | IFF_UP))
        finally:
            os.close(fd)

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
        import_prctl().capbset_drop(cap)

    def _do_set_capabilities(self, keep):
        prctl = import_prctl()
        flags = [prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED, prctl.CAP_INHERITABLE]
        drop = [c for c in prctl.ALL_CAPS if c not in keep]
        prctl.set_caps((drop, flags, False),
                       (keep, [prctl.CAP_EFFECTIVE, prctl.CAP_PERMITTED], True),
                       (keep, prctl.CAP_INHERITABLE, False))

    def _do_prctl_value(self, function, value):
        getattr(import_prctl(), function)(value)

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


class Call(NamedTuple):
    """One primitive call a RecordingKernel received: its name (mount, mkdir...)
    and its arguments, as the real primitive would have got them."""
    name: str
    args: tuple


class RecordingKernel(Kernel):
    """A Kernel that records every call instead of making it (for tests; the
    model is youki's TestHelperSyscall).

    `calls` lists them in order; narration still works, so tests can check
    the --explain text as well. `fail_next(name, errno)` makes the next call
    of that primitive raise OSError instead (youki's set_ret_err), to test
    how the code above copes. Each primitive is listed below, so what can
    be recorded is plain to see; a subclass may do some of them for real.
    """

    def __init__(self, narrator: Narrator | None = None):
        super().__init__(narrator)
        self.calls: list[Call] = []
        self._failures: dict[str, int] = {}

    def fail_next(self, name: str, err: int) -> None:
        """The next call of primitive `name` fails with OSError `err`."""
        self._failures[name] = err

    def named(self, name: str) -> list[tuple]:
        """The argument tuples of every recorded call to `name`."""
        return [call.args for call in self.calls if call.name == name]

    def _record(self, name: str, *args):
        self.calls.append(Call(name, args))
        err = self._failures.pop(name, None)
        if err is not None:
            raise OSError(err, os.strerror(err), f"{name} (RecordingKernel.fail_next)")

    def _do_open_in_root(self, root_fd, path):
        # Looking up is harmless, and the code above needs a real handle: do it.
        self._record("open_in_root", root_fd, path)
        return Kernel._do_open_in_root(self, root_fd, path)

    def _do_unshare(self, flags): self._record("unshare", flags)
    def _do_create_bridge(self, name): self._record("create_bridge", name)
    def _do_create_veth(self, name, peer, netns_fd): self._record("create_veth", name, peer, netns_fd)
    def _do_set_link_up(self, ifname, master): self._record("set_link_up", ifname, master)
    def _do_add_address(self, ifname, address, prefixlen):
        self._record("add_address", ifname, address, prefixlen)
    def _do_add_default_route(self, gateway): self._record("add_default_route", gateway)
    def _do_delete_link(self, ifname): self._record("delete_link", ifname)
    def _do_write_sysctl(self, name, value): self._record("write_sysctl", name, value)
    def _do_firewall(self, table, action, rule): self._record("firewall", table, action, rule)
    def _do_setns(self, fd, nstype): self._record("setns", fd, nstype)
    def _do_write_id_map(self, argv): self._record("write_id_map", argv)
    def _do_clone(self, flags):
        self._record("clone", flags)
        return -1   # no process was made: the caller is the parent
    def _do_mount(self, source, target, fstype, flags, data):
        self._record("mount", source, target, fstype, flags, data)
    def _do_bind_with_attributes(self, source, target, readonly, nodev):
        self._record("bind_with_attributes", source, target, readonly, nodev)
    def _do_umount2(self, target, flags): self._record("umount2", target, flags)
    def _do_pivot_root(self, new_root, put_old): self._record("pivot_root", new_root, put_old)
    def _do_chdir(self, path): self._record("chdir", path)
    def _do_mkdir(self, path, mode): self._record("mkdir", path, mode)
    def _do_symlink(self, target, linkpath): self._record("symlink", target, linkpath)
    def _do_write_file(self, path, data, mode): self._record("write_file", path, data, mode)
    def _do_write_proc(self, path, text): self._record("write_proc", path, text)

    def _do_mknod(self, path, mode_with_type, device, mode, uid, gid):
        self._record("mknod", path, mode_with_type, device, mode, uid, gid)
    def _do_sethostname(self, name): self._record("sethostname", name)
    def _do_link_up(self, ifname): self._record("link_up", ifname)
    def _do_setrlimit(self, number, soft, hard): self._record("setrlimit", number, soft, hard)
    def _do_clone_mount(self, source):
        self._record("clone_mount", source)
        return -1   # no mount was copied: attach_mount only records it
    def _do_attach_mount(self, tree, target): self._record("attach_mount", tree, target)
    def _do_dup2(self, fd, target): self._record("dup2", fd, target)
    def _do_become_foreground_job(self): self._record("become_foreground_job")
    def _do_setsid(self): self._record("setsid")
    def _do_set_controlling_tty(self, fd): self._record("set_controlling_tty", fd)
    def _do_drop_bounding_cap(self, cap): self._record("drop_bounding_cap", cap)
    def _do_set_capabilities(self, keep): self._record("set_capabilities", keep)
    def _do_prctl_value(self, function, value): self._record("prctl_value", function, value)
    def _do_setgroups(self, gids): self._record("setgroups", gids)
    def _do_setgid(self, gid): self._record("setgid", gid)
    def _do_setuid(self, uid): self._record("setuid", uid)
    def _do_load_seccomp(self, syscall_filter): self._record("load_seccomp", syscall_filter)
    def _do_attach_device_program(self, cgroup_path, program):
        self._record("attach_device_program", cgroup_path, program)
    def _do_close_fds_except(self, keep): self._record("close_fds_except", keep)
    def _do_execve(self, path, argv, env): self._record("execve", path, argv, env)

    def _do_pidfd_open(self, pid):
        self._record("pidfd_open", pid)
        return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)   # a descriptor that names nothing

    def _do_pidfd_send_signal(self, pidfd, sig): self._record("pidfd_send_signal", pidfd, sig)


# ---- helpers ----------------------------------------------------------------------

def import_prctl():
    """python-prctl (capabilities, no_new_privs...), imported when first used:
    it compiles against libcap, so it is in minict's extra dependencies,
    and the base install (hpcshim, minict's image commands) goes without."""
    import prctl
    return prctl


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.c_ulong, ctypes.c_char_p]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.pivot_root.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.unshare.argtypes = [ctypes.c_int]
        libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        libc.socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        libc.syscall.restype = ctypes.c_long
        _LIBC = libc
    return _LIBC


def _mount_setattr(tree: int, attributes: int, recursive: bool) -> None:
    # struct mount_attr: attr_set, attr_clr, propagation, userns_fd (all u64)
    attr = ctypes.create_string_buffer(struct.pack("=QQQQ", attributes, 0, 0, 0), 32)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _check(_libc().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(tree), b"",
                           ctypes.c_uint(flags), attr, ctypes.c_size_t(32)),
           "mount_setattr", tree, flags_text(attributes, MOUNT_ATTR_NAMES))


def iptables_path() -> str:
    """iptables from the system's sbin directories (a user's PATH may lack them)."""
    import shutil
    return shutil.which("iptables", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") \
        or "iptables"


def link_exists(ifname: str) -> bool:
    """Is there a network interface `ifname` in our network namespace? (read
    only; asked with an ioctl, which answers for the namespace we are in,
    unlike /sys/class/net, which shows the one /sys was mounted in)"""
    import socket
    try:
        socket.if_nametoindex(ifname)
        return True
    except OSError:
        return False


def iptables_rules(table: str, chain: str) -> str:
    """`iptables -S CHAIN` of `table` (read only); "" when the chain does not exist."""
    import subprocess
    try:
        result = subprocess.run([iptables_path(), "-w", "-t", table, "-S", chain],
                                capture_output=True, text=True)
    except FileNotFoundError:
        return ""   # no iptables here: no rules of minict's either
    return result.stdout if result.returncode == 0 else ""


def has_mount_setattr() -> bool:
    """Does this kernel have mount_setattr(2) (Linux 5.12)? A call with a
    bad size answers EINVAL if it does, ENOSYS if not; it changes nothing."""
    result = _libc().syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(-1), None,
                             ctypes.c_uint(0), None, ctypes.c_size_t(0))
    return result == 0 or ctypes.get_errno() != errno.ENOSYS


# ---- bpf(2): loading programs, and reading back what is attached -----------------

def _bpf(command: int, attr: bytes, *shown) -> tuple[int, bytes]:
    """bpf(command, attr, sizeof attr); returns the result and the attr as
    the kernel left it (some commands answer in it)."""
    machine = os.uname().machine
    number = SYS_BPF.get(machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"bpf(2): minict does not know its number on {machine}")
    buffer = ctypes.create_string_buffer(attr, len(attr))
    result = _libc().syscall(ctypes.c_long(number), ctypes.c_long(command), buffer,
                             ctypes.c_long(len(attr)))
    _check(result, "bpf", _BPF_COMMANDS.get(command, command), *shown)
    return result, buffer.raw


_BPF_COMMANDS = {BPF_PROG_LOAD: "BPF_PROG_LOAD", BPF_PROG_ATTACH: "BPF_PROG_ATTACH",
                 BPF_PROG_GET_NEXT_ID: "BPF_PROG_GET_NEXT_ID",
                 BPF_PROG_GET_FD_BY_ID: "BPF_PROG_GET_FD_BY_ID",
                 BPF_OBJ_GET_INFO_BY_FD: "BPF_OBJ_GET_INFO_BY_FD", BPF_PROG_QUERY: "BPF_PROG_QUERY"}


def load_bpf_program(prog_type: int, program: bytes, name: str) -> int:
    """BPF_PROG_LOAD: the kernel's verifier checks `program` (struct
    bpf_insn array) and returns a file descriptor for it. On refusal the
    OSError carries the verifier's last words."""
    code = ctypes.create_string_buffer(program, len(program))
    license = ctypes.create_string_buffer(BPF_LICENSE)
    log = ctypes.create_string_buffer(65536)
    # union bpf_attr for BPF_PROG_LOAD, up to expected_attach_type: prog_type,
    # insn_cnt, insns, license, log_level, log_size, log_buf, kern_version,
    # prog_flags, prog_name[16], prog_ifindex, expected_attach_type
    attr = struct.pack("=IIQQIIQII16sII", prog_type, len(program) // 8, ctypes.addressof(code),
                       ctypes.addressof(license), 1, len(log), ctypes.addressof(log), 0, 0,
                       name.encode()[:15], 0, 0)
    try:
        fd, _ = _bpf(BPF_PROG_LOAD, attr, f"{len(program) // 8} instructions")
    except OSError as exc:
        # The log ends with statistics ("processed N insns ..."); the
        # reason for a refusal is the line before them.
        words = [line for line in log.value.decode(errors="replace").strip().splitlines()
                 if not line.startswith(("processed ", "verification time"))]
        if words:
            raise OSError(exc.errno, f"{exc.strerror} (the verifier said: {words[-1]})") from None
        raise
    os.set_inheritable(fd, False)
    return fd


def cgroup_device_programs(cgroup_path) -> list[int]:
    """The ids of the device programs attached to a cgroup v2 directory
    itself (not those inherited from above): BPF_PROG_QUERY."""
    fd = os.open(str(cgroup_path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        ids = ctypes.create_string_buffer(4 * 64)
        # target_fd, attach_type, query_flags, attach_flags (out), prog_ids, prog_cnt (in/out)
        attr = struct.pack("=IIIIQI4x", fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
        _, answer = _bpf(BPF_PROG_QUERY, attr, str(cgroup_path))
    finally:
        os.close(fd)
    count = struct.unpack_from("=I", answer, 24)[0]
    return list(struct.unpack_from(f"={count}I", ids.raw))


def bpf_program_ids() -> list[int]:
    """Every eBPF program loaded in this kernel, by id (BPF_PROG_GET_NEXT_ID)."""
    found, start = [], 0
    while True:
        try:
            _, answer = _bpf(BPF_PROG_GET_NEXT_ID, struct.pack("=III", start, 0, 0))
        except FileNotFoundError:
            return found
        start = struct.unpack_from("=I", answer, 4)[0]
        found.append(start)


def bpf_program_info(prog_id: int) -> tuple[int, bytes]:
    """(program type, its instructions as the kernel holds them) of a
    loaded program (BPF_PROG_GET_FD_BY_ID, then BPF_OBJ_GET_INFO_BY_FD)."""
    fd, _ = _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("=III", prog_id, 0, 0), prog_id)
    try:
        def info(length: int, address: int) -> bytes:
            # struct bpf_prog_info up to xlated_prog_insns: type, id, tag[8],
            # jited_prog_len, xlated_prog_len, jited_prog_insns, xlated_prog_insns
            fields = struct.pack("=II8sIIQQ", 0, 0, b"", 0, length, 0, address)
            raw = ctypes.create_string_buffer(fields, len(fields))
            _bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("=IIQ", fd, len(raw), ctypes.addressof(raw)),
                 prog_id)
            return raw.raw
        prog_type, _, _, _, length, _, _ = struct.unpack("=II8sIIQQ", info(0, 0))
        code = ctypes.create_string_buffer(length)
        info(length, ctypes.addressof(code))   # (a buffer of exactly `length`: no NUL added)
        return prog_type, code.raw
    finally:
        os.close(fd)


def _b(value):
    if value is None:
        return None
    return os.fsencode(value)


def _check(result: int, call: str, *args) -> int:
    if result < 0:
        err = ctypes.get_errno()
        shown = ", ".join(str(a) for a in args)
        raise OSError(err, f"{call}({shown}) failed: {os.strerror(err)}")
    return result


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 1 << 20
