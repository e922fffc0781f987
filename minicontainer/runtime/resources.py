"""The runtime's side of cgroups: when a container's cgroup is made, joined,
read, changed and removed. The cgroup work itself is minicontainer.cgroups's.

    when                          what                                   called from
    `minict run`/`update` flags   limits_from_flags: the one adapter      run.run_image, cli/cgroups.py
    before anything is made       check_limits: can this host enforce it  run.run_image, lifecycle.start
    the owner starts PID 1        cgroup_home (where: as root, or in the  launch.py
                                  caller's delegated cgroup), made by the
                                  runtime (oci/cgroup.py), add_pid
    `minict exec`                 join_existing: add_pid, if there is one exec.py
    the container ends            release: OOM report, then destroy       supervisor.finish,
                                                                          lifecycle.remove, recovery
    `minict cleanup`              remove_orphans                          recovery.recover
    `minict update`               update: write the cgroup, save record   cli/cgroups.py
    `minict stats`                stats_targets: the containers to sample cli/cgroups.py
    `minict inspect`              host_config: docker's HostConfig fields lifecycle.inspect

A container's cgroup is always <cgroup root>/minict/<container id>
(cgroups.hierarchy.container_path), so nothing about it needs saving but
the limits themselves, which live in the engine's record (EngineRecord.limits,
a plain dict; each start writes them into config.json's resources).
The cgroup root is /sys/fs/cgroup, or without root the cgroup delegated
to the caller (cgroups.delegated.cgroup_root).
"""

import os
from pathlib import Path

from ..cgroups import delegated
from ..cgroups.delegated import cgroup_root
from ..cgroups.hierarchy import (DEFAULT_ROOT, Cgroup, container_path, home_for_container,
                                 preflight)
from ..cgroups.hierarchy import remove_orphans as remove_orphan_cgroups
from ..cgroups.limits import RESOURCE_FLAGS, Limits, limits_from_cli
from ..cgroups.report import Target, update_limits
from . import rootless, state
from .device_access import configured_v1_root, join_v1, release_v1


def limits_from_flags(flags: dict, updating: bool = False) -> Limits | None:
    """Take the resource flags (--memory, --cpus...) out of `flags` (click's
    parameters of `run` or `update`) and validate them: the one adapter from
    flags to limits. Returns a Limits, or None when no limit was asked.

    Raises BadArgument naming the flag. It creates nothing and asks the host
    nothing (check_limits does). `updating`: `minict update`'s rules
    (cgroups.limits.limits_from_cli).
    """
    given = {name: flags.pop(name) for name in RESOURCE_FLAGS if name in flags}
    given = {name: value for name, value in given.items() if value not in (None, (), [])}
    if not given:
        return None
    limits = limits_from_cli(**{name: tuple(value) if isinstance(value, list) else value
                                for name, value in given.items()}, updating=updating)
    if limits.is_empty():
        return None   # e.g. --memory 0: docker's way of saying "no limit"
    return limits


def check_limits(limits: Limits | None) -> None:
    """The runtime's one check that this host can enforce `limits`: raises
    CgroupUnavailable (or BadArgument, a CPU it does not have) with the cause
    and the fix BEFORE anything is created, so a container never starts
    without a limit the user asked for. `minict run` checks before it even
    resolves the image, `minict start` before it starts the container again.
    (Cgroup.create makes the same check as its own guard, for callers of the
    cgroups library.)"""
    if limits is not None and not limits.is_empty():
        preflight(limits)


def cgroup_home(kernel, engine) -> Path | None:
    """Where the container's cgroup goes, the engine's decision: the part of
    the cgroup tree under which the runtime makes <home>/minict/<id>
    (config.json's cgroupsPath: cgroups_path_of), or None when there is to
    be none (--explain says why).

    As root, /sys/fs/cgroup (hierarchy.home_for_container; without a limit
    only where cgroup v2 works, for `minict stats` and the device filter).
    Without root, only for a limit, the cgroup v2 subtree D delegated to the
    caller (delegated.delegated_home; check_request has refused a limit that
    cannot be had there).

    The runtime (oci/cgroup.py prepare, the same code minict-oci runs) makes
    it before the container's first process is forked, and the process is
    moved in (Cgroup.add_pid) while it waits for "go", before it has run any
    of the container's code: every process the container ever starts is
    born inside its limits and its device rules. The child then unshares
    CLONE_NEWCGROUP, which makes this cgroup the root of its view.
    (`minict exec` joins the existing cgroup instead: join_existing.)
    """
    limits = engine.resource_limits()     # (kept as a dict: its JSON form)
    if rootless.active():
        return delegated.delegated_home(limits, kernel.explain)
    return home_for_container(limits, explain=kernel.explain)


def cgroups_path_of(home: Path, container_id: str) -> str:
    """config.json's linux.cgroupsPath for a cgroup under `home`: absolute,
    from the top of the hierarchy, as podman's cgroupfs manager writes it."""
    return "/" + str(container_path(home, container_id).relative_to(DEFAULT_ROOT))


def join_existing(kernel, container_id: str, pid: int) -> None:
    """`minict exec`: put the joining process into the container's cgroup
    (while it waits for "go", like the container's own PID 1), so it counts
    against the same limits. A container started without a cgroup (no limit
    asked, on a host without cgroup v2) has none to join."""
    cgroup = Cgroup.of(container_id, cgroup_root(), explain=kernel.explain)
    if cgroup.exists():
        cgroup.add_pid(pid)
    else:
        kernel.explain("The container has no cgroup of its own: the new process stays in "
                       "minict's cgroup")
    join_v1(kernel, container_id, pid)   # its cgroup v1 devices cgroup, if it has one


def release(container_id: str, explain=None, root=None) -> tuple[bool, str | None]:
    """The container has ended: read whether the OOM killer ended it, then
    kill whatever is left in its cgroup and remove the cgroup.

    Returns (a cgroup was removed, the OOM sentence or None). Safe to call
    for a container that never had a cgroup, or twice.
    """
    removed_v1 = release_v1(container_id, explain)   # a cgroup v1 devices cgroup, if any
    cgroup = Cgroup.of(container_id, root or cgroup_root(), explain)
    if not cgroup.exists():
        return removed_v1, None
    # memory.events must be read before the directory goes: it is the only
    # record of an OOM kill (the exit status alone, 137, is any SIGKILL).
    oom = cgroup.oom_report()
    cgroup.destroy()
    return True, oom


def remove_orphans(owned: set[str], ours: set[str], explain=None, root=None) -> list[str]:
    """Remove the cgroups under <root>/minict whose container nobody looks after.

    `owned`: ids of containers whose owner (foreground minict or supervisor)
    is alive: never touched. `ours`: every other id this minict root knows
    of (records, runtime files): their cgroups are leftovers. A cgroup of an
    id this root does not know may belong to another minict root (--root,
    MINICT_ROOT: the cgroup tree is one for the whole machine), so it is
    removed only when empty: a container's cgroup holds no process only
    before its PID 1 is moved in (the few milliseconds of a start) or after
    it has ended.
    Returns the ids whose cgroups were removed. (`root`: the cgroup
    hierarchy, cgroup_root() unless a test hands in a fake one.)
    """
    if root is None and os.geteuid() != 0 and delegated.find().cgroup is None:
        return []   # without root and without a delegated cgroup, minict made no cgroup
    root = root or cgroup_root()

    def is_live_in(hierarchy):
        def is_live(container_id: str) -> bool:
            if container_id in owned:
                return True
            if container_id in ours:
                return False
            return Cgroup(container_path(hierarchy, container_id)).populated()
        return is_live

    cleaned = remove_orphan_cgroups(is_live_in(root), root, explain)
    v1_root = configured_v1_root()
    if v1_root is not None:   # the same for cgroup v1 devices cgroups (device_access.py)
        cleaned += [c for c in remove_orphan_cgroups(is_live_in(v1_root), v1_root, explain)
                    if c not in cleaned]
    return cleaned


def stats_targets(config, names) -> list[Target]:
    """`minict stats`: the named containers, or every running one when no name is given."""
    layout = state.Layout.of(config)
    names = list(names)
    records = [state.find(layout, name) for name in names] if names else state.list_records(layout)
    targets = []
    hierarchy = cgroup_root()
    for r in records:
        status = state.status(r)
        targets.append(Target(r.id, r.name, status.running, container_path(hierarchy, r.id),
                              status.pid))
    return targets if names else [t for t in targets if t.running]


def update(config, refs, changes, explain=None) -> list[str]:
    """`minict update`: write the changed limits into each running
    container's cgroup, then save them in its record (so `inspect` shows
    them and `minict start` applies them again). Returns the names."""
    layout = state.Layout.of(config)
    records = [state.find(layout, ref) for ref in refs]
    hierarchy = cgroup_root()
    targets = [Target(r.id, r.name, state.status(r).running, container_path(hierarchy, r.id))
               for r in records]
    names = update_limits(targets, changes, explain)   # checks them all before writing any
    with state.names_lock(layout):
        for record in records:
            current = state.find(layout, record.id)     # read again, under the lock
            saved = current.engine.resource_limits() or Limits()
            current.engine.limits = saved.updated(changes).to_dict()
            state.save_engine_record(current)
    return names


def host_config(limits: dict) -> dict:
    """The resource fields of docker's `inspect` HostConfig, from EngineRecord.limits.

    docker's conventions: 0 means "not set"; MemorySwap and PidsLimit use -1
    for "unlimited"; NanoCpus is CPUs x 10^9. CpuWeight is minict's own
    (cgroup v2's cpu.weight, which docker does not show).
    """
    def rates(kind):
        return [{"Path": d["path"], "Rate": d[kind]}
                for d in limits.get("devices", ()) if d.get(kind) is not None]

    cpus = limits.get("cpus")
    return {
        "Memory": limits.get("memory") or 0,
        "MemorySwap": limits.get("memory_swap") or 0,
        "MemoryReservation": limits.get("memory_reservation") or 0,
        "PidsLimit": limits.get("pids_limit"),
        "NanoCpus": round(cpus * 1e9) if cpus else 0,
        "CpuShares": limits.get("cpu_shares") or 0,
        "CpuWeight": limits.get("cpu_weight") or 0,
        "CpusetCpus": limits.get("cpuset_cpus") or "",
        "BlkioDeviceReadBps": rates("read_bps"),
        "BlkioDeviceWriteBps": rates("write_bps"),
    }
