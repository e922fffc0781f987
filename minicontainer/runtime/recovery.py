"""`minict cleanup`: put right whatever a killed minict left behind.

What a SIGKILL of a minict process can leave, and what is done about it
(see state.py for why nothing worse is possible):

- `.tmp-<id>` / `.rm-<id>` directories (a create or a remove cut short):
  deleted;
- a container directory an older minict wrote (its config.json held a
  "spec", and there is no container.json; none before December 2026):
  nothing can start, list or remove it now, so once no minict process owns
  it, it is deleted;
- a record whose owner died (its owner lock is free) but whose runtime
  file says it runs: if the container's PID 1 is somehow still alive it is
  killed (its owner is gone, so nobody would ever record its end); the
  exit is recorded as unknown, and an --rm container is removed;
- runtime and lock files with no record: deleted;
- the temp file of a record write cut short between write and rename
  (fsutil.atomic_write): deleted once its writer is dead;
- cgroups (<cgroup root>/minict/<id>): a container whose owner died keeps
  its cgroup (the owner removes it when the container ends), and an owner
  killed at the wrong moment may leave one with no record at all. Whatever
  is left in one is killed (cgroup.kill) and the directory removed; an
  OOM kill it saw is recorded first (inspect's OOMKilled).

Mounts need no cleanup: they only ever exist inside the container's own
mount namespace, which the kernel tears down with its last process.
Runs under the names lock and touches only containers nobody owns, so it
is safe while other containers run.
"""

import signal

from .. import syscalls as sc
from ..errors import MinictError
from ..fsutil import stale_temp_files
from . import networking, state
from .process import ContainerProcess
from .resources import release, remove_orphans


def recover(config) -> list[str]:
    """Repair crash leftovers; returns one line per thing done."""
    layout = state.Layout.of(config)
    done = []
    if not layout.containers.is_dir() and not layout.runtime.is_dir():
        # Nothing was ever run with this root and state dir (and no
        # directory is made for it), but a cgroup left by a minict whose
        # root is gone may still be there.
        return [f"removed the orphaned cgroup of container {container_id[:12]}"
                for container_id in remove_orphans(set(), set())]
    with state.names_lock(layout):
        ours = set()     # every container id this root knows of
        for entry in _entries(layout.containers):
            if entry.name.startswith((".tmp-", ".rm-")):
                ours.add(entry.name.split("-", 1)[1])
                done.append(_remove_directory(layout, entry, "unfinished container directory"))
            elif not (entry / "container.json").exists() and (entry / "config.json").exists():
                ours.add(entry.name)
                done += _remove_older_format(layout, entry)
        records = state.list_records(layout)
        owned = set()    # ids whose owner is alive: not ours to touch
        for record in records:
            ours.add(record.id)
            lines = _recover_record(record)
            if lines is None:
                owned.add(record.id)
            else:
                done.extend(lines)
        remaining = state.list_records(layout)    # without the --rm ones just removed
        ids = {r.id for r in remaining}
        for path in _entries(layout.runtime, ".json"):
            if path.stem not in ids:
                ours.add(path.stem)
                _kill_if_alive(state.read_json(path) or {})
                path.unlink(missing_ok=True)
                done.append(f"removed runtime state of unknown container {path.stem[:12]}")
        for directory in [layout.runtime] + [r.dir for r in remaining]:
            if not directory.is_dir():
                continue
            for path in stale_temp_files(directory):
                path.unlink(missing_ok=True)
                done.append(f"removed {path.name}, a write cut short")
        done += networking.remove_orphans(sc.Kernel(), layout, owned)
        for container_id in remove_orphans(owned, ours):
            done.append(f"removed the orphaned cgroup of container {container_id[:12]}")
        for path in _entries(layout.locks, ".lock"):
            if path.name == "names.lock" or path.stem in ids:
                continue
            lock = state.Lock.acquire(path, blocking=False)
            if lock:
                path.unlink(missing_ok=True)
                lock.release()
    return done


def _remove_directory(layout, entry, what: str, why: str = "") -> str:
    try:
        state.remove_container_tree(layout, str(entry))
        return f"removed {what} {entry.name}{why}"
    except OSError as exc:
        return f"could not remove {what} {entry.name}: {exc.strerror}"


def _remove_older_format(layout, entry) -> list[str]:
    """A container an older minict made (no container.json): removed, unless
    the minict process that ran it is still alive (it holds its owner lock)."""
    lock = state.Lock.acquire(layout.locks / f"{entry.name}.lock", blocking=False)
    if lock is None:
        return [f"left container directory {entry.name[:12]} (an older minict's) alone: the "
                f"minict process that runs it is alive; run cleanup again once it has ended"]
    try:
        return [_remove_directory(layout, entry, "container directory",
                                  " (an older minict's: nothing can run it now)")]
    finally:
        lock.release()


def _entries(directory, suffix: str = "") -> list:
    """The entries of a directory that may not exist (yet, or after a reboot)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(suffix))


def _recover_record(record: state.Record) -> list[str] | None:
    """Put one container right; None when its owner is alive (then nothing is touched)."""
    lock = state.Lock.acquire(record.lock_file, blocking=False)
    if lock is None:
        return None   # its owner is alive and looking after it
    done = []
    try:
        runtime = state.read_json(record.runtime_file)
        if runtime and _kill_if_alive(runtime):
            done.append(f"killed {record.name}: its minict process had died")
        removed, oom = _release_cgroup(record, done)
        if removed:
            done.append(f"removed the cgroup of {record.name}")
        networking.detach(sc.Kernel(), record)   # its address, its published ports
        if runtime:
            if not record.exit_file.exists():
                state.write_exit(record, None, f"the minict process that ran it (pid "
                                               f"{runtime.get('owner_pid')}) died; exit status unknown",
                                 oom_killed=oom is not None)
                done.append(f"marked {record.name} as exited (its minict process died)")
            record.runtime_file.unlink(missing_ok=True)
        if record.engine.auto_remove:   # whether it ran or not, its owner will not remove it now
            state.remove_record(record)
            done.append(f"removed {record.name} (--rm, and its minict process died)")
    finally:
        lock.release()
    return done


def _release_cgroup(record: state.Record, done: list[str]) -> tuple[bool, str | None]:
    try:
        return release(record.id)
    except MinictError as exc:
        done.append(f"could not remove the cgroup of {record.name}: {exc.one_line()}")
        return False, None


def _kill_if_alive(runtime: dict) -> bool:
    """SIGKILL the container process `runtime` records, if it still runs."""
    process = ContainerProcess.open(sc.Kernel(), runtime)
    if process is None:
        return False
    with process:
        process.signal(signal.SIGKILL, "Its owner is gone: kill the container's PID 1")
        process.exited(10)
    return True
