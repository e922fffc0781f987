"""Resource flags of `minict run` on a host WITHOUT usable cgroup v2 (the
build machines): bad values and unenforceable limits are refused before
anything exists, a run without limits still works and says no cgroup was
made. Nothing here writes to /sys/fs/cgroup. (The VM tier, test_cgroups_vm.py,
runs the same flags against a real cgroup v2 tree.)"""

import json
import subprocess
import sys

import pytest

from tests.conftest import _cgroup2_usable
from tests.runtime.conftest import container_dirs, mount_table, tree

pytestmark = pytest.mark.root

NO_CGROUP_V2 = _cgroup2_usable()
needs_a_host_without_cgroup_v2 = pytest.mark.skipif(
    NO_CGROUP_V2 is None, reason="this host has cgroup v2: limits are enforced, not refused")


def nothing_created(mt, mounts_before) -> None:
    assert container_dirs(mt.root) == []
    assert tree(mt.state / "containers") == []
    assert mount_table() == mounts_before


def via_click(mt, *args) -> subprocess.CompletedProcess:
    """The same command through the full click CLI instead of entry's fast path."""
    code = "import sys; from minicontainer.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=mt.env, timeout=60)


@pytest.mark.parametrize("flags, words", [
    (["--memory", "12q"], "invalid --memory '12q': not a size"),
    (["-m", "1m"], "--memory 1m is below the minimum of 6 MiB"),
    (["--memory-swap", "64m"], "--memory-swap needs --memory"),
    (["-m", "64m", "--memory-swap", "32m"], "--memory-swap 32m is smaller than --memory 64m"),
    (["--memory-reservation", "lots"], "invalid --memory-reservation 'lots'"),
    (["--pids-limit", "-7"], "invalid --pids-limit -7: negative"),
    (["--cpus", "lots"], "invalid --cpus 'lots': not a number"),
    (["--cpus", "4096"], "is more than the"),
    (["-c", "1"], "--cpu-shares 1 is outside 2..262144"),
    (["--cpu-shares", "512", "--cpu-weight", "5"], "--cpu-shares and --cpu-weight both"),
    (["--cpuset-cpus", "3-1"], "range 3-1 runs backwards"),
    (["--device-write-bps", "/nonexistent-minict:1m"], "no such device /nonexistent-minict"),
    (["--device-read-bps", "/dev/null:1m"], "/dev/null is not a block device"),
])
def test_bad_limits_are_refused_before_anything_exists(fresh_mt, flags, words):
    mt = fresh_mt
    mounts = mount_table()
    for run in (mt, lambda *a: via_click(mt, *a)):
        result = run("run", "--rm", *flags, "busybox", "true")
        assert result.returncode == 27, result.stderr
        assert result.stderr.startswith("minict: ") and words in result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""
        nothing_created(mt, mounts)


@needs_a_host_without_cgroup_v2
@pytest.mark.parametrize("flags, controller", [
    (["--memory", "64m"], "memory"),
    (["--pids-limit", "20", "-d"], "pids"),
    (["--cpus", "0.5", "-it"], "cpu"),
    (["--cpuset-cpus", "0"], "cpuset"),
])
def test_limits_this_host_cannot_enforce_are_refused_with_cause_and_fix(fresh_mt, flags,
                                                                        controller):
    mt = fresh_mt
    mounts = mount_table()
    result = mt("run", "--name", "limited", *flags, "busybox", "true")
    assert result.returncode == 40, result.stderr
    assert result.stderr.startswith(f"minict: {controller} controller is bound to a cgroup v1 "
                                    "hierarchy")
    assert "systemd.unified_cgroup_hierarchy=1" in result.stderr and "Vagrant" in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    nothing_created(mt, mounts)
    assert mt.out("ps", "-a", "-q") == ""


def test_no_limit_still_runs_and_explain_says_no_cgroup_was_made(mt):
    # --memory 0 is docker's "no limit": the same as giving none
    for flags in ([], ["--memory", "0"]):
        result = mt("--explain", "run", "--rm", *flags, "busybox", "cat", "/proc/self/cgroup")
        assert result.returncode == 0, result.stderr
        if NO_CGROUP_V2:
            assert "No cgroup was made (no limits asked, and no cgroup v2 hierarchy at " \
                   "/sys/fs/cgroup" in result.stderr
            assert "/minict/" not in result.stdout     # still in minict's own cgroup
            assert 'mount("cgroup2"' not in result.stderr


def test_inspect_shows_no_limits_and_no_oom(mt):
    mt.out("run", "--name", "plain", "busybox", "true")
    try:
        info = json.loads(mt.out("inspect", "plain"))[0]
        assert info["State"]["OOMKilled"] is False
        host = info["HostConfig"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == \
            (0, 0, 0, None)
        assert host["BlkioDeviceWriteBps"] == []
    finally:
        mt.out("rm", "plain")


def test_update_of_a_container_without_a_cgroup_is_refused(mt):
    mt.out("run", "-d", "--name", "nocg", "busybox", "sleep", "30")
    try:
        result = mt("update", "--memory", "64m", "nocg")
        if NO_CGROUP_V2:
            assert result.returncode == 32
            assert result.stderr.startswith("minict: container nocg has no cgroup")
            info = json.loads(mt.out("inspect", "nocg"))[0]
            assert info["HostConfig"]["Memory"] == 0      # nothing was saved either
    finally:
        mt("rm", "-f", "nocg")
