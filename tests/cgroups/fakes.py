"""Fake cgroup v2 trees and /proc files, in the kernel's own formats.

Used only where the real thing cannot run on the build machines (their
controllers are held by cgroup v1); the same code runs against the real
kernel in the VM tier (test_kernel.py).
"""

from pathlib import Path

ALL_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"

# /proc/cgroups of a unified (v2-only) host: every hierarchy id is 0.
PROC_CGROUPS_UNIFIED = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t0\t12\t1
cpu\t0\t12\t1
cpuacct\t0\t12\t1
blkio\t0\t12\t1
memory\t0\t12\t1
devices\t0\t12\t1
freezer\t0\t12\t1
net_cls\t0\t12\t1
perf_event\t0\t12\t1
net_prio\t0\t12\t1
hugetlb\t0\t12\t1
pids\t0\t12\t1
rdma\t0\t12\t1
misc\t0\t12\t1
"""

# /proc/cgroups and /proc/mounts of a systemd "hybrid" host (our build machines).
PROC_CGROUPS_HYBRID = """#subsys_name\thierarchy\tnum_cgroups\tenabled
cpuset\t3\t1\t1
cpu\t1\t1\t1
cpuacct\t2\t1\t1
blkio\t7\t1\t1
memory\t4\t35\t1
devices\t5\t1\t1
freezer\t6\t1\t1
net_cls\t0\t1\t1
perf_event\t0\t1\t1
net_prio\t0\t1\t1
hugetlb\t0\t1\t1
pids\t8\t1\t1
"""

MOUNTS_HYBRID = """sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs ro,nosuid,nodev,noexec,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,nosuid,nodev,noexec,relatime,xattr,name=systemd 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,nosuid,nodev,noexec,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,nosuid,nodev,noexec,relatime,blkio 0 0
cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,nodev,noexec,relatime,cpuset 0 0
"""

MOUNTS_UNIFIED = """sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
"""


def fake_proc(tmp: Path, cgroups: str = PROC_CGROUPS_UNIFIED, mounts: str = MOUNTS_UNIFIED) -> Path:
    proc = tmp / "proc"
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "cgroups").write_text(cgroups)
    (proc / "mounts").write_text(mounts)
    return proc


def fake_root(tmp: Path, controllers: str = ALL_CONTROLLERS, procs: tuple[int, ...] = (),
              real_root: bool = True, subtree_control: str = "", cpus: str = "0-1") -> Path:
    """A directory that looks like the top of a cgroup v2 tree (or a namespace root)."""
    root = tmp / "cgroup"
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text(subtree_control + "\n")
    (root / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
    (root / "cpuset.cpus.effective").write_text(cpus + "\n")
    if not real_root:
        (root / "cgroup.type").write_text("domain\n")
    return root


class Narration:
    """A recording explain hook: "sentence: call" lines, and the calls alone."""

    def __init__(self):
        self.lines: list[str] = []
        self._calls: list[str] = []

    def __call__(self, sentence: str, call: str | None = None) -> None:
        self.lines.append(f"{sentence}: {call}" if call else sentence)
        if call:
            self._calls.append(call)

    def calls(self) -> list[str]:
        return list(self._calls)
