"""SIGKILL of minict at any moment, and many runs in a row: afterwards
`cleanup` and `ps` tell the truth, and no mount, process or state is left."""

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.runtime.conftest import container_dirs, mount_table, processes_of, tree

pytestmark = [pytest.mark.root, pytest.mark.slow]


def wait_until_gone(mt, prefix, timeout=15.0):
    end = time.monotonic() + timeout
    while processes_of(mt.root, prefix) and time.monotonic() < end:
        time.sleep(0.05)
    return processes_of(mt.root, prefix)


def test_sigkill_of_foreground_minict_at_random_moments(fresh_mt):
    mt = fresh_mt
    mounts_before = mount_table()
    rng = random.Random(1234)    # fixed seed: the same moments on every run
    delays = sorted(rng.uniform(0.0, 0.4) for _ in range(24))
    for i, delay in enumerate(delays):
        rm = ["--rm"] if i % 2 else []
        proc = mt.popen("run", *rm, "--hostname", f"crash-{i}", "busybox", "sleep", "30")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # The container (if it got that far) dies with its owner: PR_SET_PDEATHSIG.
        assert wait_until_gone(mt, f"crash-{i}") == [], f"container of run {i} outlived minict"
    # ps tells the truth before cleanup: nothing claims to run
    rows = [json.loads(line) for line in mt.out("ps", "-a", "--format", "json").splitlines()]
    assert all(row["State"] != "running" for row in rows)
    mt.out("cleanup")
    rows = [json.loads(line) for line in mt.out("ps", "-a", "--format", "json").splitlines()]
    assert all(row["State"] in ("exited", "created") for row in rows)
    for row in rows:
        if row["State"] == "exited" and row["ExitCode"] is None:
            assert "died" in row["Status"]           # unknown, and it says so
    # only kept (non --rm) containers may remain, and they can be removed
    for row in rows:
        mt.out("rm", row["Names"])
    assert container_dirs(mt.root) == []
    assert tree(mt.state / "containers") == []
    assert sorted(p.name for p in (mt.state / "locks").iterdir()) == ["names.lock"]
    assert mount_table() == mounts_before
    assert mt.out("cleanup").strip() == "nothing to clean up"


@pytest.mark.vmtier
def test_sigkill_of_the_supervisor(fresh_mt):
    mt = fresh_mt
    cid = mt.out("run", "-d", "--name", "orphan", "--hostname", "orphan-box", "busybox",
                 "sleep", "60").strip()
    runtime = json.loads((mt.state / "containers" / f"{cid}.json").read_text())
    os.kill(runtime["owner_pid"], signal.SIGKILL)
    assert wait_until_gone(mt, "orphan-box") == []
    row = json.loads(mt.out("ps", "-a", "--format", "json"))
    assert row["State"] == "exited" and row["ExitCode"] is None
    assert "orphan" in mt.out("cleanup")
    info = json.loads(mt.out("inspect", "orphan"))[0]["State"]
    assert info["Status"] == "exited" and "died" in info["Error"]
    # it can be started again, and then stopped and removed normally
    mt.out("start", "orphan")
    mt.out("stop", "-t", "1", "orphan")
    mt.out("rm", "orphan")
    assert container_dirs(mt.root) == []


def test_cleanup_kills_a_container_whose_owner_vanished(fresh_mt):
    """Belt and braces: even if a container outlived its owner (say, its
    parent-death signal was lost), cleanup finds and kills it."""
    mt = fresh_mt
    cid = mt.out("run", "-d", "--rm", "--name", "stray", "--hostname", "stray-box", "busybox",
                 "sleep", "60").strip()
    runtime = json.loads((mt.state / "containers" / f"{cid}.json").read_text())
    # A runtime file that no record and no owner stands behind, naming a live
    # container process (here: a copy of the real one's, under another id).
    (mt.state / "containers" / f"{'f' * 64}.json").write_text(json.dumps(runtime))
    assert "unknown container" in mt.out("cleanup")
    assert wait_until_gone(mt, "stray-box") == []
    mt.out("cleanup")
    assert container_dirs(mt.root) == []



def test_cleanup_removes_an_older_minict_s_container_directory(fresh_mt):
    """A record from before container.json (its config.json held a "spec")
    is invisible to ps and rm: cleanup removes it, once no minict process
    owns it (its owner lock is free)."""
    mt = fresh_mt
    mt.out("run", "--name", "current", "busybox", "true")
    old = mt.root / "containers" / ("a" * 64)
    (old / "upper" / "etc").mkdir(parents=True)
    (old / "upper" / "etc" / "made-inside").write_text("from the container\n")
    (old / "config.json").write_text(json.dumps({"spec": {"image": "busybox", "args": ["sh"]}}))
    lock_path = mt.state / "locks" / f"{'a' * 64}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    owner = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(owner, fcntl.LOCK_EX)   # as its (older) minict process would hold it
    assert "left container directory aaaaaaaaaaaa" in mt.out("cleanup")
    assert (old / "upper" / "etc" / "made-inside").exists()
    os.close(owner)
    assert f"removed container directory {'a' * 64} (an older minict's" in mt.out("cleanup")
    assert not old.exists()
    row = json.loads(mt.out("ps", "-a", "--format", "json"))
    assert row["Names"] == "current"   # a current record is left as it was
    mt.out("rm", "current")
    assert container_dirs(mt.root) == []

# A real atomic_write, stopped between writing its temp file and renaming it
# over the record, so that the test can SIGKILL it at exactly that moment
# (a random SIGKILL hits that window only now and then).
WRITER_STOPPED_BEFORE_RENAME = """
import os, signal, sys
from minicontainer.fsutil import atomic_write

def stop_here(src, dst):
    print(src, flush=True)
    signal.pause()

os.rename = stop_here
atomic_write(sys.argv[1], b'{}', durable=False)
"""


def test_cleanup_removes_a_record_write_cut_short_by_sigkill(fresh_mt):
    mt = fresh_mt
    mt.out("run", "--name", "kept", "busybox", "true")
    cid = json.loads(mt.out("inspect", "kept"))[0]["Id"]
    record_dir = mt.root / "containers" / cid
    targets = [mt.state / "containers" / f"{cid}.json", record_dir / "exit.json"]
    writers = [subprocess.Popen([sys.executable, "-c", WRITER_STOPPED_BEFORE_RENAME, str(t)],
                                stdout=subprocess.PIPE, text=True, env=mt.env) for t in targets]
    temps = [writer.stdout.readline().strip() for writer in writers]
    assert [os.path.dirname(t) for t in temps] == [str(t.parent) for t in targets]
    assert all(os.path.exists(t) for t in temps)
    # While its writer lives, a temp file is about to be renamed: left alone.
    assert "cut short" not in mt.out("cleanup")
    assert all(os.path.exists(t) for t in temps)
    for writer in writers:
        writer.kill()
        writer.wait()
    lines = mt.out("cleanup").splitlines()
    assert sorted(lines) == sorted(f"removed {os.path.basename(t)}, a write cut short" for t in temps)
    assert not any(os.path.exists(t) for t in temps)
    # the record itself is untouched: still there, and how it ended is still known
    row = json.loads(mt.out("ps", "-a", "--format", "json"))
    assert row["Names"] == "kept" and row["State"] == "exited" and row["ExitCode"] == 0
    mt.out("rm", "kept")
    assert tree(mt.state / "containers") == []
    assert container_dirs(mt.root) == []


def test_fifty_runs_leave_nothing_behind(fresh_mt, tmp_path):
    mt = fresh_mt
    volume = tmp_path / "vol"
    volume.mkdir()
    mt.out("run", "--rm", "busybox", "true")     # first run creates the state layout
    mounts_before = mount_table()
    state_before = tree(mt.state)
    containers_before = container_dirs(mt.root)
    for i in range(50):
        kind = i % 5
        if kind == 0:
            mt.out("run", "--rm", "--hostname", f"leak-{i}", "busybox", "true")
        elif kind == 1:
            mt.out("run", "--rm", "--hostname", f"leak-{i}", "-v", f"{volume}:/v:ro",
                   "--tmpfs", "/t", "--read-only", "busybox", "ls", "/v", "/t")
        elif kind == 2:
            assert mt("run", "--rm", "--hostname", f"leak-{i}", "busybox", "nosuch").returncode == 127
        elif kind == 3:
            assert mt("run", "--hostname", f"leak-{i}", "--init", "busybox",
                      "sh", "-c", "sleep 0.01 & exit 3").returncode == 3
            mt.out("rm", mt.out("ps", "-a", "-q").split()[0])
        else:
            mt.out("run", "-d", "--rm", "--hostname", f"leak-{i}", "busybox", "true")
    end = time.monotonic() + 15
    while container_dirs(mt.root) != containers_before and time.monotonic() < end:
        time.sleep(0.05)     # the last detached --rm container tidies up after itself
    assert container_dirs(mt.root) == containers_before
    assert tree(mt.state) == state_before
    assert mount_table() == mounts_before
    assert processes_of(mt.root, "leak-") == []
