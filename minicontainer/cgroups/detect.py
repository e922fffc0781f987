"""Is cgroup v2 usable here, and if not, why not (in one line)?

A controller (memory, pids, cpu, io, cpuset) can be attached to one kind of
hierarchy at a time: either the single cgroup v2 tree or a cgroup v1 one.
On a "hybrid" host (systemd's legacy layout, still common on older distros
and on our build machines) /sys/fs/cgroup is a tmpfs of v1 hierarchies and
the v2 tree at /sys/fs/cgroup/unified holds no controllers at all. Asking
that tree for a memory limit cannot work, and the kernel's own answer
(ENOENT on memory.max) says nothing useful, so we look first and say why:

  /proc/cgroups    one row per controller: its v1 hierarchy id (0 = free for
                   v2) and whether it is enabled (cgroup_disable= turns it off)
  /proc/mounts     where each v1 hierarchy is mounted, to name it
  <root>/cgroup.controllers
                   what the v2 tree offers at this level

Kernel reference: Documentation/admin-guide/cgroup-v2.rst, sections
"Mounting" (a controller bound to v1 is unavailable to v2) and "Controlling
Controllers". Everything takes the paths as arguments so tests can use a
temp dir with fake files.
"""

import os
from pathlib import Path

from ..errors import CgroupUnavailable

UNIFIED_FIX = "boot with systemd.unified_cgroup_hierarchy=1, or use the Vagrant VM (vagrant up)"

# cgroup v2 name -> the name the same controller has in /proc/cgroups (v1).
V1_NAME = {"cpu": "cpu", "memory": "memory", "pids": "pids", "io": "blkio",
           "cpuset": "cpuset", "hugetlb": "hugetlb", "rdma": "rdma", "misc": "misc"}

# Report the controller a reader most likely asked for first.
_ORDER = ["memory", "pids", "cpu", "io", "cpuset", "hugetlb", "rdma", "misc"]


def available_controllers(root: Path) -> set[str] | None:
    """Controllers the v2 tree offers at root; None if root is not a cgroup v2 directory."""
    try:
        return set((Path(root) / "cgroup.controllers").read_text().split())
    except (FileNotFoundError, NotADirectoryError):
        return None


def is_real_root(root: Path) -> bool:
    """True for the top of the whole v2 hierarchy.

    Only the top cgroup lacks cgroup.type (and memory.max, cgroup.kill...).
    A cgroup-namespace root inside a container, or a delegated systemd
    scope, has one: it is an ordinary cgroup that merely looks like "/".
    """
    return not (Path(root) / "cgroup.type").exists()


def whole_hierarchy_mountpoint(mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """Where this process sees the whole cgroup v2 hierarchy mounted
    (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host), or None.

    Only a mount of the hierarchy's top counts (mountinfo's root field "/"
    and, at the path, the top cgroup itself: is_real_root), and only one
    the path still leads to: a mount hidden under another (a tmpfs over it)
    is in mountinfo too, but its device is not the one found at the path.
    """
    try:
        lines = Path(mountinfo).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        # ID PARENT MAJOR:MINOR ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPER-OPTIONS
        fields, _, filesystem = line.partition(" - ")
        fields = fields.split()
        if len(fields) < 5 or filesystem.split()[:1] != ["cgroup2"] or fields[3] != "/":
            continue
        point = fields[4].replace("\\040", " ")   # mountinfo escapes spaces as \040
        major, minor = (int(n) for n in fields[2].split(":"))
        try:
            found = os.stat(point).st_dev == os.makedev(major, minor)
        except OSError:
            continue
        if found and is_real_root(Path(point)):
            return point
    return None


def _read_proc_cgroups(proc: Path) -> dict[str, tuple[int, bool]] | None:
    """/proc/cgroups as {name: (v1 hierarchy id, enabled)}; None if unreadable."""
    try:
        text = (proc / "cgroups").read_text()
    except OSError:
        return None
    table = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 4 and not line.startswith("#"):
            table[fields[0]] = (int(fields[1]), fields[3] == "1")
    return table


def _mounts(proc: Path) -> list[tuple[str, str, set[str]]]:
    """(mountpoint, fstype, options) for each line of /proc/mounts."""
    try:
        text = (proc / "mounts").read_text()
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            # /proc/mounts escapes spaces in paths as \040
            rows.append((fields[1].replace("\\040", " "), fields[2], set(fields[3].split(","))))
    return rows


def _v1_mountpoint(proc: Path, v1_name: str) -> str | None:
    for mountpoint, fstype, options in _mounts(proc):
        if fstype == "cgroup" and v1_name in options:
            return mountpoint
    return None


def _fstype_at(proc: Path, path: Path) -> str | None:
    """The filesystem type mounted exactly at path, if any."""
    found = None
    for mountpoint, fstype, _ in _mounts(proc):
        if mountpoint == str(path):
            found = fstype  # the last mount at a path is the visible one
    return found


def diagnose(root: Path, wanted: set[str], proc: Path = Path("/proc")) -> tuple[str, str] | None:
    """None if every wanted controller is usable at root, else (message, hint)."""
    root = Path(root)
    have = available_controllers(root)
    missing = set(wanted) - (have or set())
    if have is not None and not missing:
        return None
    v1 = _read_proc_cgroups(proc)
    for controller in sorted(missing, key=lambda c: (_ORDER + [c]).index(c)):
        v1_name = V1_NAME.get(controller, controller)
        if v1 is None:
            break
        if v1_name not in v1:
            return (f"this kernel has no {controller} controller",
                    "use a kernel with all cgroup controllers (Debian's linux-image-amd64), "
                    "or the Vagrant VM")
        hierarchy, enabled = v1[v1_name]
        if not enabled:
            return (f"{controller} controller is disabled on the kernel command line",
                    f"remove cgroup_disable={v1_name} from the kernel command line")
        if hierarchy != 0:
            where = _v1_mountpoint(proc, v1_name)
            at = f" (mounted at {where})" if where else ""
            return f"{controller} controller is bound to a cgroup v1 hierarchy{at}", UNIFIED_FIX
    if have is None:
        what = _fstype_at(proc, root)
        found = f"{what} is mounted there" if what else "nothing is mounted there"
        return f"no cgroup v2 hierarchy at {root} ({found})", UNIFIED_FIX
    first = sorted(missing, key=lambda c: (_ORDER + [c]).index(c))[0]
    return (f"{first} controller is not delegated to {root}",
            "its parent cgroup must enable it in cgroup.subtree_control "
            "(systemd: run minict in a unit with Delegate=yes)")


def require_controllers(root: Path, wanted: set[str], proc: Path = Path("/proc")) -> set[str]:
    """Raise CgroupUnavailable unless root offers every wanted controller.

    Returns every controller root offers (callers enable the stats-worthy
    ones even when no limit needs them). Reads only; writes nothing.
    """
    problem = diagnose(root, wanted, proc)
    if problem:
        raise CgroupUnavailable(*problem)
    return available_controllers(root) or set()
