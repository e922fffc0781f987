"""The kernel's constants minict uses, and how C code spells them.

The numbers come from the C headers named above each group; `flags_text`
renders a bit mask as C would write it (MS_BIND|MS_REC), for the narration.
"""

import signal

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
MS_NOSYMFOLLOW = 256            # Linux 5.10: symlinks in it are not followed
MS_I_VERSION = 1 << 23
MS_LAZYTIME = 1 << 25

MS_NAMES = [
    (MS_RDONLY, "MS_RDONLY"), (MS_NOSUID, "MS_NOSUID"), (MS_NODEV, "MS_NODEV"),
    (MS_NOEXEC, "MS_NOEXEC"), (MS_SYNCHRONOUS, "MS_SYNCHRONOUS"), (MS_REMOUNT, "MS_REMOUNT"),
    (MS_MANDLOCK, "MS_MANDLOCK"), (MS_DIRSYNC, "MS_DIRSYNC"), (MS_NOATIME, "MS_NOATIME"),
    (MS_NODIRATIME, "MS_NODIRATIME"), (MS_BIND, "MS_BIND"), (MS_MOVE, "MS_MOVE"),
    (MS_REC, "MS_REC"), (MS_SILENT, "MS_SILENT"), (MS_UNBINDABLE, "MS_UNBINDABLE"),
    (MS_PRIVATE, "MS_PRIVATE"), (MS_SLAVE, "MS_SLAVE"), (MS_SHARED, "MS_SHARED"),
    (MS_RELATIME, "MS_RELATIME"), (MS_STRICTATIME, "MS_STRICTATIME"),
    (MS_NOSYMFOLLOW, "MS_NOSYMFOLLOW"), (MS_I_VERSION, "MS_I_VERSION"), (MS_LAZYTIME, "MS_LAZYTIME"),
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
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
MOUNT_ATTR_NAMES = [(MOUNT_ATTR_RDONLY, "MOUNT_ATTR_RDONLY"), (MOUNT_ATTR_NOSUID, "MOUNT_ATTR_NOSUID"),
                    (MOUNT_ATTR_NODEV, "MOUNT_ATTR_NODEV"), (MOUNT_ATTR_NOEXEC, "MOUNT_ATTR_NOEXEC"),
                    (MOUNT_ATTR_NOSYMFOLLOW, "MOUNT_ATTR_NOSYMFOLLOW")]

# <linux/sockios.h>, <net/if.h>: bring an interface up
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
AF_INET = 2
SOCK_DGRAM = 2
SOCK_CLOEXEC = 0o2000000

PR_CAP_AMBIENT = 47          # <linux/prctl.h>
PR_CAP_AMBIENT_RAISE = 2
PER_LINUX, PER_LINUX32 = 0x0000, 0x0008   # <linux/personality.h>
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

# <asm-generic/ioctls.h>: a pty's peer and number, a terminal's window size
TIOCGPTN = 0x80045430     # _IOR('T', 0x30, unsigned int): which /dev/pts/N
TIOCSPTLCK = 0x40045431   # _IOW('T', 0x31, int): unlock the peer
TIOCGPTPEER = 0x5441      # _IO('T', 0x41): open the peer from the master, no path lookup
TIOCGWINSZ = 0x5413
TIOCSWINSZ = 0x5414



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


def signal_name(number: int) -> str:
    """SIGTERM for 15; "signal 0" or "signal 40" for those with no name."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
