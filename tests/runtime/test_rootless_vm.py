"""Limits without root, against the real kernel: the VM tier (scripts/vm-test.sh).

Each test plays systemd's part as root: it makes a cgroup for `nobody`
(65534) under /sys/fs/cgroup and hands it over the way Delegate=yes does
(chown of the directory and of cgroup.procs, cgroup.subtree_control and
cgroup.threads; the parent enables the controllers). Then a root shell
moves itself into that cgroup and execs, through setpriv, `minict` as
nobody: moving a process needs write access to the cgroup.procs of the
common ancestor of where it is and where it goes (cgroup-v2.rst,
"Delegation Containment"), here the top, which only root has. That is
why systemd, not the user, puts the user's first process there.

What minict does there is cgroups/delegated.py's: the container's cgroup
is <delegated>/minict/<id>, after minict moved itself into <delegated>/init.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.helpers.images import busybox_image
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.cgroup2, pytest.mark.root]

NOBODY = 65534
MINICT = str(Path(sys.executable).parent / "minict")
ROOT = Path("/sys/fs/cgroup")
DELEGATED_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")
# busybox sh: a job that cannot fork ends the loop; `read` is a builtin, so
# the limit does not stop the shell from reporting how often fork failed.
FORK_LOOP = ("(i=0; while [ $i -lt 40 ]; do sleep 60 & i=$((i+1)); done) 2>/dev/null; "
             "read key count < /sys/fs/cgroup/pids.events; echo \"$key $count\"")


def nobody_in(cgroup: Path, env: dict, *args, command=(MINICT,)) -> list[str]:
    """The command line that runs `minict ARGS` (or `command ARGS`) as
    nobody inside `cgroup`."""
    as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 "env", "-i", *[f"{k}={v}" for k, v in env.items()], *command, *map(str, args)]
    return ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *as_nobody]


def run_in(cgroup: Path, env: dict, *args, command=(MINICT,),
           timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(nobody_in(cgroup, env, *args, command=command), capture_output=True,
                          text=True, timeout=timeout, check=False)


def child_cgroups(cgroup: Path) -> list[str]:
    return sorted(p.name for p in cgroup.iterdir() if p.is_dir()) if cgroup.is_dir() else []


# ---- playing systemd ----------------------------------------------------------------------

def make_cgroup(parent: Path, controllers: str) -> Path:
    """A new cgroup under `parent`, whose children may use `controllers`."""
    (parent / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in controllers.split()))
    path = parent / f"rootless-test-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def delegate(cgroup: Path) -> Path:
    """Hand `cgroup` to nobody, as systemd's Delegate=yes does."""
    for path in (cgroup, *(cgroup / name for name in DELEGATED_FILES)):
        os.chown(path, NOBODY, NOBODY)
    return cgroup


def remove_tree(cgroup: Path) -> None:
    """Kill whatever is left in `cgroup` and below, then remove it all (root's cleanup)."""
    if not cgroup.is_dir():
        return
    (cgroup / "cgroup.kill").write_text("1")
    wait_for(lambda: "populated 0" in (cgroup / "cgroup.events").read_text(), 30,
             what=f"{cgroup} to empty")
    for directory, _, _ in sorted(os.walk(cgroup), key=lambda entry: -len(entry[0])):
        Path(directory).rmdir()


@pytest.fixture
def cgroups():
    """Cgroups a test makes: removed afterwards, with anything left in them."""
    made = []
    yield made
    for cgroup in reversed(made):
        remove_tree(cgroup)


@pytest.fixture(scope="module")
def userland(busybox_rootfs):
    """nobody's store (busybox:latest, loaded as nobody) and state dir."""
    base = Path(tempfile.mkdtemp(prefix="minict-rootless-vm-"))
    base.chmod(0o755)
    archive = busybox_image(busybox_rootfs).write_docker_archive(base / "busybox.tar",
                                                                  ["busybox:latest"])
    env = {"PATH": os.environ["PATH"], "HOME": str(base), "MINICT_ROOT": str(base / "root"),
           "MINICT_STATE": str(base / "state")}
    for path in (base, archive):
        os.chown(path, NOBODY, NOBODY)
    loaded = run_in(ROOT, env, "load", "-i", archive)
    assert loaded.returncode == 0, loaded.stderr
    yield env
    shutil.rmtree(base, ignore_errors=True)


# ---- a delegated cgroup -------------------------------------------------------------------

def test_limits_hold_in_a_delegated_cgroup_and_its_cgroup_goes_afterwards(userland, cgroups):
    cgroups.append(delegate(make_cgroup(ROOT, "memory pids")))
    delegated = cgroups[-1]
    result = run_in(delegated, userland, "run", "--rm", "--network", "none", "--memory", "64m",
                    "--pids-limit", "20", "busybox", "sh", "-c",
                    # (only the v2 line: a cgroup v1 hierarchy another test of the
                    # VM tier mounted is listed there too, for every process)
                    "grep ^0:: /proc/self/cgroup; cat /sys/fs/cgroup/memory.max "
                    "/sys/fs/cgroup/pids.max; "
                    + FORK_LOOP)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 4, result.stdout
    seen_as, memory_max, pids_max, events = result.stdout.splitlines()
    assert (seen_as, memory_max, pids_max) == ("0::/", str(64 << 20), "20")
    key, refused = events.split()
    assert key == "max" and int(refused) > 0, "fork() was refused at the pids limit"
    # minict moved itself into the leaf init/ and made its subtree; the
    # container's cgroup is gone, and no process is left.
    assert child_cgroups(delegated) == ["init", "minict"]
    assert child_cgroups(delegated / "minict") == []
    assert (delegated / "init" / "cgroup.procs").read_text() == ""


def test_a_second_run_from_the_same_shell_uses_the_same_delegated_cgroup(userland, cgroups):
    """The first run moves the shell that started it into init/ with
    itself; the second starts there and takes init's parent (--explain)."""
    cgroups.append(delegate(make_cgroup(ROOT, "memory pids")))
    delegated = cgroups[-1]
    run = "run --rm --network none --pids-limit 5 busybox cat /sys/fs/cgroup/pids.max"
    result = run_in(delegated, userland, "sh", "-c", f"{MINICT} {run} && {MINICT} --explain {run}",
                    command=[])
    assert (result.returncode, result.stdout) == (0, "5\n5\n"), result.stderr
    assert f"your cgroup {delegated} is delegated to you" in result.stderr
    assert child_cgroups(delegated) == ["init", "minict"]
    assert child_cgroups(delegated / "init") == []       # no init/init: the same layout
    assert child_cgroups(delegated / "minict") == []


def test_a_container_killed_from_outside_leaves_no_cgroup(userland, cgroups):
    cgroups.append(delegate(make_cgroup(ROOT, "memory pids")))
    subtree = cgroups[-1] / "minict"
    minict = subprocess.Popen(nobody_in(cgroups[-1], userland, "run", "--rm", "--network", "none",
                                        "--pids-limit", "10", "busybox", "sleep", "600"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any((subtree / c / "cgroup.procs").read_text().strip()
                             for c in child_cgroups(subtree)), 120, what="the container to start")
        [container] = child_cgroups(subtree)
        pid = int((subtree / container / "cgroup.procs").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        _, stderr = minict.communicate(timeout=120)
    finally:
        if minict.poll() is None:
            minict.kill()
            minict.wait()
    assert minict.returncode == 137, stderr
    assert child_cgroups(subtree) == []


def test_a_run_without_limits_makes_no_cgroup(userland, cgroups):
    cgroups.append(delegate(make_cgroup(ROOT, "memory pids")))
    result = run_in(cgroups[-1], userland, "run", "--rm", "--network", "none", "busybox",
                    "echo", "ran")
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr
    assert child_cgroups(cgroups[-1]) == []


# ---- refusals: one line, exit 40 ------------------------------------------------------------

def test_without_delegation_a_limit_is_refused_in_one_line(userland, cgroups):
    cgroups.append(make_cgroup(ROOT, "memory pids"))     # root's: not handed over
    result = run_in(cgroups[-1], userland, "run", "--rm", "--network", "none", "--memory", "64m",
                    "busybox", "true")
    assert result.returncode == 40, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("minict: --memory needs a cgroup")
    assert f"your cgroup {cgroups[-1]} is not delegated to you" in result.stderr
    assert "systemd-run --user --scope -p Delegate=yes" in result.stderr
    assert child_cgroups(cgroups[-1]) == []


def test_a_controller_that_is_not_delegated_is_named(userland, cgroups):
    cgroups.append(make_cgroup(ROOT, "memory pids"))
    delegated = delegate(make_cgroup(cgroups[-1], "pids"))   # its parent passes on pids only
    result = run_in(delegated, userland, "run", "--rm", "--network", "none", "--memory", "64m",
                    "busybox", "true")
    assert result.returncode == 40, result.stderr
    assert result.stderr.count("\n") == 1
    assert "--memory needs the memory controller" in result.stderr
    assert "Delegate=memory pids" in result.stderr
    assert child_cgroups(delegated) == []


# ---- stats, update and cleanup of a rootless container ---------------------------------------

def test_stats_update_and_cleanup_find_the_delegated_cgroup(userland, cgroups):
    """They look in the same hierarchy the container was made in
    (resources.cgroup_root), not in root's /sys/fs/cgroup/minict."""
    cgroups.append(delegate(make_cgroup(ROOT, "memory pids")))
    delegated = cgroups[-1]

    def minict(*args, command=(MINICT,)):
        # once minict has enabled controllers in the delegated cgroup, a
        # process may only join its leaf init/ (no internal processes)
        leaf = delegated / "init"
        return run_in(leaf if leaf.is_dir() else delegated, userland, *args, command=command)
    started = minict("run", "-d", "--name", "limited", "--network", "none", "--memory", "64m",
                     "busybox", "sleep", "600")
    assert started.returncode == 0, started.stderr
    try:
        stats = minict("stats", "--no-stream", "limited")
        assert stats.returncode == 0, stats.stderr
        [row] = [line for line in stats.stdout.splitlines() if "limited" in line]
        assert "/ 64MiB" in row, stats.stdout
        updated = minict("update", "--memory", "128m", "limited")
        assert updated.returncode == 0, updated.stderr
        inside = minict("exec", "limited", "cat", "/sys/fs/cgroup/memory.max")
        assert inside.stdout.strip() == str(128 << 20), inside.stderr
        # a cgroup a killed minict could leave: empty, of no container this root knows
        leftover = delegated / "minict" / ("ab" * 32)
        assert minict("sh", "-c", f"mkdir {leftover}", command=[]).returncode == 0
        cleaned = minict("cleanup")
        assert cleaned.returncode == 0, cleaned.stderr
        assert f"removed the orphaned cgroup of container {'ab' * 6}" in cleaned.stdout
        assert not leftover.exists()
    finally:
        removed = minict("rm", "-f", "limited")
    assert removed.returncode == 0, removed.stderr
    assert child_cgroups(delegated / "minict") == []
