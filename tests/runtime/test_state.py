"""Container records, locks and status: crash-safe and truthful (no root needed)."""

import json
import os
import subprocess
import sys

import pytest

from minicontainer.config import Config
from minicontainer.errors import BadArgument, ContainerNotFound, NameInUse
from minicontainer.runtime import recovery, state
from minicontainer.runtime.engine_record import EngineRecord
from minicontainer.runtime.flags import new_container_id

pytestmark = pytest.mark.unit


@pytest.fixture
def config(tmp_path) -> Config:
    return Config(root=tmp_path / "root", state=tmp_path / "state")


def new_engine_record(name=None, image_id="sha256:" + "a" * 64,
                      auto_remove=False) -> EngineRecord:
    return EngineRecord(id=new_container_id(), image_ref="busybox", image_id=image_id,
                        layer_dirs=[], name=name, auto_remove=auto_remove)


CONFIG = {"ociVersion": "1.0.2", "process": {"args": ["true"], "env": [], "cwd": "/"},
          "hostname": "h"}


def create(config, **kw):
    record, lock = state.create_record(state.Layout.of(config), new_engine_record(**kw), CONFIG,
                                       {"hostname": b"h\n"})
    return record, lock


def test_create_find_and_remove(config):
    record, lock = create(config, name="web")
    assert (record.dir / "upper").is_dir() and (record.dir / "hostname").read_bytes() == b"h\n"
    layout = state.Layout.of(config)
    assert state.find(layout, "web").id == record.id
    assert state.find(layout, record.id[:5]).id == record.id
    assert state.status(record).state == "created"
    with state.names_lock(layout):
        state.remove_record(record)
    lock.release()
    assert list(layout.containers.iterdir()) == []
    with pytest.raises(ContainerNotFound):
        state.find(layout, "web")


def test_generated_names_are_unique_and_given_names_are_checked(config):
    names = {create(config)[0].name for _ in range(30)}
    assert len(names) == 30
    create(config, name="dup")
    with pytest.raises(NameInUse):
        create(config, name="dup")
    # the refused create left nothing behind
    assert not [p for p in state.Layout.of(config).containers.iterdir() if p.name.startswith(".")]


def test_ambiguous_id_prefix(config):
    ids = [create(config)[0].id for _ in range(40)]
    prefix = next(a[0] for a in ids for b in ids if a != b and a[0] == b[0])
    with pytest.raises(BadArgument, match="ambiguous"):
        state.find(state.Layout.of(config), prefix)


def test_owner_lock_is_exclusive_until_released(config):
    record, lock = create(config)
    assert state.Lock.acquire(record.lock_file, blocking=False) is None
    lock.release()
    again = state.Lock.acquire(record.lock_file, blocking=False)
    assert again is not None
    again.release()


def test_status_trusts_a_pid_only_with_its_start_time(config):
    record, lock = create(config)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state.write_starting(record, sleeper.pid, os.getpid())
        st = state.status(record)   # plugged in, its command not yet run: docker says created
        assert (st.state, st.pid, st.running) == ("created", sleeper.pid, False)
        state.write_running(record)
        assert state.status(record).state == "running"
        # A recycled pid: same number, other start time -> not our container.
        data = json.loads(record.runtime_file.read_text())
        data["pid_start"] -= 1
        record.runtime_file.write_text(json.dumps(data))
        st = state.status(record)
        assert st.state == "exited" and st.exit_code is None and "died" in st.error
    finally:
        sleeper.kill()
        sleeper.wait()
    state.write_exit(record, 3)
    st = state.status(record)
    assert (st.state, st.exit_code) == ("exited", 3) and not record.runtime_file.exists()
    lock.release()


def test_containers_using_image(config):
    create(config, name="a", image_id="sha256:" + "1" * 64)
    create(config, name="b", image_id="sha256:" + "2" * 64)
    assert state.containers_using_image(config, "sha256:" + "1" * 64) == ["a"]
    assert state.containers_using_image(config, "sha256:" + "3" * 64) == []


def pretend_ran_and_owner_died(record, lock):
    """A runtime file naming a process that no longer exists, and no owner."""
    state.write_json(record.runtime_file, {"pid": os.getpid(), "pid_start": -1,
                                           "owner_pid": 999999, "started_at": state.now()})
    lock.release()


def test_recovery_removes_half_made_and_orphaned_things(config):
    layout = state.Layout.of(config)
    layout.create()
    (layout.containers / f".tmp-{new_container_id()}" / "upper").mkdir(parents=True)
    (layout.containers / f".rm-{new_container_id()}").mkdir()
    (layout.runtime / f"{new_container_id()}.json").write_text('{"pid": null}')
    (layout.locks / f"{new_container_id()}.lock").write_text("")
    # an --rm container whose owner died (lock released) while it "ran"
    gone, lock = create(config, name="gone", auto_remove=True)
    pretend_ran_and_owner_died(gone, lock)
    # a kept container whose owner died: marked exited, status unknown
    kept, lock = create(config, name="kept")
    pretend_ran_and_owner_died(kept, lock)
    # a container whose owner is alive is left alone
    busy, busy_lock = create(config, name="busy")
    done = recovery.recover(config)
    assert any("unfinished" in line for line in done)
    assert sorted(r.name for r in state.list_records(layout)) == ["busy", "kept"]
    st = state.status(state.find(layout, "kept"))
    assert st.state == "exited" and st.exit_code is None and "died" in st.error
    assert state.status(busy).state == "created"
    assert sorted(p.name for p in layout.containers.iterdir()) == sorted([busy.id, kept.id])
    assert sorted(p.stem for p in layout.runtime.iterdir()) == []
    assert sorted(p.name for p in layout.locks.iterdir()) == sorted(
        ["names.lock", f"{busy.id}.lock", f"{kept.id}.lock"])
    assert recovery.recover(config) == []       # idempotent
    busy_lock.release()


def test_looking_creates_nothing(config):
    """ps, inspect and cleanup on a root where nothing ever ran leave no directories."""
    layout = state.Layout.of(config)
    assert state.list_records(layout) == []
    assert recovery.recover(config) == []
    with pytest.raises(ContainerNotFound):
        state.find(layout, "anything")
    assert not config.root.exists() and not config.state.exists()


def test_oom_kill_is_kept_in_the_exit_record(config):
    record, lock = create(config, name="hog")
    state.write_exit(record, 137, oom_killed=True)
    assert state.status(record).oom_killed is True and state.status(record).exit_code == 137
    state.write_exit(record, 0)
    assert state.status(record).oom_killed is False
    lock.release()


def test_save_engine_record_keeps_changed_limits(config):
    record, lock = create(config, name="web")
    layout = state.Layout.of(config)
    record.engine.limits = {"memory": 128 << 20, "devices": []}
    with state.names_lock(layout):
        state.save_engine_record(record)
    again = state.find(layout, "web")
    assert again.engine.limits == {"memory": 128 << 20, "devices": []}
    assert again.engine.resource_limits().memory == 128 << 20
    assert again.config == CONFIG                       # the config.json it was made with
    assert (again.id, again.name, again.created) == (record.id, record.name, record.created)
    lock.release()


def test_remove_tree_never_follows_the_containers_symlinks(tmp_path):
    """A container's upper dir is removed whole, and nothing its symlinks
    point at (host paths) is touched."""
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc" / "passwd").write_text("root\n")
    doomed = tmp_path / "container"
    (doomed / "upper" / "a" / "b").mkdir(parents=True)
    (doomed / "upper" / "a" / "b" / "file").write_text("x")
    (doomed / "upper" / "etc").symlink_to(host / "etc")                  # to a host directory
    (doomed / "upper" / "passwd").symlink_to(host / "etc" / "passwd")    # to a host file
    (doomed / "upper" / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(doomed / "upper" / "fifo")
    (doomed / "work" / "work").mkdir(parents=True)
    os.chmod(doomed / "work" / "work", 0)      # as overlayfs leaves it (root can still remove it)
    if os.geteuid() != 0:
        os.chmod(doomed / "work" / "work", 0o700)
    state.remove_tree(str(doomed))
    assert not doomed.exists()
    assert (host / "etc" / "passwd").read_text() == "root\n"
    with pytest.raises(NotADirectoryError):
        state.remove_tree(str(host / "etc" / "passwd"))                 # a file is not a tree
    link = tmp_path / "link"
    link.symlink_to(host)
    with pytest.raises(OSError):
        state.remove_tree(str(link))                                     # nor is a symlink to one
    assert (host / "etc" / "passwd").exists()


def test_remove_tree_handles_a_tree_deeper_than_the_recursion_limit(tmp_path):
    """A container can nest directories 1500 deep (deeper than Python's
    recursion limit of 1000, and longer than PATH_MAX as one path). The
    walk holds an fd per level, so the test makes sure 1500 fit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 2048:
        if hard != resource.RLIM_INFINITY and hard < 2048:
            pytest.skip(f"needs 2048 open files; the hard limit (ulimit -Hn) is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))   # raising the soft limit is free
    try:
        _remove_a_deep_tree(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _remove_a_deep_tree(tmp_path):
    doomed = tmp_path / "container"
    doomed.mkdir()
    fd = os.open(doomed, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1500):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    state.remove_tree(str(doomed))
    assert not doomed.exists()
