"""Device control on this host, checked from inside real containers.

Here no cgroup v2 is usable (the controllers are held by v1, and its
cgroup filesystems are not ours to write), so no device controller can
guard a container: minict's fallback (runtime/device_access.py) drops
CAP_MKNOD and mounts everything but its own /dev nodev. These tests check
that from inside. On a host with cgroup v2 they are skipped, because
there the eBPF program guards instead (test_devices_vm.py, the VM tier).

The device program itself is loaded into this host's kernel too, to have
its verifier check it (loading needs no cgroup, and attaches nothing).
"""

import errno
import json
import os
import stat

import pytest

from minicontainer import syscalls as sc
from minicontainer.cgroups.device_program import assemble
from minicontainer.cgroups.devices import rules_for
from minicontainer.runtime import capabilities as caps
from minicontainer.runtime.flags import DeviceNode
from tests.conftest import _cgroup2_usable
from tests.helpers.images import Entry, ImageBuilder, tar_from_dir, tar_of
from tests.runtime.conftest import Minict, container_dirs, mount_table

pytestmark = pytest.mark.root

fallback_only = pytest.mark.skipif(_cgroup2_usable() is None,
                                   reason="this host has cgroup v2: the eBPF program guards "
                                          "containers here (test_devices_vm.py), not the fallback")
MKNOD_BIT = 1 << caps.NUMBERS["CAP_MKNOD"]


def status_fields(text: str) -> dict:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def writable_mounts_without_nodev(mountinfo: str) -> list[str]:
    """Mount points that are read-write and lack nodev, except the /dev that
    minict fills itself, its devpts, and /dev/null bound over masked files."""
    found = []
    for line in mountinfo.splitlines():
        fields = line.split()
        point, options = fields[4], fields[5].split(",")
        if point in ("/dev", "/dev/pts") or "ro" in options or "nodev" in options:
            continue
        sep = fields.index("-")
        if fields[3] == "/null" and fields[sep + 1] == "tmpfs":    # a bind of our /dev/null
            continue
        found.append(point)
    return found


# ---- the program, through this kernel's verifier ----------------------------------------------------

@pytest.mark.parametrize("rules", [rules_for(), rules_for(privileged=True),
                                   rules_for([DeviceNode("/dev/loop0", "b", 7, 0, access="r"),
                                              DeviceNode("/dev/nvidia1", "c", 195, 1)])],
                         ids=["default", "privileged", "extra-nodes"])
def test_the_kernel_verifier_accepts_the_device_program(rules):
    program = assemble(rules)
    try:
        fd = sc.load_bpf_program(sc.BPF_PROG_TYPE_CGROUP_DEVICE, program, "minict_test")
    except PermissionError as exc:
        pytest.skip(f"this sandbox refuses bpf(2) itself: {exc}")
    try:
        mine = [i for i in sc.bpf_program_ids()
                if sc.bpf_program_info(i) == (sc.BPF_PROG_TYPE_CGROUP_DEVICE, program)]
        assert mine, "the kernel holds the program as it was loaded"
    finally:
        os.close(fd)


def test_the_verifier_refuses_a_program_and_says_why():
    with pytest.raises(OSError) as caught:
        sc.load_bpf_program(sc.BPF_PROG_TYPE_CGROUP_DEVICE, assemble(rules_for())[:-8], "cut")
    if caught.value.errno == errno.EPERM:
        pytest.skip("this sandbox refuses bpf(2) itself")
    assert caught.value.errno == errno.EINVAL
    assert "the verifier said: " in str(caught.value)


# ---- the fallback, from inside -------------------------------------------------------------------------

@fallback_only
def test_without_a_device_controller_no_mknod_and_every_writable_mount_is_nodev(mt, tmp_path):
    volume = tmp_path / "volume"
    volume.mkdir()
    out = mt.out("run", "--rm", "-v", f"{volume}:/data", "-v", "/dev:/hostdev",
                 "--tmpfs", "/scratch:dev,exec", "busybox", "sh", "-c",
                 "cat /proc/self/status; echo ==; cat /proc/self/mountinfo; echo ==; "
                 "mknod /tmp/d b 7 0 2>&1; cat /hostdev/null 2>&1; cat /dev/null && echo null-ok")
    status, mountinfo, tries = out.split("==\n")
    fields = status_fields(status)
    assert int(fields["CapBnd"], 16) & MKNOD_BIT == 0
    assert int(fields["CapEff"], 16) & MKNOD_BIT == 0
    assert writable_mounts_without_nodev(mountinfo) == []
    points = [line.split()[4] for line in mountinfo.splitlines()]
    assert {"/", "/data", "/hostdev", "/hostdev/pts", "/scratch"} <= set(points)
    lines = tries.splitlines()
    assert "mknod: /tmp/d: Operation not permitted" in lines[0]
    assert "cat: can't open '/hostdev/null': Permission denied" in lines[1]   # nodev: EACCES
    assert lines[2] == "null-ok"                                              # minict's own /dev


@pytest.fixture
def device_image(tmp_path, busybox_rootfs) -> Minict:
    """An image whose top layer ships device nodes: a copy of /dev/null at
    /nullcopy and the first loop device at /blk."""
    m = Minict(tmp_path / "root", tmp_path / "state")
    image = ImageBuilder()
    image.add_layer(tar_from_dir(busybox_rootfs), compression=None)
    image.add_layer(tar_of([Entry.chardev("nullcopy", 1, 3), Entry.blockdev("blk", 7, 0)]),
                    compression=None)
    m.out("load", "-i", image.write_oci_archive(tmp_path / "devices.tar", ref_name="devices:latest"))
    return m


@fallback_only
def test_a_device_node_in_a_layer_cannot_be_opened(device_image):
    out = device_image.out("run", "--rm", "devices", "sh", "-c",
                           "ls -l /nullcopy /blk; cat /nullcopy 2>&1; cat /dev/null && echo null-ok")
    lines = out.splitlines()
    assert lines[0].startswith("brw-") and " 7,   0 " in lines[0] and lines[0].endswith(" /blk")
    assert lines[1].startswith("crw-") and " 1,   3 " in lines[1]
    assert lines[2:] == ["cat: can't open '/nullcopy': Permission denied", "null-ok"]


def a_block_device() -> str:
    """A block device of this host (any: the container only gets its node)."""
    for entry in sorted(os.scandir("/dev"), key=lambda e: e.name):
        if stat.S_ISBLK(entry.stat(follow_symlinks=False).st_mode):
            return entry.path
    pytest.skip("this host has no block device node in /dev")


@fallback_only
def test_inspect_and_exec_say_and_do_the_same(mt):
    disk = a_block_device()
    rdev = os.stat(disk).st_rdev
    mt.out("run", "-d", "--name", "unguarded", "--device", f"{disk}:/dev/disk0", "busybox",
           "sleep", "30")
    try:
        [info] = json.loads(mt.out("inspect", "unguarded"))
        control = info["State"]["DeviceControl"]
        assert control["Mechanism"] == "nodev"
        assert "CAP_MKNOD dropped" in control["Description"]
        host = info["HostConfig"]
        numbers = (os.major(rdev), os.minor(rdev))
        assert host["Devices"] == [{"PathInContainer": "/dev/disk0", "CgroupPermissions": "rwm",
                                    "Type": "b", "Major": numbers[0], "Minor": numbers[1]}]
        assert host["DeviceRules"][2] == "allow c 1:3 rwm /dev/null"
        assert host["DeviceRules"][-1] == f"allow b {numbers[0]}:{numbers[1]} rwm /dev/disk0"
        out = mt.out("exec", "unguarded", "sh", "-c", "grep CapBnd /proc/self/status; "
                                                     "echo hi > /dev/null && echo null-ok; "
                                                     "stat -c '%F %t:%T' /dev/disk0")
        bounding = int(out.split()[1], 16)
        assert bounding & MKNOD_BIT == 0 and bounding & (1 << caps.NUMBERS["CAP_CHOWN"])
        assert out.splitlines()[1:] == ["null-ok", f"block special file {numbers[0]:x}:{numbers[1]:x}"]
    finally:
        mt("rm", "-f", "unguarded")
    mt.out("run", "--name", "ended", "busybox", "true")
    try:
        [info] = json.loads(mt.out("inspect", "ended"))
        assert info["State"]["DeviceControl"]["Mechanism"] == "nodev"   # how it ran, kept
    finally:
        mt("rm", "-f", "ended")


@fallback_only
def test_privileged_needs_no_fallback(mt):
    out = mt.out("run", "--rm", "--privileged", "busybox", "sh", "-c",
                 "grep CapBnd /proc/self/status; grep ' / ' /proc/self/mountinfo")
    assert int(out.split()[1], 16) & MKNOD_BIT
    assert "nodev" not in out.splitlines()[1]


@fallback_only
def test_device_permissions_need_a_device_controller(mt):
    """--device /dev/x:r can only be held to r by a device controller: without
    one the run is refused, not started with more than was asked."""
    before = mount_table(), container_dirs(mt.root)
    result = mt("run", "--rm", "--device", "/dev/null:/dev/quiet:r", "busybox", "true")
    assert result.returncode == 40
    assert result.stderr.startswith("minict: --device /dev/quiet:r needs a device controller")
    assert len(result.stderr.splitlines()) == 1
    assert (mount_table(), container_dirs(mt.root)) == before      # nothing left behind
    assert mt.out("run", "--rm", "--device", "/dev/null:/dev/quiet", "busybox", "sh", "-c",
                  "ls -l /dev/quiet").startswith("crw-rw-rw-")
