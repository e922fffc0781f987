"""`minict run` with resource limits against a real cgroup v2 tree: the VM
tier (scripts/vm-test.sh) runs these. Each test drives the real `minict`
command, provokes the limit, and reads the kernel's own counters (from the
host side, /sys/fs/cgroup/minict/<id>, or from inside the container, which
sees its own cgroup read-only at /sys/fs/cgroup). A fixture checks that no
test leaves a cgroup behind.

Under the VM's emulated CPU every `minict` command costs seconds (Python's
start-up alone), so what is merely looked at or tidied up (inspect, rm,
waiting) goes through the runtime's Python API in this process, and the
command line is used where its own output is what is checked.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from minicontainer.cgroups.hierarchy import container_cgroups
from minicontainer.config import Config
from minicontainer.runtime import lifecycle, recovery
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.cgroup2, pytest.mark.root,
              pytest.mark.usefixtures("no_cgroup_left_behind")]

ROOT = Path("/sys/fs/cgroup")
OOM_LINE = ("minict: the kernel's OOM killer ended the container: it reached its memory limit "
            "of 32 MiB (memory.max)\n")
HOG = 'x=0123456789abcdef; while :; do x="$x$x"; done'   # doubles until it no longer fits


def config(mt) -> Config:
    return Config(root=mt.root, state=mt.state)


def inspect(mt, name) -> dict:
    """What `minict inspect NAME` prints (the same function), without a new Python."""
    return lifecycle.inspect(config(mt), name)


def remove(mt, name) -> None:
    """`minict rm -f NAME`, in this process; quiet if it is already gone."""
    from minicontainer.errors import ContainerNotFound
    try:
        lifecycle.remove(config(mt), name, force=True)
    except ContainerNotFound:
        pass


def exited(mt, container_id) -> bool:
    return (mt.root / "containers" / container_id / "exit.json").exists()


def read(cgroup: Path, filename: str) -> str:
    return (cgroup / filename).read_text().strip()


def flat_keyed(cgroup: Path, filename: str) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in read(cgroup, filename).splitlines())}


def populated(cgroup: Path) -> bool:
    return cgroup.exists() and flat_keyed(cgroup, "cgroup.events")["populated"] == 1


# ---- memory ---------------------------------------------------------------------------------------

def test_memory_hog_is_oom_killed_and_reported(mt):
    result = mt("run", "--name", "hog", "--memory", "32m", "busybox", "sh", "-c", HOG, timeout=180)
    try:
        assert result.returncode == 137                  # 128 + SIGKILL
        assert result.stderr == OOM_LINE                 # one line naming the limit
        info = inspect(mt, "hog")
        assert info["State"]["OOMKilled"] is True and info["State"]["ExitCode"] == 137
        assert info["HostConfig"]["Memory"] == 32 << 20
        assert not (ROOT / "minict" / info["Id"]).exists()
    finally:
        remove(mt, "hog")
    # Detached, the supervisor records it just the same.
    cid = mt.out("run", "-d", "--name", "hog-d", "--memory", "32m", "busybox", "sh", "-c",
                 HOG).strip()
    try:
        wait_for(lambda: exited(mt, cid), 180, "the OOM kill")
        state = inspect(mt, "hog-d")["State"]
        assert (state["OOMKilled"], state["ExitCode"]) == (True, 137)
    finally:
        remove(mt, "hog-d")
    # ...and a container that stays under its limit is not called OOM-killed.
    result = mt("run", "--rm", "--memory", "64m", "busybox", "sh", "-c",
                "x=$(head -c 4000000 /dev/zero | tr '\\0' x); echo ${#x}")
    assert (result.returncode, result.stdout, result.stderr) == (0, "4000000\n", "")


# ---- pids -----------------------------------------------------------------------------------------

def test_fork_bomb_is_stopped_by_pids_limit_and_the_vm_stays_responsive(mt):
    cid = mt.out("run", "-d", "--name", "bomb", "--pids-limit", "32", "--cpus", "1", "busybox",
                 "sh", "-c", "bomb() { bomb | bomb & }; bomb; sleep 600").strip()
    cgroup = ROOT / "minict" / cid
    try:
        assert read(cgroup, "pids.max") == "32"
        wait_for(lambda: flat_keyed(cgroup, "pids.events")["max"] > 0, 60, what="fork() to be refused")
        assert int(read(cgroup, "pids.current")) <= 32
        started = time.monotonic()
        outside = subprocess.run(["/bin/busybox", "echo", "still here"], capture_output=True,
                                 timeout=30)
        assert outside.stdout == b"still here\n"
        assert time.monotonic() - started < 10, "the rest of the machine still runs"
    finally:
        remove(mt, "bomb")
    assert not cgroup.exists()


# ---- cpu and stats --------------------------------------------------------------------------------

def test_cpus_half_holds_a_busy_loop_near_half_a_cpu_and_stats_show_it(mt):
    cid = mt.out("run", "-d", "--name", "spin", "--cpus", "0.5", "busybox", "sh", "-c",
                 "while :; do :; done").strip()
    cgroup = ROOT / "minict" / cid
    try:
        assert read(cgroup, "cpu.max") == "50000 100000"
        time.sleep(1)
        before, t0 = flat_keyed(cgroup, "cpu.stat"), time.monotonic()
        time.sleep(4)
        after, t1 = flat_keyed(cgroup, "cpu.stat"), time.monotonic()
        share = (after["usage_usec"] - before["usage_usec"]) / ((t1 - t0) * 1e6)
        assert 0.35 <= share <= 0.65, f"used {share:.2f} CPUs under --cpus 0.5"
        assert after["nr_throttled"] > before["nr_throttled"]
        row = mt.out("stats", "--no-stream", "spin").splitlines()[1].split()
        assert row[1] == "spin" and 30 <= float(row[2].rstrip("%")) <= 70, row
    finally:
        remove(mt, "spin")


def test_stats_exec_and_update_of_a_running_container(mt):
    cid = mt.out("run", "-d", "--name", "sleepers", "--memory", "64m", "--pids-limit", "50",
                 "busybox", "sh", "-c", "sleep 120 & sleep 120 & sleep 120 & wait").strip()
    cgroup = ROOT / "minict" / cid
    try:
        wait_for(lambda: read(cgroup, "pids.current") == "4", 60, what="4 processes")
        table = mt.out("stats", "--no-stream")        # every running container
        row = next(line for line in table.splitlines() if " sleepers " in line).split()
        assert row[0] == cid[:12] and row[-1] == "4"
        used, limit = row[3], row[5]
        assert limit == "64MiB" and used.endswith(("KiB", "MiB"))
        # exec joins the container's cgroup (it sees that cgroup as its root, and counts)
        out = mt.out("exec", "sleepers", "sh", "-c",
                     "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids.current")
        # (the v2 line: a "1:devices:/" line comes first where a cgroup v1 devices
        # hierarchy exists, as test_devices_vm.py's v1 test leaves one in the VM)
        *cgroups, pids = out.split()
        assert [line for line in cgroups if line.startswith("0::")] == ["0::/"]
        assert int(pids) in (5, 6)     # 4 + the exec'd sh (+ its cat, unless sh exec'd it)
        # update: the cgroup changes at once, and the record keeps it
        assert mt.out("update", "--memory", "128m", "--pids-limit", "10", "sleepers") == "sleepers\n"
        assert read(cgroup, "memory.max") == str(128 << 20) and read(cgroup, "pids.max") == "10"
        host = inspect(mt, "sleepers")["HostConfig"]
        assert (host["Memory"], host["PidsLimit"]) == (128 << 20, 10)
        lifecycle.stop(config(mt), "sleepers", timeout=1)   # `minict stop -t 1 sleepers`
        assert not cgroup.exists()                     # the owner removed it at the end
        mt.out("start", "sleepers")                    # a new cgroup, with the saved limits
        assert read(cgroup, "memory.max") == str(128 << 20) and read(cgroup, "pids.max") == "10"
    finally:
        remove(mt, "sleepers")
    assert not cgroup.exists()


# ---- what the container sees ----------------------------------------------------------------------

def test_container_sees_its_own_cgroup_read_only_at_sys_fs_cgroup(mt):
    out = mt.out("run", "--rm", "--memory", "64m", "busybox", "sh", "-c",
                 "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; "
                 "grep ' /sys/fs/cgroup ' /proc/self/mounts; "
                 "echo 1 > /sys/fs/cgroup/memory.max && echo WROTE; "
                 "mkdir /sys/fs/cgroup/escape && echo MADE; "
                 "echo PROCS $(cat /sys/fs/cgroup/cgroup.procs); ls /sys/fs/cgroup | grep -c minict; true")
    lines = [line for line in out.splitlines() if not line.startswith("1:devices:")]  # (v1, as above)
    assert lines[0] == "0::/"                          # itself at the root
    assert lines[1] == str(64 << 20)
    source, point, fstype, options = lines[2].split()[:4]
    assert (source, point, fstype) == ("cgroup2", "/sys/fs/cgroup", "cgroup2")
    assert options.split(",")[0] == "ro"
    assert "WROTE" not in out and "MADE" not in out
    procs = lines[-2].split()[1:]
    assert procs and all(int(p) < 10 for p in procs)   # only its own processes, by its own pids
    assert lines[-1] == "0"                            # none of the host's tree above it


# ---- io -------------------------------------------------------------------------------------------

def test_device_write_bps_throttles_direct_writes(mt, loop_device):
    st = os.stat(loop_device)
    device = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    result = mt("run", "--name", "dd", "--device-write-bps", f"{loop_device}:1m",
                "--device", f"{loop_device}:/dev/scratch", "busybox", "sh", "-c",
                "cat /sys/fs/cgroup/io.max; cut -d' ' -f1 /proc/uptime; "
                "dd if=/dev/zero of=/dev/scratch bs=64k count=48 oflag=direct 2>/dev/null; "
                "cut -d' ' -f1 /proc/uptime; cat /sys/fs/cgroup/io.stat", timeout=180)
    try:
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"{device} rbps=max wbps=1048576")
        took = float(lines[2]) - float(lines[1])
        assert took >= 1.5, f"3 MiB at 1 MiB/s took only {took:.2f} s"
        written = next(l for l in lines[3:] if l.startswith(device + " "))
        assert int(written.split("wbytes=")[1].split()[0]) >= 3 << 20
        host = inspect(mt, "dd")["HostConfig"]
        assert host["BlkioDeviceWriteBps"] == [{"Path": loop_device, "Rate": 1 << 20}]
    finally:
        remove(mt, "dd")


# ---- crashes -------------------------------------------------------------------------------------

def test_a_sigkilled_minict_leaves_no_cgroup_after_cleanup(fresh_mt):
    mt = fresh_mt
    # 1. the foreground minict, killed while its container runs
    before = set(container_cgroups(ROOT))
    foreground = mt.popen("run", "--name", "fg", "--memory", "64m", "busybox", "sleep", "60")
    wait_for(lambda: any(populated(p) for p in set(container_cgroups(ROOT)) - before),
             60, what="the container to start")
    fg_cgroup, = set(container_cgroups(ROOT)) - before
    foreground.send_signal(signal.SIGKILL)
    foreground.wait()
    wait_for(lambda: not populated(fg_cgroup), 60, what="the container to die with its owner")
    # 2. the supervisor of a detached container
    cid = mt.out("run", "-d", "--name", "bg", "--memory", "64m", "busybox", "sleep", "60").strip()
    bg_cgroup = ROOT / "minict" / cid
    runtime = json.loads((mt.state / "containers" / f"{cid}.json").read_text())
    os.kill(runtime["owner_pid"], signal.SIGKILL)
    wait_for(lambda: not populated(bg_cgroup), 60, what="the container to die with its supervisor")
    # 3. a cgroup whose container record is gone altogether (its root was deleted)
    stray = ROOT / "minict" / ("e" * 64)
    stray.mkdir()
    assert fg_cgroup.exists() and bg_cgroup.exists(), "nobody removed them yet"
    out = mt.out("cleanup")
    assert "removed the cgroup of fg" in out and "removed the cgroup of bg" in out
    assert f"removed the orphaned cgroup of container {'e' * 12}" in out
    assert not fg_cgroup.exists() and not bg_cgroup.exists() and not stray.exists()
    assert not any("cgroup" in line for line in recovery.recover(config(mt)))   # all done
    for name in ("fg", "bg"):
        remove(mt, name)
