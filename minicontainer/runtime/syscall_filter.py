"""The container's seccomp filter: system calls it may not make at all.

Capabilities decide what a process may do with the calls it makes;
seccomp (Documentation/userspace-api/seccomp_filter.rst) decides which
calls reach the kernel in the first place. The kernel runs a small BPF
program on every system call the container makes, and this one answers
EPERM for the calls listed below, before any kernel code behind them runs.
A bug in a call nobody can make cannot be exploited.

minict's default filter is a short deny list (allow everything else, as
LXC's default does), each entry with its reason. docker's profile is the
reverse: a long allow list, with everything else refused. A deny list is
easier to read and to teach from. Its weakness: a system call added to the
kernel later is allowed until someone lists it. (io_uring is listed for a
related reason: it reads and writes files and sockets without making the
system calls that a filter could see.)

Many of the listed calls also need a capability that a container lacks
by default (mount needs CAP_SYS_ADMIN): the filter refuses them before the
kernel code that checks the capability runs. When a container is given
that capability (--cap-add), the entry is left out, as docker does, so
that the capability works. --privileged and --security-opt
seccomp=unconfined load no filter at all.

This module is the table and the plan: which calls a container with given
capabilities may not make. The engine writes the plan into config.json as
linux.seccomp (runtime/bundle.py seccomp_profile); the runtime builds the
filter with libseccomp (oci/seccomp.py), which compiles the rules into BPF
for this machine's architecture and also for the 32-bit ABIs the kernel
accepts on it (i386 and x32 on x86_64: a list of x86_64 numbers alone
could be dodged by making the same call through the 32-bit entry point),
and loads it (oci/process.py load_seccomp).
"""

from .. import syscalls as sc
from ..errors import BadArgument, RunFailed

DEFAULT = "default"
UNCONFINED = "unconfined"

# (system calls, capabilities any of which lifts the entry (or none), why)
DENIED = [
    (("add_key", "keyctl", "request_key"), (),
     "the kernel keyring is not namespaced: keys would be shared with the host"),
    (("io_uring_setup", "io_uring_enter", "io_uring_register"), (),
     "io_uring's operations are not system calls, so no filter can see them"),
    (("userfaultfd",), (),
     "lets a process pause the kernel at a page fault it chose: how kernel races are won"),
    (("unshare", "setns"), ("CAP_SYS_ADMIN",),
     "new namespaces: a new user namespace gives full capabilities inside it"),
    (("mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig",
      "fsmount", "fspick", "mount_setattr"), ("CAP_SYS_ADMIN",),
     "changing the mount table"),
    (("bpf",), ("CAP_SYS_ADMIN", "CAP_BPF"),
     "loading programs into the kernel"),
    (("perf_event_open",), ("CAP_SYS_ADMIN", "CAP_PERFMON"),
     "performance counters observe the whole machine"),
    (("open_by_handle_at",), ("CAP_DAC_READ_SEARCH",),
     "opens files by inode handle, past every mount: docker's 2014 'shocker' escape"),
    (("init_module", "finit_module", "delete_module"), ("CAP_SYS_MODULE",),
     "loading code into the host's kernel"),
    (("kexec_load", "kexec_file_load", "reboot"), ("CAP_SYS_BOOT",),
     "replacing or restarting the host's kernel"),
    (("settimeofday", "clock_settime", "clock_adjtime"), ("CAP_SYS_TIME",),
     "the clock is not namespaced: it is the host's"),
    (("syslog",), ("CAP_SYSLOG",),
     "the kernel log shows kernel addresses"),
    (("acct",), ("CAP_SYS_PACCT",),
     "process accounting is host-wide"),
    (("swapon", "swapoff", "quotactl"), ("CAP_SYS_ADMIN",),
     "swap and disk quotas are host-wide"),
    (("iopl", "ioperm"), ("CAP_SYS_RAWIO",),
     "direct access to hardware I/O ports"),
    (("uselib", "ustat", "sysfs", "lookup_dcookie"), (),
     "obsolete calls that nothing current needs"),
]

# clone(2) takes its flags as the first argument, so the filter can look at
# them: creating namespaces through clone is refused like unshare.
# clone3(2) passes them in memory, which seccomp cannot read: it gets ENOSYS,
# and the C library then falls back to clone (what docker does too).
# (The time namespace has no clone flag: it is made only by unshare or clone3.)
NAMESPACE_FLAGS = [sc.CLONE_NEWNS, sc.CLONE_NEWUTS, sc.CLONE_NEWIPC, sc.CLONE_NEWUSER,
                   sc.CLONE_NEWPID, sc.CLONE_NEWNET, sc.CLONE_NEWCGROUP]
NAMESPACES_LIFTED_BY = ("CAP_SYS_ADMIN",)


def parse_security_opts(options) -> str:
    """The seccomp mode from `--security-opt` values: "default" or "unconfined"."""
    mode = DEFAULT
    for option in options:
        key, _, value = option.partition("=")
        if key == "seccomp" and value in (UNCONFINED, DEFAULT):
            mode = value
        elif key == "seccomp":
            raise BadArgument(f"--security-opt {option}: seccomp profile files are not supported",
                              "use seccomp=unconfined to load no filter, or leave it out for "
                              "minict's default filter")
        else:
            raise BadArgument(f"unsupported --security-opt {option!r}",
                              "minict knows seccomp=unconfined")
    return mode


class Plan:
    """What the filter of one container refuses (no libseccomp needed)."""

    def __init__(self, denied: list[str], lifted: dict[str, list[str]], clone_checked: bool):
        self.denied = denied              # system calls answering EPERM
        self.lifted = lifted              # capability -> calls left open because of it
        self.clone_checked = clone_checked  # clone's namespace flags refused, clone3 ENOSYS


def plan_for(capabilities) -> Plan:
    """The default filter for a container with these capabilities (names)."""
    held = set(capabilities)
    denied, lifted = [], {}
    for calls, lifted_by, _why in DENIED:
        granting = [cap for cap in lifted_by if cap in held]
        if granting:
            lifted.setdefault(granting[0], []).extend(calls)
        else:
            denied.extend(calls)
    clone_checked = not held.intersection(NAMESPACES_LIFTED_BY)
    if not clone_checked:
        lifted.setdefault(NAMESPACES_LIFTED_BY[0], []).extend(["clone (namespaces)", "clone3"])
    return Plan(denied, lifted, clone_checked)


def import_library():
    """libseccomp's Python bindings (Debian/Ubuntu: python3-seccomp)."""
    try:
        import seccomp  # optional: a Debian package, not on PyPI; only a filtered run needs it
    except ImportError:
        raise RunFailed("libseccomp's Python bindings are not installed, so minict cannot "
                        "load the container's seccomp filter",
                        "install them (apt-get install python3-seccomp; scripts/setup.sh links "
                        "them into .venv), or run with --security-opt seccomp=unconfined") from None
    return seccomp


def confined(spec) -> bool:
    """Whether the container gets a filter at all."""
    return not spec.privileged and spec.seccomp != UNCONFINED
