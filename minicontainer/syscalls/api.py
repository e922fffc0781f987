"""KernelApi: what minict asks of the kernel, each call narrated (the interface).

youki's shape: this is the Syscall trait, linux.py its Linux implementation,
recording.py the test double.
"""

import os
import shlex
import stat

from .flags import (BPF_LICENSE, MNT_DETACH, MNT_FORCE, MOUNT_ATTR_NAMES, clone_flags_text,
                    flags_text, signal_name)
from .narrator import Narrator


# config.json's device types ("c", "b", "p") -> mknod's file type, and its name in C
NODE_TYPES = {"c": (stat.S_IFCHR, "S_IFCHR"), "b": (stat.S_IFBLK, "S_IFBLK"),
              "p": (stat.S_IFIFO, "S_IFIFO")}


def c_arg(value):
    """Quote an argument as it would appear in C (NULL for None)."""
    return "NULL" if value is None else f'"{value}"'


class KernelApi:
    """Every kernel-facing call minict makes, narrated: the interface.

    Public methods take `why`, the sentence printed with --explain, print it
    with the exact call, then call the matching `_do_*` primitive. The
    primitives are a subclass's: Kernel (linux.py) makes the calls,
    RecordingKernel (recording.py) records them.
    """

    def __init__(self, narrator: Narrator | None = None):
        self.narrator = narrator or Narrator(False)

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

    def fork(self, why: str) -> int:
        """fork(2): the child's pid in the parent, 0 in the child."""
        self.explain(why, "fork()")
        return self._do_fork()

    def open_namespace(self, pid, kind: str, why: str) -> int:
        """An fd of /proc/PID/ns/KIND (PID may be "self"), close-on-exec: what
        setns(2) takes, and a handle that keeps the namespace alive."""
        path = f"/proc/{pid}/ns/{kind}"
        self.explain(why, f"open({c_arg(path)}, O_RDONLY|O_CLOEXEC)")
        return self._do_open_namespace(path)

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

    def create_veth(self, name: str, peer: str, netns_fd: int, where, why: str) -> None:
        """A veth pair: `name` here, `peer` made directly in the network
        namespace `netns_fd` holds. `where`, for the narration's ip(8)
        command: the PID of a process in it, or a name for it."""
        self.explain(why, f'RTM_NEWLINK {{ifname="{name}", kind="veth", peer={{ifname="{peer}", '
                          f'net_ns_fd={netns_fd}}}}} (ip link add {name} type veth peer name '
                          f'{peer} netns {where})')
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
        self.explain(why, shlex.join(["iptables", "-t", table, action, *rule]))
        self._do_firewall(table, action, rule)

    # -- mounts --

    def mount(self, source, target, fstype, flags: int, data, why: str) -> None:
        self.explain(why, f"mount({c_arg(source)}, {c_arg(target)}, {c_arg(fstype)}, "
                          f"{flags_text(flags)}, {c_arg(data)})")
        self._do_mount(source, target, fstype, flags, data)

    def umount2(self, target, flags: int, why: str) -> None:
        names = [(MNT_FORCE, "MNT_FORCE"), (MNT_DETACH, "MNT_DETACH")]
        self.explain(why, f"umount2({c_arg(target)}, {flags_text(flags, names)})")
        self._do_umount2(target, flags)

    def bind_with_attributes(self, source, target, readonly: bool, nodev: bool, why: str) -> None:
        """A recursive bind of `source` at `target` whose flags are set before
        it is attached: read-only (its top mount, as a remount would make it)
        and/or nodev (every mount in it: a recursive bind brings the source's
        submounts along). Nothing is looked up by path after the mount
        exists, so nothing swapped in meanwhile can receive the flags
        instead (a remount must find the new mount again by its path).
        Needs Linux 5.12 (has_mount_setattr)."""
        steps = [f"open_tree(AT_FDCWD, {c_arg(source)}, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE)"
                 f" = tree"]
        if readonly:
            steps.append('mount_setattr(tree, "", AT_EMPTY_PATH, {attr_set=MOUNT_ATTR_RDONLY})')
        if nodev:
            steps.append('mount_setattr(tree, "", AT_EMPTY_PATH|AT_RECURSIVE, '
                         '{attr_set=MOUNT_ATTR_NODEV})')
        steps.append(f'move_mount(tree, "", AT_FDCWD, {c_arg(target)}, '
                     f'MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_SYMLINKS)')
        self.explain(why, "; ".join(steps))
        self._do_bind_with_attributes(source, target, readonly, nodev)

    def set_tree_attributes(self, target, attr_set: int, attr_clr: int, why: str) -> None:
        """Set and clear flags (MOUNT_ATTR_*) of the mount at `target` and of
        every mount below it: config.json's recursive options (rro,
        rnosuid...), which a remount cannot give (it changes one mount).
        Needs Linux 5.12 (has_mount_setattr)."""
        self.explain(why, f"mount_setattr(AT_FDCWD, {c_arg(target)}, AT_RECURSIVE, "
                          f"{{attr_set={flags_text(attr_set, MOUNT_ATTR_NAMES)}, "
                          f"attr_clr={flags_text(attr_clr, MOUNT_ATTR_NAMES)}}})")
        self._do_set_tree_attributes(target, attr_set, attr_clr)

    def clone_mount(self, source, why: str) -> int:
        """A copy of the mount at `source` (not its submounts), detached and
        held by the returned fd until attach_mount puts it somewhere: unlike
        a bind mount, a detached copy can cross into another mount namespace."""
        self.explain(why, f"open_tree(AT_FDCWD, {c_arg(source)}, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC)"
                          f" = tree")
        return self._do_clone_mount(source)

    def attach_mount(self, tree: int, target, why: str) -> None:
        """Attach the detached mount `tree` (clone_mount's) at `target`; closes `tree`."""
        self.explain(why, f'move_mount(tree, "", AT_FDCWD, {c_arg(target)}, MOVE_MOUNT_F_EMPTY_PATH)')
        self._do_attach_mount(tree, target)

    def open_in_root(self, root_fd: int, path: str, why: str) -> int:
        """An O_PATH handle on `path` inside the directory `root_fd` holds,
        its symlinks resolved as if that directory were `/` (baselib.inroot:
        openat2 RESOLVE_IN_ROOT, or the same walk on older kernels)."""
        self.explain(why, f'openat2({root_fd}, "{path.lstrip("/") or "."}", '
                          f'{{O_PATH, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS}})')
        return self._do_open_in_root(root_fd, path)

    def pivot_root(self, new_root, put_old, why: str) -> None:
        self.explain(why, f"pivot_root({c_arg(new_root)}, {c_arg(put_old)})")
        self._do_pivot_root(new_root, put_old)

    def chdir(self, path, why: str) -> None:
        self.explain(why, f"chdir({c_arg(path)})")
        self._do_chdir(path)

    # -- files, directories, device nodes --

    def mkdir(self, path, mode: int, why: str) -> None:
        self.explain(why, f"mkdir({c_arg(path)}, {mode:#o})")
        self._do_mkdir(path, mode)

    def symlink(self, target, linkpath, why: str) -> None:
        self.explain(why, f"symlink({c_arg(target)}, {c_arg(linkpath)})")
        self._do_symlink(target, linkpath)

    def write_file(self, path, data: bytes, mode: int, why: str) -> None:
        """Create the new file `path` holding `data` (never an existing one)."""
        shown = data[:60].decode(errors="replace").replace("\n", "\\n")
        more = "..." if len(data) > 60 else ""
        self.explain(why, f'open({c_arg(path)}, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW, {mode:#o}); '
                          f'write(fd, "{shown}{more}", {len(data)})')
        self._do_write_file(path, data, mode)

    def write_proc(self, path, text: str, why: str) -> None:
        """Write `text` to an existing kernel file (/proc/PID/uid_map...)."""
        self.explain(why, f'open({c_arg(path)}, O_WRONLY); write(fd, "{text.rstrip()}")')
        self._do_write_proc(path, text)

    def mknod(self, path, kind: str, major: int, minor: int, mode: int, why: str,
              uid: int = 0, gid: int = 0) -> None:
        type_bits, type_name = NODE_TYPES[kind]
        device = 0 if kind == "p" else os.makedev(major, minor)    # a fifo has no device
        self.explain(why, f"mknod({c_arg(path)}, {type_name}|{mode:#o}, "
                          f"{'0' if kind == 'p' else f'makedev({major}, {minor})'})")
        self._do_mknod(path, type_bits | mode, device, mode, uid, gid)

    def mknod_at(self, dir_fd: int, name: str, kind: str, major: int, minor: int, mode: int,
                 why: str) -> None:
        """mknod(2) of `name` in the directory `dir_fd` holds (a layer's device
        node or whiteout): never a path looked up from the top again."""
        type_bits, type_name = NODE_TYPES[kind]
        self.explain(why, f"mknodat({dir_fd}, {c_arg(name)}, {type_name}|{mode:#o}, "
                          f"makedev({major}, {minor}))")
        self._do_mknod_at(dir_fd, name, type_bits | mode, os.makedev(major, minor))

    # -- identity: hostname, network --

    def sethostname(self, name: str, why: str) -> None:
        self.explain(why, f"sethostname({c_arg(name)}, {len(name.encode())})")
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

    def open_pty(self, why: str) -> tuple[int, int]:
        """(master, peer) of a new pseudo-terminal from /dev/ptmx (the devpts
        mounted at /dev/pts here). The peer is opened with TIOCGPTPEER, not by
        its path: a path in /dev/pts could be swapped by something in the
        container between the two opens; the ioctl names the exact pty (why
        it was added to Linux 4.13, for container runtimes)."""
        self.explain(why, "open(\"/dev/ptmx\", O_RDWR|O_NOCTTY|O_CLOEXEC) = master; "
                          "ioctl(master, TIOCSPTLCK, 0); ioctl(master, TIOCGPTPEER, O_RDWR|O_NOCTTY)")
        return self._do_open_pty()

    def set_window_size(self, fd: int, rows: int, columns: int, why: str) -> None:
        self.explain(why, f"ioctl({fd}, TIOCSWINSZ, {{rows={rows}, cols={columns}}})")
        self._do_set_window_size(fd, rows, columns)

    def copy_window_size(self, from_fd: int, to_fd: int, why: str) -> None:
        self.explain(why, f"ioctl({from_fd}, TIOCGWINSZ, &size); ioctl({to_fd}, TIOCSWINSZ, &size)")
        self._do_copy_window_size(from_fd, to_fd)

    def kill(self, pid: int, sig: int, why: str) -> None:
        """kill(2) by pid (ProcessLookupError if it is gone). For a process
        that may have been reaped and its pid reused, use a pidfd instead."""
        self.explain(why, f"kill({pid}, {signal_name(sig)})")
        self._do_kill(pid, sig)

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
        self.explain(why, f"pidfd_send_signal({shown}, {signal_name(sig)})")
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

    def set_capability_sets(self, effective: list[int], permitted: list[int],
                            inheritable: list[int], why: str) -> None:
        """The three sets of capset(2) one by one (an OCI config names each)."""
        self.explain(why, f"capset(effective={{{len(effective)} caps}}, permitted="
                          f"{{{len(permitted)} caps}}, inheritable={{{len(inheritable)} caps}})")
        self._do_set_capability_sets(effective, permitted, inheritable)

    def raise_ambient(self, cap: int, name: str, why: str) -> None:
        self.explain(why, f"prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, {name})")
        self._do_raise_ambient(cap)

    def set_keepcaps(self, why: str) -> None:
        self.explain(why, "prctl(PR_SET_KEEPCAPS, 1)")
        self._do_prctl_value("set_keepcaps", 1)

    def set_personality(self, persona: int, name: str, why: str) -> None:
        self.explain(why, f"personality({name})")
        self._do_set_personality(persona)

    def set_no_new_privs(self, why: str) -> None:
        self.explain(why, "prctl(PR_SET_NO_NEW_PRIVS, 1)")
        self._do_prctl_value("set_no_new_privs", 1)

    def set_dumpable(self, value: bool, why: str) -> None:
        self.explain(why, f"prctl(PR_SET_DUMPABLE, {int(value)})")
        self._do_prctl_value("set_dumpable", int(value))

    def set_pdeathsig(self, sig: int, why: str) -> None:
        self.explain(why, f"prctl(PR_SET_PDEATHSIG, {signal_name(sig)})")
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
                          f"bpf(BPF_PROG_ATTACH, {{target_fd=open({c_arg(cgroup_path)}), "
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
        self.explain(why, f"execve({c_arg(path)}, {argv}, [{len(env)} variables])")
        self._do_execve(path, argv, env)
