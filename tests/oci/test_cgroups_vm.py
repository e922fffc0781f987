"""minict-oci's cgroup v2 half (the VM tier: scripts/vm-test.sh boots a
real kernel with a cgroup v2 tree): linux.resources limits, cgroupsPath,
the device filter, pause/resume, update, and kill --all through
cgroup.procs. Each test checks its own cgroup, and that delete removes it."""

import ctypes
import json
import os
import stat
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.cgroup2]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def running(bundle, script, container_id="c1"):
    bundle.process("sh", "-c", script)
    bundle.oci("run", "-d", "-b", str(bundle.path), container_id, check=True)
    record = json.loads((bundle.state_root / container_id / "state.json").read_text())
    return Path(record["cgroup"])


def test_limits_land_in_the_container_s_cgroup(bundle):
    bundle.config["linux"]["resources"].update({
        "memory": {"limit": 64 << 20}, "pids": {"limit": 12},
        "cpu": {"quota": 50000, "period": 100000}})
    cgroup = running(bundle, "sleep 60")
    assert cgroup == CGROUP_ROOT / "minict-oci" / "c1"
    assert (cgroup / "memory.max").read_text().strip() == str(64 << 20)
    assert (cgroup / "pids.max").read_text().strip() == "12"
    assert (cgroup / "cpu.max").read_text().split() == ["50000", "100000"]
    assert int((cgroup / "cgroup.procs").read_text().split()[0]) == bundle.state()["pid"]
    bundle.oci("delete", "--force", "c1", check=True)
    assert not cgroup.exists()


def test_the_pids_limit_stops_a_fork_bomb(bundle):
    bundle.config["linux"]["resources"]["pids"] = {"limit": 5}
    bundle.process("sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; wait")
    result = bundle.run()
    assert "can't fork" in result.stdout + result.stderr or "Resource temporarily" in \
        result.stdout + result.stderr


def test_an_absolute_cgroups_path(bundle):
    bundle.config["linux"]["cgroupsPath"] = "/oci-tests/absolute"
    try:
        cgroup = running(bundle, "sleep 60")
        assert cgroup == CGROUP_ROOT / "oci-tests" / "absolute" and cgroup.is_dir()
        bundle.oci("delete", "--force", "c1", check=True)
        assert not cgroup.exists()
    finally:
        if (CGROUP_ROOT / "oci-tests").exists():
            (CGROUP_ROOT / "oci-tests").rmdir()


def test_the_device_filter_allows_only_what_the_config_names(bundle):
    """resources.devices denies all but /dev/null and the ptys; the nodes of
    linux.devices and the default ones are allowed as runc allows them; a
    node that came with the rootfs is refused by the eBPF filter."""
    rootfs = Path(bundle.config["root"]["path"])
    os.mknod(rootfs / "stray-fuse", 0o666 | stat.S_IFCHR, os.makedev(10, 229))
    bundle.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10,
                                          "minor": 229, "fileMode": 0o666}]
    bundle.config["linux"]["resources"]["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    bundle.process("sh", "-c", "echo x > /dev/null && echo null-ok; "
                               "echo x > /dev/zero && echo zero-ok; "
                               "cat /stray-fuse 2>&1 | head -1")
    result = bundle.run()
    assert result.stdout.startswith("null-ok\nzero-ok\n"), result.stdout + result.stderr
    assert "Operation not permitted" in result.stdout


def test_pause_resume_and_update(bundle):
    cgroup = running(bundle, "sleep 60")
    bundle.oci("pause", "c1", check=True)
    assert bundle.state()["status"] == "paused"
    assert (cgroup / "cgroup.freeze").read_text().strip() == "1"
    bundle.oci("resume", "c1", check=True)
    assert bundle.state()["status"] == "running"
    update = bundle.oci("update", "--resources", "-", "c1", check=True,
                        input=json.dumps({"pids": {"limit": 7}}))
    assert update.returncode == 0
    assert (cgroup / "pids.max").read_text().strip() == "7"
    bundle.oci("delete", "--force", "c1", check=True)
    assert not cgroup.exists()


def test_kill_all_finds_the_processes_in_the_cgroup(bundle):
    cgroup = running(bundle, "sleep 60 & sleep 60 & wait")
    wait_for(lambda: len((cgroup / "cgroup.procs").read_text().split()) == 3, 10,
             what="three processes in the cgroup")
    bundle.oci("kill", "--all", "c1", "KILL", check=True)
    wait_for(lambda: (cgroup / "cgroup.procs").read_text().strip() == "", 10,
             what="an empty cgroup")
    bundle.oci("delete", "c1", check=True)
    assert not cgroup.exists()


def _tree_options() -> str:
    """The cgroup v2 tree's superblock options (mountinfo's last field)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(CGROUP_ROOT):
            return fields[-1]
    raise AssertionError("no mount at /sys/fs/cgroup")


def test_a_container_without_a_cgroup_namespace_leaves_the_tree_s_options_alone(bundle):
    """nsdelegate (like memory_recursiveprot) is one option for the whole
    host, and a new cgroup2 mount in the host's cgroup namespace resets it
    to its own (cgroup-v2.rst, "Mounting"). minict-oci binds the tree
    instead: the container sees it all, the host keeps its options."""
    assert not any(ns["type"] == "cgroup" for ns in bundle.config["linux"]["namespaces"])
    before = _tree_options()
    libc = ctypes.CDLL(None, use_errno=True)

    def remount(options: str) -> None:
        if libc.mount(None, str(CGROUP_ROOT).encode(), None, 32, options.encode()) != 0:  # MS_REMOUNT
            raise OSError(ctypes.get_errno(), f"remount {CGROUP_ROOT} {options}")

    remount(before + ",nsdelegate")
    try:
        assert "nsdelegate" in _tree_options()
        bundle.process("sh", "-c", "cat /sys/fs/cgroup/cgroup.controllers; "
                                   "grep ' /sys/fs/cgroup ' /proc/self/mountinfo")
        result = bundle.run()
        assert result.returncode == 0, result.stderr
        controllers, mount = result.stdout.splitlines()
        assert "memory" in controllers.split()                 # the whole tree, at its top
        assert mount.split()[5].startswith("ro,")               # read-only, as config.json asks
        assert "nsdelegate" in _tree_options()
    finally:
        remount(before)
    assert _tree_options() == before
