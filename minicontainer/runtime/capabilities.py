"""Linux capability names and Docker's default set (capabilities(7)).

Root in a container is still root on the host kernel (minict uses no user
namespace), so what keeps it in its box is mostly what it may NOT do: the
capability bounding set limits every process in the container forever,
and the default below is Docker's (moby's oci/caps/defaults.go): enough to
run ordinary software as root, nothing that reconfigures the kernel
(CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_PTRACE, CAP_NET_ADMIN...).
"""

from ..errors import BadArgument

# Number -> name, from <linux/capability.h>.
NAMES = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
NUMBERS = {name: number for number, name in enumerate(NAMES)}

DOCKER_DEFAULT = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def last_cap() -> int:
    """The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def normalize(name: str) -> str:
    """'net_admin', 'NET_ADMIN', 'CAP_NET_ADMIN' -> 'CAP_NET_ADMIN' (or 'ALL')."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in NUMBERS:
        raise BadArgument(f"unknown capability {name!r}",
                          "use a name from capabilities(7), e.g. NET_ADMIN, or ALL")
    return upper


def resolve(cap_add=(), cap_drop=(), privileged: bool = False) -> list[str]:
    """The capability set a container gets, applied the way docker does:
    start from the default (or everything, for --privileged), drop, then add."""
    highest = last_cap()   # (read once: it is a file in /proc)
    everything = [n for n in NAMES if NUMBERS[n] <= highest]
    if privileged:
        return everything
    adds = [normalize(c) for c in cap_add]
    drops = [normalize(c) for c in cap_drop]
    caps = [] if "ALL" in drops else list(DOCKER_DEFAULT)
    caps = [c for c in caps if c not in drops]
    for cap in (everything if "ALL" in adds else adds):
        if cap not in caps and cap in everything:
            caps.append(cap)
    return sorted(caps, key=NUMBERS.__getitem__)


def without(name: str, sets: dict) -> dict:
    """process.capabilities' sets with `name` taken out of every one (CAP_MKNOD
    where no device controller guards the container: runtime/bundle.py
    for_start, oci/create.py)."""
    return {kind: [c for c in names if c != name] for kind, names in sets.items()}


def mask(names) -> int:
    """The bit mask /proc/PID/status shows for a set of capability names."""
    value = 0
    for name in names:
        value |= 1 << NUMBERS[name]
    return value
