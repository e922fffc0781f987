"""The one place minict talks to the kernel (docs/ARCHITECTURE.md, "Boundaries").

Every kernel-facing step minict takes goes through a `Kernel` object:
processes (fork, clone, kill, pidfds), namespaces (unshare, setns, the
/proc/PID/ns files), mounts (mount, umount2, pivot_root, the new mount API),
the files and device nodes it creates, the hostname, network links,
addresses, routes, sysctls and iptables rules, terminals, capabilities,
no_new_privs, seccomp, bpf, the user switch and the final execve. Two things
follow from having exactly one such place (tests/test_boundaries.py keeps it
so):

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

The package, youki's syscall/ shape:

    api.py        KernelApi: every call, narrated (the interface)
    linux.py      Kernel: KernelApi making the calls (os, the C library, pyroute2, prctl)
    recording.py  RecordingKernel: KernelApi recording them (the test double)
    narrator.py   the [explain] lines
    optional.py   the optional bindings (python-prctl, pyroute2), imported when first needed
    flags.py      the kernel's constants, and how C spells a bit mask
    libc.py       the C library through ctypes
    bpf.py        bpf(2): the device filter, and reading back what is attached
    queries.py    read-only questions (kernel version, a link...): not narrated
    programs.py   the programs it runs (newuidmap, iptables), and iptables' rules
"""

from .api import KernelApi
from .bpf import bpf_program_ids, bpf_program_info, cgroup_device_programs, load_bpf_program
from .flags import clone_flags_text, flags_text, signal_name
from .flags import (  # the constants, as sc.CLONE_NEWNS, sc.MS_BIND...
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
    CLONE_NEWNET, CLONE_NAMES, MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS,
    MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_MOVE, MS_REC,
    MS_SILENT, MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED, MS_RELATIME, MS_STRICTATIME,
    MS_NOSYMFOLLOW, MS_I_VERSION, MS_LAZYTIME, MS_NAMES, MNT_FORCE, MNT_DETACH, SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR, AT_FDCWD,
    AT_EMPTY_PATH, AT_RECURSIVE, OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH,
    MOVE_MOUNT_T_SYMLINKS, MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_NAMES, SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, AF_INET, SOCK_DGRAM,
    SOCK_CLOEXEC, TIOCSCTTY, BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_GET_NEXT_ID,
    BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_QUERY, BPF_PROG_TYPE_CGROUP_DEVICE,
    BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_LICENSE, SYS_BPF, SYS_CLONE, TIOCGPTN, TIOCSPTLCK,
    TIOCGPTPEER, TIOCGWINSZ, TIOCSWINSZ, PER_LINUX, PER_LINUX32,
)
from .linux import Kernel
from .optional import prctl
from .narrator import CallbackNarrator, JsonNarrator, Narrator
from .programs import iptables_path, iptables_rules
from .queries import has_mount_setattr, in_bounding_set, kernel_version, link_exists
from .recording import Call, RecordingKernel

__all__ = [
    'KernelApi', 'bpf_program_ids', 'bpf_program_info', 'cgroup_device_programs',
    'load_bpf_program', 'clone_flags_text', 'flags_text', 'signal_name', 'CLONE_NEWNS', 'CLONE_NEWCGROUP',
    'CLONE_NEWUTS', 'CLONE_NEWIPC', 'CLONE_NEWUSER', 'CLONE_NEWPID', 'CLONE_NEWNET',
    'CLONE_NAMES', 'MS_RDONLY', 'MS_NOSUID', 'MS_NODEV', 'MS_NOEXEC', 'MS_SYNCHRONOUS',
    'MS_REMOUNT', 'MS_MANDLOCK', 'MS_DIRSYNC', 'MS_NOATIME', 'MS_NODIRATIME', 'MS_BIND',
    'MS_MOVE', 'MS_REC', 'MS_SILENT', 'MS_UNBINDABLE', 'MS_PRIVATE', 'MS_SLAVE', 'MS_SHARED',
    'MS_RELATIME', 'MS_STRICTATIME', 'MS_NOSYMFOLLOW', 'MS_I_VERSION', 'MS_LAZYTIME', 'MS_NAMES', 'MNT_FORCE', 'MNT_DETACH', 'SYS_OPEN_TREE',
    'SYS_MOVE_MOUNT', 'SYS_MOUNT_SETATTR', 'AT_FDCWD', 'AT_EMPTY_PATH', 'AT_RECURSIVE',
    'OPEN_TREE_CLONE', 'OPEN_TREE_CLOEXEC', 'MOVE_MOUNT_F_EMPTY_PATH', 'MOVE_MOUNT_T_SYMLINKS',
    'MOUNT_ATTR_RDONLY', 'MOUNT_ATTR_NOSUID', 'MOUNT_ATTR_NODEV', 'MOUNT_ATTR_NOEXEC',
    'MOUNT_ATTR_NOSYMFOLLOW',
    'MOUNT_ATTR_NAMES', 'SIOCGIFFLAGS', 'SIOCSIFFLAGS', 'IFF_UP', 'AF_INET', 'SOCK_DGRAM',
    'SOCK_CLOEXEC', 'TIOCSCTTY', 'BPF_PROG_LOAD', 'BPF_PROG_ATTACH', 'BPF_PROG_GET_NEXT_ID',
    'BPF_PROG_GET_FD_BY_ID', 'BPF_OBJ_GET_INFO_BY_FD', 'BPF_PROG_QUERY',
    'BPF_PROG_TYPE_CGROUP_DEVICE', 'BPF_CGROUP_DEVICE', 'BPF_F_ALLOW_MULTI', 'BPF_LICENSE',
    'SYS_BPF', 'SYS_CLONE', 'TIOCGPTN', 'TIOCSPTLCK', 'TIOCGPTPEER', 'TIOCGWINSZ',
    'TIOCSWINSZ', 'PER_LINUX', 'PER_LINUX32', 'Kernel', 'prctl', 'CallbackNarrator', 'JsonNarrator', 'Narrator', 'has_mount_setattr',
    'in_bounding_set', 'iptables_path', 'iptables_rules', 'kernel_version', 'link_exists',
    'Call', 'RecordingKernel'
]
