"""The device controller in a real kernel: the VM tier (scripts/vm-test.sh),
where every container gets a cgroup v2 cgroup and an eBPF device program.

The first test is the escape the issue reported, step for step: a loop
device holding HOSTSECRET, a default container that makes a node for it
with mknod, reads it and writes over it. Each test checks from inside
(what the container's commands print) and from the host (what is on the
device, what the kernel holds attached to the cgroup).

As in test_cgroups_vm.py, what is only looked at or tidied (inspect, rm)
goes through the runtime's Python API: every `minict` start costs seconds
under the VM's emulated CPU.
"""

import os
import subprocess
from pathlib import Path

import pytest

from minicontainer import syscalls as sc
from minicontainer.cgroups.device_program import assemble
from minicontainer.cgroups.devices import DeviceRule
from minicontainer.cgroups.hierarchy import container_cgroups
from minicontainer.config import Config
from minicontainer.errors import ContainerNotFound
from minicontainer.runtime import lifecycle
from minicontainer.runtime.request import RunRequest
from minicontainer.runtime.run import run_image
from tests.helpers.images import Entry, ImageBuilder, tar_from_dir, tar_of
from tests.helpers.waiting import wait_for
from tests.runtime.conftest import MINICT, Minict

pytestmark = [pytest.mark.cgroup2, pytest.mark.root, pytest.mark.usefixtures("no_cgroup_left_behind")]

SECRET = b"HOSTSECRET"
DENIED = "Operation not permitted"


@pytest.fixture
def disk(loop_device) -> str:
    """A host block device (a loop device) whose first bytes are HOSTSECRET."""
    with open(loop_device, "r+b") as f:
        f.write(SECRET)
    return loop_device


def numbers(device: str) -> tuple[int, int]:
    rdev = os.stat(device).st_rdev
    return os.major(rdev), os.minor(rdev)


def head(device: str, count: int = 12) -> bytes:
    with open(device, "rb") as f:
        return f.read(count)


def escape(device: str) -> str:
    """The issue's reproduction: make a node for the host's device, read it, write it."""
    major, minor = numbers(device)
    return (f"mknod /tmp/d b {major} {minor} && echo made; head -c 10 /tmp/d 2>&1; echo; "
            "echo INSIDE-WRITE | dd of=/tmp/d conv=notrunc 2>&1; true")


def config(mt) -> Config:
    return Config(root=mt.root, state=mt.state)


def remove(mt, name) -> None:
    try:
        lifecycle.remove(config(mt), name, force=True)
    except ContainerNotFound:
        pass


def device_program_ids() -> set[int]:
    ids = set()
    for i in sc.bpf_program_ids():
        try:
            if sc.bpf_program_info(i)[0] == sc.BPF_PROG_TYPE_CGROUP_DEVICE:
                ids.add(i)
        except FileNotFoundError:   # freed between the listing and the look-up
            pass
    return ids


# ---- the escape ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [[], ["--cap-add", "MKNOD"]], ids=["default", "cap-add-mknod"])
def test_a_container_cannot_open_a_host_block_device(mt, disk, flags):
    out = mt.out("run", "--rm", *flags, "busybox", "sh", "-c", escape(disk))
    lines = out.splitlines()
    assert lines[0] == "made"                          # making the node is allowed (runc's "m")
    assert lines[1] == f"head: /tmp/d: {DENIED}"       # opening it is not
    assert lines[3] == f"dd: can't open '/tmp/d': {DENIED}"
    assert SECRET not in out.encode()
    assert head(disk) == SECRET + b"\0\0"               # the host's device is untouched


@pytest.mark.parametrize("flags", [["--privileged"], ["--device", "DISK"]],
                         ids=["privileged", "device"])
def test_privileged_and_device_reach_the_disk(mt, disk, flags):
    flags = [disk if flag == "DISK" else flag for flag in flags]
    out = mt.out("run", "--rm", *flags, "busybox", "sh", "-c", escape(disk))
    assert out.splitlines()[1] == SECRET.decode()
    assert head(disk) == b"INSIDE-WRITE"


def test_a_device_given_for_reading_cannot_be_written(mt, disk):
    out = mt.out("run", "--rm", "--device", f"{disk}:/dev/disk0:r", "busybox", "sh", "-c",
                 "head -c 10 /dev/disk0; echo; echo x | dd of=/dev/disk0 2>&1; true")
    assert out.splitlines() == [SECRET.decode(), f"dd: can't open '/dev/disk0': {DENIED}"]
    assert head(disk) == SECRET + b"\0\0"


def test_a_block_device_shipped_in_a_layer_cannot_be_opened(tmp_path, busybox_rootfs, disk):
    m = Minict(tmp_path / "root", tmp_path / "state")
    major, minor = numbers(disk)
    image = ImageBuilder()
    image.add_layer(tar_from_dir(busybox_rootfs), compression=None)
    image.add_layer(tar_of([Entry.blockdev("blk", major, minor)]), compression=None)
    m.out("load", "-i", image.write_oci_archive(tmp_path / "blk.tar", ref_name="blk:latest"))
    out = m.out("run", "--rm", "blk", "sh", "-c", "ls -l /blk; head -c 10 /blk 2>&1; true")
    lines = out.splitlines()
    assert lines[0].startswith("brw") and f" {major},   {minor} " in lines[0]
    assert lines[1] == f"head: /blk: {DENIED}"


# ---- GPU nodes of a plan ---------------------------------------------------------------------------------

@pytest.fixture
def gpu_host(tmp_path):
    """hpcshim's fake driver tree, at a short path (its persistenced socket's
    name must fit in a unix socket address)."""
    import shutil
    import tempfile
    from tests.hpcshim.drivertree import LibraryStore, build_driver_tree
    short = Path(tempfile.mkdtemp(prefix="gpu-"))
    try:
        yield build_driver_tree(short / "host", LibraryStore(tmp_path / "libs")).root
    finally:
        shutil.rmtree(short)


def test_gpu_nodes_of_the_plan_still_open(mt, tmp_path, gpu_host):
    env = {"HPCSHIM_HOST_ROOT": str(gpu_host), "HPCSHIM_CACHE_DIR": str(tmp_path / "cache"),
           "CUDA_VISIBLE_DEVICES": "1"}
    for name in ("NVIDIA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_JOB_ID"):
        mt.env.pop(name, None)
    out = mt.out("run", "--rm", "--gpu", "busybox", "sh", "-c",
                 "cat /dev/nvidia1 2>&1; cat /dev/nvidiactl 2>&1; "
                 "mknod /tmp/gpu0 c 195 0 && cat /tmp/gpu0 2>&1; true", env=env)
    # No NVIDIA driver in the VM: an allowed open reaches the kernel's
    # character-device lookup and fails there (ENXIO); a refused one stops at EPERM.
    assert out.splitlines() == ["cat: can't open '/dev/nvidia1': No such device or address",
                                "cat: can't open '/dev/nvidiactl': No such device or address",
                                f"cat: can't open '/tmp/gpu0': {DENIED}"]   # a GPU not selected


# ---- what --explain says is what the kernel holds --------------------------------------------------------

def rules_from_explain(text: str) -> list[DeviceRule]:
    rules = []
    for line in text.splitlines():
        line = line.replace("[explain] engine: ", "[explain] ", 1)   # the engine chooses them
        if line.startswith("[explain] Device rule: allow "):
            kind, pair, access, what = line.split(": ", 1)[1].split(" ", 4)[1:]
            major, minor = (None if n == "*" else int(n) for n in pair.split(":"))
            rules.append(DeviceRule(kind, major, minor, access, what))
    return rules


def test_the_rules_explain_shows_are_the_program_attached(mt, disk):
    result = mt("--explain", "run", "-d", "--name", "shown", "--device", f"{disk}:/dev/disk0:rw",
                "busybox", "sleep", "60")
    assert result.returncode == 0, result.stderr
    try:
        rules = rules_from_explain(result.stderr)
        assert len(rules) == 12 and rules[-1].what == "/dev/disk0" and rules[-1].access == "rw"
        info = lifecycle.inspect(config(mt), "shown")
        control = info["State"]["DeviceControl"]
        assert control["Mechanism"] == "ebpf"
        [program_id] = control["ProgramIds"]
        assert sc.bpf_program_info(program_id) == (sc.BPF_PROG_TYPE_CGROUP_DEVICE, assemble(rules))
        cgroup = Path("/sys/fs/cgroup/minict") / info["Id"]
        assert sc.cgroup_device_programs(cgroup) == [program_id]
    finally:
        remove(mt, "shown")
    # the program goes with the cgroup (released by the kernel in its own time)
    wait_for(lambda: program_id not in sc.bpf_program_ids(), 30, "the device program to be freed")


def test_fifty_runs_leave_no_program_and_no_cgroup(mt):
    before = device_program_ids()
    for _ in range(50):
        assert run_image(config(mt), RunRequest(image="busybox", command=("true",),
                                                auto_remove=True, network="none"))[0] == 0
    assert container_cgroups(Path("/sys/fs/cgroup")) == []
    wait_for(lambda: device_program_ids() <= before, 60, "every device program to be freed")


# ---- cgroup v1, for real ---------------------------------------------------------------------------------------

V1_SCRIPT = """
set -u
# This mount namespace only: hide the v2 tree (so no container gets a v2
# cgroup) and mount a cgroup v1 devices hierarchy for minict to use.
mount -t tmpfs none /sys/fs/cgroup && mkdir /sys/fs/cgroup/devices &&
    mount -t cgroup -o devices none /sys/fs/cgroup/devices || exit 99
minict run --rm busybox sh -c "$ESCAPE"
minict run --rm --device "$DISK:/dev/disk0:r" busybox sh -c \
    'head -c 10 /dev/disk0; echo; echo x | dd of=/dev/disk0 2>&1; grep CapBnd /proc/self/status'
echo "left: $(find /sys/fs/cgroup/devices/minict -mindepth 1 -type d)"
rmdir /sys/fs/cgroup/devices/minict
"""


def test_a_cgroup_v1_devices_hierarchy_holds_the_same_rules(mt, disk):
    env = dict(mt.env, MINICT_CGROUP_V1_DEVICES="/sys/fs/cgroup/devices", ESCAPE=escape(disk),
               DISK=disk, PATH=f"{Path(MINICT).parent}:{mt.env['PATH']}")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", V1_SCRIPT],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["made", f"head: /tmp/d: {DENIED}", "",
                         f"dd: can't open '/tmp/d': {DENIED}"]
    assert lines[4:6] == [SECRET.decode(), f"dd: can't open '/dev/disk0': {DENIED}"]
    assert int(lines[6].split()[1], 16) & (1 << 27)       # CAP_MKNOD kept: the controller guards
    assert lines[7] == "left: "                            # each container's v1 cgroup removed
    assert head(disk) == SECRET + b"\0\0"
