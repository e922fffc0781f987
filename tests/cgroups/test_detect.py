"""Is cgroup v2 usable, and if not, one line naming the cause and the fix."""

import os
from pathlib import Path

import pytest

from minicontainer.cgroups import detect
from minicontainer.errors import CgroupUnavailable
from tests.cgroups.fakes import (MOUNTS_HYBRID, PROC_CGROUPS_HYBRID, PROC_CGROUPS_UNIFIED,
                                 fake_proc, fake_root)
from tests.conftest import _cgroup2_usable

pytestmark = pytest.mark.unit


def test_unified_host_is_usable(tmp_path):
    root, proc = fake_root(tmp_path), fake_proc(tmp_path)
    assert detect.diagnose(root, {"memory", "pids", "cpu", "io", "cpuset"}, proc) is None
    assert "memory" in detect.require_controllers(root, {"memory"}, proc)


def test_hybrid_host_names_the_v1_hierarchy(tmp_path):
    # /sys/fs/cgroup/unified on a hybrid host: cgroup2, but with no controllers.
    root = fake_root(tmp_path, controllers="")
    proc = fake_proc(tmp_path, PROC_CGROUPS_HYBRID, MOUNTS_HYBRID)
    with pytest.raises(CgroupUnavailable) as caught:
        detect.require_controllers(root, {"pids", "memory"}, proc)
    assert caught.value.message == ("memory controller is bound to a cgroup v1 hierarchy "
                                    "(mounted at /sys/fs/cgroup/memory)")
    assert "systemd.unified_cgroup_hierarchy=1" in caught.value.hint
    assert "Vagrant" in caught.value.hint
    assert caught.value.exit_code == 40


@pytest.mark.parametrize("wanted, message", [
    ({"io"}, "io controller is bound to a cgroup v1 hierarchy (mounted at /sys/fs/cgroup/blkio)"),
    ({"cpu"}, "cpu controller is bound to a cgroup v1 hierarchy (mounted at /sys/fs/cgroup/cpu)"),
    ({"cpuset", "pids"}, "pids controller is bound to a cgroup v1 hierarchy"),
])
def test_each_controller_maps_to_its_v1_name(tmp_path, wanted, message):
    root = fake_root(tmp_path, controllers="")
    proc = fake_proc(tmp_path, PROC_CGROUPS_HYBRID, MOUNTS_HYBRID)
    assert detect.diagnose(root, wanted, proc)[0].startswith(message)


def test_no_v2_tree_at_all(tmp_path):
    # /sys/fs/cgroup itself on a hybrid host is a tmpfs: no cgroup.controllers.
    root = tmp_path / "sys-fs-cgroup"
    root.mkdir()
    mounts = MOUNTS_HYBRID.replace("/sys/fs/cgroup tmpfs", f"{root} tmpfs")
    proc = fake_proc(tmp_path, PROC_CGROUPS_UNIFIED, mounts)
    message, hint = detect.diagnose(root, set(), proc)
    assert message == f"no cgroup v2 hierarchy at {root} (tmpfs is mounted there)"
    assert "unified_cgroup_hierarchy" in hint
    message, _ = detect.diagnose(tmp_path / "missing", {"memory"}, proc)
    assert "nothing is mounted there" in message


def test_controller_disabled_on_command_line(tmp_path):
    root = fake_root(tmp_path, controllers="cpu io pids")
    proc = fake_proc(tmp_path, PROC_CGROUPS_UNIFIED.replace("memory\t0\t12\t1", "memory\t0\t1\t0"))
    message, hint = detect.diagnose(root, {"memory"}, proc)
    assert message == "memory controller is disabled on the kernel command line"
    assert hint == "remove cgroup_disable=memory from the kernel command line"


def test_kernel_without_the_controller(tmp_path):
    root = fake_root(tmp_path, controllers="cpu memory pids")
    proc = fake_proc(tmp_path, PROC_CGROUPS_UNIFIED.replace("rdma\t0\t12\t1\n", ""))
    assert detect.diagnose(root, {"rdma"}, proc)[0] == "this kernel has no rdma controller"


def test_not_delegated_to_a_non_top_root(tmp_path):
    root = fake_root(tmp_path, controllers="cpu pids", real_root=False)
    proc = fake_proc(tmp_path)
    message, hint = detect.diagnose(root, {"memory"}, proc)
    assert message == f"memory controller is not delegated to {root}"
    assert "Delegate=yes" in hint


def test_real_root_detection(tmp_path):
    assert detect.is_real_root(fake_root(tmp_path / "a"))
    assert not detect.is_real_root(fake_root(tmp_path / "b", real_root=False))


def test_this_machine_agrees_with_the_test_tiers():
    """Read-only look at the real /sys/fs/cgroup and /proc of the machine we run on."""
    reason = _cgroup2_usable()
    problem = detect.diagnose(Path("/sys/fs/cgroup"), {"memory", "pids", "cpu"})
    if reason is None:
        assert problem is None
    else:
        message, hint = problem
        assert "cgroup v1 hierarchy" in message or "no cgroup v2 hierarchy" in message, message
        assert "unified_cgroup_hierarchy" in hint


def _mountinfo_line(mount_id, point: Path, root="/", fstype="cgroup2", dev=None, shown=None):
    dev = os.stat(point).st_dev if dev is None else dev
    escaped = str(shown or point).replace(" ", "\\040")
    return (f"{mount_id} 1 {os.major(dev)}:{os.minor(dev)} {root} {escaped} rw,nosuid - "
            f"{fstype} {fstype} rw\n")


def test_the_whole_hierarchy_is_found_where_the_path_still_leads_to_it(tmp_path):
    """minict-oci binds this for a container without a cgroup namespace
    (oci/mounts.py): a hidden mount, a subtree or a namespace's root is not it."""
    top = tmp_path / "with space" / "cgroup"
    top.mkdir(parents=True)
    (top / "cgroup.controllers").write_text("memory pids\n")
    nested = tmp_path / "ns-root"
    nested.mkdir()
    (nested / "cgroup.controllers").write_text("")
    (nested / "cgroup.type").write_text("domain\n")   # a cgroup namespace's root has one
    mountinfo = tmp_path / "mountinfo"
    hidden = os.stat(top).st_dev + 1                     # a tmpfs mounted over it, say
    mountinfo.write_text(_mountinfo_line(20, tmp_path, fstype="ext4")
                         + _mountinfo_line(21, top, dev=hidden)
                         + _mountinfo_line(22, top, root="/system.slice")
                         + _mountinfo_line(23, nested)
                         + _mountinfo_line(24, top, fstype="tmpfs")
                         + _mountinfo_line(25, top, shown=tmp_path / "gone"))
    assert detect.whole_hierarchy_mountpoint(mountinfo) is None
    mountinfo.write_text(mountinfo.read_text() + _mountinfo_line(26, top))
    assert detect.whole_hierarchy_mountpoint(mountinfo) == str(top)
    assert detect.whole_hierarchy_mountpoint(tmp_path / "no-such-file") is None
