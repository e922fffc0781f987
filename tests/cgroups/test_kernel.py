"""cgroup v2 against the real kernel: the VM tier (scripts/vm-test.sh) runs these.

Each test makes its own <root>/minict/test-<random> cgroup with the library,
puts a real busybox process in it the way `minict run` will (the process
waits on a pipe until it has been moved, so none of its work runs
unlimited), provokes the limit, and reads the kernel's counters. The fixture
removes every cgroup it made and checks that nothing is left.
"""

import errno
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from minicontainer.cgroups import hierarchy
from minicontainer.cgroups.hierarchy import (Cgroup, find_orphans,
                                             prepare_subtree, remove_orphans)
from minicontainer.cgroups.limits import ControlWrite, Limits, limits_from_cli
from minicontainer.cgroups.report import Target, stats_table, update_limits
from minicontainer.cgroups.stats import cpu_percent
from minicontainer.errors import BadArgument, CgroupUnavailable
from tests.cgroups.fakes import Narration
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.cgroup2, pytest.mark.root,
              pytest.mark.usefixtures("no_cgroup_left_behind")]

ROOT = Path("/sys/fs/cgroup")
BUSYBOX = "/bin/busybox"
REPO = Path(__file__).resolve().parents[2]


def new_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_cgroup():
    made: list[Cgroup] = []

    def make(limits: Limits = Limits(), explain=None) -> Cgroup:
        cg = Cgroup.create(new_id(), limits, ROOT, explain)
        made.append(cg)
        return cg

    yield make
    for cg in made:
        cg.destroy()
        assert not cg.path.exists(), f"{cg.path} left behind"


def start_in(cg: Cgroup, script: str, stderr=subprocess.PIPE) -> subprocess.Popen:
    """Start `busybox sh -c script` inside cg: it blocks on stdin until moved."""
    wait_end, go_end = os.pipe()  # the runtime's sync pipe, in miniature
    proc = subprocess.Popen([BUSYBOX, "sh", "-c", f"read go; {script}"], stdin=wait_end,
                            stdout=subprocess.PIPE, stderr=stderr)
    os.close(wait_end)
    cg.add_pid(proc.pid)
    os.write(go_end, b"go\n")
    os.close(go_end)
    return proc


def process_gone(pid: int) -> bool:
    """Exited: no /proc entry, or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_process_is_in_its_cgroup_before_it_runs(make_cgroup):
    cg = make_cgroup()
    out = start_in(cg, "cat /proc/self/cgroup").communicate(timeout=30)[0].decode()
    assert out == f"0::/minict/{cg.container_id}\n"


def test_cgroup_namespace_shows_the_container_its_own_cgroup_as_root(make_cgroup):
    # Join first, then unshare(CLONE_NEWCGROUP): the cgroup joined becomes "/".
    cg = make_cgroup()
    out = start_in(cg, "exec /usr/bin/unshare --cgroup cat /proc/self/cgroup").communicate(timeout=30)[0]
    assert out.decode() == "0::/\n"


def test_limits_land_in_the_kernel_with_narration(make_cgroup):
    said = Narration()
    cg = make_cgroup(limits_from_cli(memory="64m", memory_swap="96m", memory_reservation="16m",
                                     pids_limit="20", cpus="0.5", cpu_shares="512",
                                     cpuset_cpus="0"), said)
    read = lambda name: (cg.path / name).read_text().strip()
    assert read("memory.max") == str(64 << 20)
    assert read("memory.swap.max") == str(32 << 20)
    assert read("memory.low") == str(16 << 20)
    assert read("pids.max") == "20"
    assert read("cpu.max") == "50000 100000"
    assert read("cpu.weight") == "59"
    assert read("cpuset.cpus") == "0"
    assert f"Limit memory to 64 MiB: write '67108864' to {cg.path}/memory.max" in said.lines


def test_memory_hog_is_oom_killed_and_reported(make_cgroup):
    cg = make_cgroup(limits_from_cli(memory="32m", memory_swap="32m"))
    assert not cg.oom_killed()
    # The string doubles until it no longer fits: the OOM killer ends it.
    hog = start_in(cg, 'x=0123456789abcdef; while :; do x="$x$x"; done')
    hog.communicate(timeout=120)
    assert hog.returncode == -9, "SIGKILL by the OOM killer"
    assert cg.oom_killed()
    assert cg.oom_report().endswith("reached its memory limit of 32 MiB (memory.max)")
    events = cg.memory_events()
    assert events["oom_kill"] >= 1 and events["max"] >= 1
    assert cg.stats().memory_max == 32 << 20


def test_work_under_the_memory_limit_is_not_disturbed(make_cgroup):
    cg = make_cgroup(limits_from_cli(memory="64m", memory_swap="64m"))
    proc = start_in(cg, "x=$(head -c 8000000 /dev/zero | tr '\\0' x); echo ${#x}")
    out, _ = proc.communicate(timeout=120)
    assert (proc.returncode, out) == (0, b"8000000\n")
    assert not cg.oom_killed()


def test_fork_loop_is_stopped_by_pids_max(make_cgroup, tmp_path):
    cg = make_cgroup(limits_from_cli(pids_limit="16"))
    errors = tmp_path / "stderr"
    with open(errors, "wb") as err:
        loop = start_in(cg, "i=0; while [ $i -lt 200 ]; do sleep 120 & i=$((i+1)); done; wait",
                        stderr=err)
        loop.wait(timeout=120)
    assert loop.returncode != 0
    assert "can't fork" in errors.read_text()
    pids_now = cg.stats().pids_current
    assert 1 <= pids_now <= 16
    assert "max" in (cg.path / "pids.events").read_text().split()[0]
    assert int((cg.path / "pids.events").read_text().split()[1]) >= 1


def test_fork_bomb_is_contained_and_the_vm_stays_responsive(make_cgroup):
    cg = make_cgroup(limits_from_cli(pids_limit="32", cpus="1"))
    bomb = start_in(cg, "bomb() { bomb | bomb & }; bomb; sleep 600", stderr=subprocess.DEVNULL)
    time.sleep(3)
    assert cg.stats().pids_current <= 32
    started = time.monotonic()
    outside = subprocess.run([BUSYBOX, "echo", "still here"], capture_output=True, timeout=30)
    assert outside.stdout == b"still here\n"
    assert time.monotonic() - started < 10, "a process outside the bomb's cgroup still runs"
    cg.destroy()
    bomb.wait(timeout=30)
    assert not cg.path.exists()


def test_cpus_half_holds_a_busy_loop_near_half_a_cpu(make_cgroup):
    cg = make_cgroup(limits_from_cli(cpus="0.5"))
    spin = start_in(cg, "while :; do :; done")
    time.sleep(0.5)
    before = cg.stats()
    time.sleep(3)
    after = cg.stats()
    share = cpu_percent(before, after) / 100
    assert 0.35 <= share <= 0.65, f"used {share:.2f} CPUs under --cpus 0.5"
    assert after.cpu["nr_throttled"] > before.cpu.get("nr_throttled", 0)
    spin.kill()
    spin.wait()


def test_device_write_bps_throttles_direct_writes(make_cgroup, loop_device):
    cg = make_cgroup(limits_from_cli(device_write_bps=(f"{loop_device}:1m",)))
    st = os.stat(loop_device)
    device = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    io_max = (cg.path / "io.max").read_text()
    assert f"{device} rbps=max wbps=1048576" in io_max
    started = time.monotonic()
    dd = start_in(cg, f"exec dd if=/dev/zero of={loop_device} bs=64k count=48 oflag=direct")
    dd.communicate(timeout=120)
    took = time.monotonic() - started
    assert dd.returncode == 0
    assert took >= 1.5, f"3 MiB at 1 MiB/s took only {took:.2f} s"
    written = cg.stats().io.get(device, {}).get("wbytes", 0)
    assert written >= 3 << 20


def test_stats_are_right(make_cgroup):
    cg = make_cgroup(limits_from_cli(memory="64m", pids_limit="50"))
    proc = start_in(cg, "sleep 120 & sleep 120 & sleep 120 & wait")
    wait_for(lambda: cg.stats().pids_current == 4, 20, what="4 processes")
    sample = cg.stats()
    assert (sample.pids_current, sample.pids_max) == (4, 50)
    assert sample.memory_max == 64 << 20
    assert 0 < sample.memory_current < 64 << 20
    assert sample.cpu_usage_usec > 0
    container = Target(cg.container_id, "sleepers", running=True, cgroup_path=cg.path)
    table = stats_table([container], interval=0.5)
    row = table.splitlines()[1].split()
    assert row[:2] == [cg.container_id[:12], "sleepers"]
    assert "/ 64MiB" in table and row[-1] == "4"
    cg.destroy()
    proc.wait(timeout=30)


def test_update_changes_limits_of_a_running_container(make_cgroup):
    said = Narration()
    cg = make_cgroup(limits_from_cli(memory="64m", pids_limit="20"))
    proc = start_in(cg, "exec sleep 120")
    container = Target(cg.container_id, "web", running=True, cgroup_path=cg.path)
    assert update_limits([container], limits_from_cli(memory="128m", memory_swap="128m",
                                                      pids_limit="5", updating=True), said) == ["web"]
    assert (cg.path / "memory.max").read_text().strip() == str(128 << 20)
    assert (cg.path / "memory.swap.max").read_text().strip() == "0"
    assert (cg.path / "pids.max").read_text().strip() == "5"
    assert any("Allow at most 5 processes" in line for line in said.lines)
    proc.kill()
    proc.wait()


def test_destroy_kills_everything_and_leaves_nothing(make_cgroup):
    said = Narration()
    cg = make_cgroup(explain=said)
    proc = start_in(cg, "sleep 120 & sleep 120 & wait")
    wait_for(lambda: len(cg.pids()) == 3, 20, what="3 processes")
    pids = cg.pids()
    cg.destroy()
    assert proc.wait(timeout=30) == -9
    assert not cg.path.exists()
    wait_for(lambda: all(process_gone(p) for p in pids), 20, what="every process to die")
    assert f"write '1' to {cg.path}/cgroup.kill" in said.calls()
    assert said.calls()[-1] == f"rmdir {cg.path}"


def test_kill_without_cgroup_kill_freezes_then_kills_each(make_cgroup):
    # The path kernels before 5.14 take; run it here on purpose.
    cg = make_cgroup(limits_from_cli(pids_limit="30"))
    proc = start_in(cg, "while :; do sleep 120 & done", stderr=subprocess.DEVNULL)
    wait_for(lambda: len(cg.pids()) >= 10, 20, what="a few processes")
    cg._kill_each(timeout=20)
    assert cg.pids() == []
    assert (cg.path / "cgroup.freeze").read_text().strip() == "0"
    proc.wait(timeout=30)


def test_orphan_of_a_sigkilled_owner_is_found_and_removed():
    """A minict SIGKILLed mid-run leaves its workload in its cgroup; cleanup finds it."""
    orphan_id = new_id()
    owner_code = (
        "import subprocess, sys, time\n"
        "from minicontainer.cgroups.hierarchy import Cgroup\n"
        "from minicontainer.cgroups.limits import limits_from_cli\n"
        "cg = Cgroup.create(sys.argv[1], limits_from_cli(pids_limit='10'))\n"
        "p = subprocess.Popen(['/bin/busybox', 'sh', '-c', 'read go; exec sleep 600'],\n"
        "                     stdin=subprocess.PIPE)\n"
        "cg.add_pid(p.pid); p.stdin.write(b'go\\n'); p.stdin.close()\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", owner_code, orphan_id], stdout=subprocess.PIPE,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    workload = int(owner.stdout.readline())
    owner.kill()
    owner.wait()
    path = ROOT / "minict" / orphan_id
    assert path.is_dir() and not process_gone(workload), "the workload outlived its owner"

    def is_live(container_id):  # what the runtime's state records would answer
        return container_id != orphan_id

    said = Narration()
    assert find_orphans(is_live, ROOT) == [path]
    assert remove_orphans(is_live, ROOT, said) == [orphan_id]
    assert not path.exists()
    wait_for(lambda: process_gone(workload), 20, what="the orphaned workload to die")
    assert said.calls() == [f"write '1' to {path}/cgroup.kill", f"rmdir {path}"]


def test_a_limit_the_kernel_refuses_leaves_no_cgroup():
    # limits_from_cli would refuse weight 0; built by hand, it reaches the kernel (EINVAL).
    cid = new_id()
    try:
        with pytest.raises(BadArgument, match="the kernel refused '0' for cpu.weight"):
            Cgroup.create(cid, Limits(memory=64 << 20, cpu_weight=0), ROOT)
        assert not (ROOT / "minict" / cid).exists()
    finally:
        Cgroup(ROOT / "minict" / cid).destroy()


def test_missing_control_files_are_told_apart(make_cgroup):
    said = Narration()
    cg = make_cgroup(explain=said)
    cg._write_control(ControlWrite("memory.no_such_file", "1", "x", required=False))
    assert said.lines[-1] == ("Skipped memory.no_such_file: this kernel does not have it "
                              "(no swap accounting?)")
    with pytest.raises(CgroupUnavailable, match="memory.no_such_file does not exist"):
        cg._write_control(ControlWrite("memory.no_such_file", "1", "x"))


def test_no_internal_processes_rule_and_the_init_leaf():
    """A cgroup-namespace root holding processes: why prepare_subtree makes <root>/init."""
    hierarchy._enable_controllers(ROOT, {"memory", "pids"}, hierarchy._silent)
    ns_root = ROOT / new_id()
    ns_root.mkdir()
    sleeper = subprocess.Popen([BUSYBOX, "sleep", "120"])
    try:
        Cgroup(ns_root).add_pid(sleeper.pid)
        with pytest.raises(OSError) as refused:
            with open(ns_root / "cgroup.subtree_control", "w") as f:
                f.write("+memory")
        assert refused.value.errno == errno.EBUSY
        said = Narration()
        subtree = prepare_subtree(ns_root, {"memory", "pids"}, said)
        assert (ns_root / "init" / "cgroup.procs").read_text().split() == [str(sleeper.pid)]
        assert set((ns_root / "cgroup.subtree_control").read_text().split()) == {"memory", "pids"}
        assert set((subtree / "cgroup.subtree_control").read_text().split()) == {"memory", "pids"}
        assert f"write '{sleeper.pid}' to {ns_root}/init/cgroup.procs" in said.calls()
    finally:
        Cgroup(ns_root / "init").destroy()
        Cgroup(ns_root / "minict").destroy()
        ns_root.rmdir()
        sleeper.wait(timeout=30)
