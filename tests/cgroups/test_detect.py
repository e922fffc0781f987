"""Is cgroup v2 usable, and if not, one line naming the cause and the fix."""

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
