"""Device nodes: what exists (stat), and which ones this process may open.

A node's major/minor/mode come from stat(2) of the host's node, never from a
table: nvidia-uvm's major is allocated dynamically when the module loads.

"Visible" answers the Slurm question: with `ConstrainDevices=yes`, a job's
cgroup lets it open only its own /dev/nvidiaN, and Slurm numbers
CUDA_VISIBLE_DEVICES relative to those. Without the constraint every node
opens and the numbers are the host's. hpcshim tells the two apart by asking
which nodes this process may open:

1. a node that does not exist in /dev is not visible (a container or a
   namespace that bound only some of them);
2. on a cgroup v1 host, the `devices` controller's `devices.list` for this
   process's cgroup lists exactly what it may open ("c 195:0 rwm", or
   "a *:* rwm" for everything) - read it;
3. cgroup v2 keeps the device rules in an eBPF program nobody can read back,
   so inside a Slurm job (SLURM_JOB_ID set) on the real root, open each node
   (O_RDONLY | O_NONBLOCK) and treat EPERM as "not ours". Outside Slurm, or
   under a fake --host-root, every existing node counts as visible.
"""

import errno
import os
import stat
from collections import namedtuple

from ..plan import DeviceNode
from .hostroot import HostRoot


def stat_node(root: HostRoot, path: str, container_path: str | None = None) -> DeviceNode | None:
    """The DeviceNode for a host node, or None when it is missing or not a device."""
    real = root.join(path)
    try:
        st = os.stat(real)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return DeviceNode(path=container_path or path, host_path=real,
                      major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                      mode=stat.S_IMODE(st.st_mode), type=kind)


class DeviceRule(namedtuple("DeviceRule", ["kind", "major", "minor"])):
    """One devices.list line: kind "a", "c" or "b"; major/minor None for "*"."""
    __slots__ = ()

    def allows(self, kind: str, major: int, minor: int) -> bool:
        return ((self.kind == "a" or self.kind == kind)
                and self.major in (None, major) and self.minor in (None, minor))


def parse_devices_list(text: str) -> list[DeviceRule]:
    """Rules from a cgroup v1 devices.list ("c 195:0 rwm" / "a *:* rwm")."""
    rules = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[1]:
            continue
        major, minor = parts[1].split(":", 1)
        rules.append(DeviceRule(parts[0], None if major == "*" else int(major),
                                None if minor == "*" else int(minor)))
    return rules


def devices_cgroup_rules(root: HostRoot) -> tuple[list[DeviceRule], str] | None:
    """This process's v1 devices rules and the file they came from, or None (no v1 devices)."""
    text = root.read_text("/proc/self/cgroup")
    if text is None:
        return None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "devices" in parts[1].split(","):
            rel = parts[2].strip()
            path = "/sys/fs/cgroup/devices" + ("" if rel == "/" else rel) + "/devices.list"
            listing = root.read_text(path)
            if listing is None:
                return None
            return parse_devices_list(listing), path
    return None


def may_open(root: HostRoot, node: DeviceNode, rules: list[DeviceRule] | None,
             env: dict[str, str]) -> tuple[bool, str]:
    """Whether this process may open node, and how we know (see the module docstring)."""
    if rules is not None:
        ok = any(r.allows(node.type, node.major, node.minor) for r in rules)
        return ok, "devices cgroup " + ("allows" if ok else "denies") + f" {node.major}:{node.minor}"
    if root.is_real and env.get("SLURM_JOB_ID"):
        try:
            fd = os.open(node.host_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):
                return False, f"open() refused: {os.strerror(exc.errno)}"
            return True, f"open() failed with {errno.errorcode.get(exc.errno, exc.errno)}, not a permission error"
        os.close(fd)
        return True, "open() succeeded"
    return True, "node exists (no device cgroup to consult)"
