"""The build-your-own track, levels 4-7: `check.sh N` passes every reference
solution and fails every untouched skeleton with the hint that says what to
do next; nothing is left behind (conftest.run_check: mounts, temp dirs,
processes; here also the level's cgroup, veth and the checks' own cgroup).

Level 5 needs cgroup v2 with the memory and pids controllers: it runs in the
VM tier (scripts/vm-test.sh -m "cgroup2 or vmtier" tests/build_your_own/test_levels_4_7.py);
on a cgroup v1 host it skips, and its check refuses in one line.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _cgroup2_usable

from .conftest import TRACK

pytestmark = [pytest.mark.root, pytest.mark.slow]


def assert_all_ok(run, level: int, whats: list[str]) -> None:
    assert run.code == 0, run.out
    assert f"level {level}: all checks passed" in run.out
    checks = run.lines("check:")
    for what in whats:
        assert any(line.startswith(f"check: {what}") and line.endswith(": ok") for line in checks), \
            (what, run.out)


def links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True,
                         text=True).stdout
    return sorted(line.split(": ")[1].split("@")[0] for line in out.splitlines())


# ---- level 4: /proc, /dev, masked paths ---------------------------------------------------------

def test_level4_solution_passes(run_check):
    run = run_check(4, "solutions/level4.py")
    assert_all_ok(run, 4, [
        "PID 1 inside is the command (/proc/1/status)", "ps inside lists the command as PID 1",
        "/proc lists only the container's processes",
        "/dev holds exactly the six default devices (major:minor)",
        "/dev/pts is a devpts of its own", "/dev/shm is a tmpfs",
        "/proc/timer_list reads as empty (masked)", "/sys/firmware is an empty tmpfs (masked)",
        "the image directory is unchanged",
        "the host's mounts (under the check's dir) are unchanged",
        "the level's scratch directory is removed"])


def test_level4_skeleton_fails_with_a_hint(run_check):
    run = run_check(4)
    assert run.code == 1, run.out
    assert run.hint_after("PID 1 inside is the command") == (
        "hint: mount a fresh proc at /proc after pivot_root (TODO level 4 (1), mount_proc_and_sys)")
    assert run.hint_after("/dev holds exactly the six default devices") == (
        "hint: mount a tmpfs on /dev, then kernel.mknod each of DEVICES (TODO level 4 (2), make_dev)")
    assert run.hint_after("/proc/timer_list reads as empty (masked)").endswith(
        "then bind /dev/null over /proc/timer_list (TODO level 4 (3), mask_paths)")
    # the TODO steps are left out, not broken: the rest of the container is fine
    for what in ("the level runs the command and exits with its status",
                 "the image directory is unchanged",
                 "the host's mounts (under the check's dir) are unchanged"):
        assert f"check: {what}: ok" in run.out, run.out


# ---- level 5: cgroup v2 limits (the VM tier) ----------------------------------------------------

def no_check_cgroup(run) -> None:
    assert not Path(f"/sys/fs/cgroup/byo-{run.tag}-level5").exists(), run.out


@pytest.mark.cgroup2
def test_level5_solution_passes(run_check, no_cgroup_left_behind):
    run = run_check(5, "solutions/level5.py")
    assert_all_ok(run, 5, [
        "the container runs in a cgroup of its own",
        "a memory hog (dd bs=128M) is killed under the 32 MiB limit",
        "memory.events: the OOM killer acted", "the level's cgroup is removed after the container ends",
        "a fork bomb hits pids.max (fork fails)", "the level's cgroup is removed after the fork bomb too",
        "the image directory is unchanged"])
    no_check_cgroup(run)


@pytest.mark.cgroup2
def test_level5_skeleton_fails_with_a_hint(run_check, no_cgroup_left_behind):
    run = run_check(5)
    assert run.code == 1, run.out
    assert run.hint_after("the container runs in a cgroup of its own").startswith(
        "hint: mkdir a cgroup under BYO_CGROUP_PARENT (TODO level 5 (1))")
    assert run.hint_after("a memory hog (dd bs=128M) is killed under the 32 MiB limit").startswith(
        "hint: write memory.max (MEMORY_MAX) and memory.swap.max 0")
    assert run.hint_after("a fork bomb hits pids.max (fork fails)").startswith(
        "hint: write pids.max (PIDS_MAX)")
    assert "check: the level's cgroup is removed after the container ends: ok" in run.out
    no_check_cgroup(run)


@pytest.mark.skipif(_cgroup2_usable() is None, reason="this machine has cgroup v2: level 5 runs")
def test_level5_check_refuses_without_cgroup_v2(run_check):
    run = run_check(5, "solutions/level5.py")
    assert run.code == 2, run.out
    assert run.out.strip().splitlines()[-1] == (
        "check.sh: level 5 needs cgroup v2 with the memory and pids controllers at /sys/fs/cgroup, "
        "and this machine has none (cgroup v1 holds them): run it in the VM (vagrant up; vagrant ssh)")


# ---- level 6: capabilities, no_new_privs, seccomp -----------------------------------------------

def test_level6_solution_passes(run_check):
    run = run_check(6, "solutions/level6.py")
    assert_all_ok(run, 6, [
        "the container still works (ls /)", "CapBnd inside is Docker's default set",
        "CapEff inside is Docker's default set", "NoNewPrivs inside is 1",
        "unshare(CLONE_NEWUSER) is refused with EPERM (seccomp)",
        "a setuid-root program run as a user gains no root", "the image directory is unchanged"])


def test_level6_skeleton_fails_with_a_hint(run_check):
    run = run_check(6)
    assert run.code == 1, run.out
    assert run.hint_after("CapBnd inside is Docker's default set") == (
        "hint: drop every capability not in KEEP from the bounding set: kernel.drop_bounding_cap "
        "(TODO level 6 (1))")
    assert run.hint_after("NoNewPrivs inside is 1") == (
        "hint: kernel.set_no_new_privs(why) before execve (TODO level 6 (2))")
    assert run.hint_after("unshare(CLONE_NEWUSER) is refused with EPERM (seccomp)").startswith(
        "hint: it needs no capability: only the filter can stop it")
    # without no_new_privs the setuid-root program does gain root: the check can tell
    assert "FAILED (expected 'uid=1000 euid=1000', got 'uid=1000 euid=0')" in run.out
    assert "level 6: 5 checks failed" in run.out


# ---- level 7: a veth pair -----------------------------------------------------------------------

def test_level7_solution_passes(run_check):
    before = links()
    run = run_check(7, "solutions/level7.py")
    assert_all_ok(run, 7, [
        "the container's links are lo and eth0", "eth0 has the container's address",
        "the default route goes through the host's end", "ping from inside reaches the host's end",
        "no veth is left after the container ends", "the image directory is unchanged"])
    assert links() == before   # the check's veth was in a network namespace of its own


def test_level7_skeleton_fails_with_a_hint(run_check):
    before = links()
    run = run_check(7)
    assert run.code == 1, run.out
    assert run.hint_after("the container has a network namespace of its own") == (
        "hint: add sc.CLONE_NEWNET to NAMESPACES, the child's unshare (TODO level 7 (1))")
    assert "TODO level 7 (3)" in run.hint_after("eth0 has the container's address")
    assert "level 7: 4 checks failed" in run.out
    assert links() == before


# ---- the levels' own argument errors: one line, exit 2 ------------------------------------------

@pytest.mark.parametrize("level", [4, 5, 6, 7])
def test_level_bad_arguments(level, tmp_path):
    solution = TRACK / f"solutions/level{level}.py"
    python = sys.executable
    usage = subprocess.run([python, str(solution)], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2
    assert usage.stderr.strip() == f"usage: level{level}.py IMAGE_DIR CMD [ARG...]"
    missing = subprocess.run([python, str(solution), str(tmp_path / "nothing"), "sh"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith(f"no such image directory: {tmp_path / 'nothing'}")
    assert missing.stderr.count("\n") == 1
