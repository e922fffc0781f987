"""`minict stats` and `minict update`: find the containers, then read or write their cgroups.

The container records belong to the runtime (minicontainer.runtime.state:
Layout.of, find, list_records, status); `resolve()` turns them into plain
`Target`s, so the functions that do the work take Targets and can be fed
by a test without any container records. A container's cgroup is always
<cgroup root>/minict/<container id> (hierarchy.container_path).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import ContainerNotRunning
from .hierarchy import DEFAULT_ROOT, Cgroup, Explain, container_path
from .limits import Limits
from .stats import Sample, format_table, host_memory_bytes, read_sample, stats_row


@dataclass
class Target:
    id: str
    name: str
    running: bool
    cgroup_path: Path


def resolve(config, names: Iterable[str], cgroup_root: Path = DEFAULT_ROOT) -> list[Target]:
    """The named containers, or every running one when no name is given."""
    from ..runtime import state   # lazy: the runtime's imports are not needed to parse flags
    layout = state.Layout.of(config)
    names = list(names)
    records = [state.find(layout, name) for name in names] if names else state.list_records(layout)
    targets = [Target(r.id, r.name, state.status(r).running, container_path(cgroup_root, r.id))
               for r in records]
    return targets if names else [t for t in targets if t.running]


def _sample(target: Target) -> Sample | None:
    if not target.running or not target.cgroup_path.is_dir():
        return None   # stopped, or no cgroup was made (no limits on a host without v2)
    return read_sample(target.cgroup_path)


def stats_table(targets: list[Target], interval: float = 1.0,
                sleep: Callable[[float], None] = time.sleep) -> str:
    """Sample every container twice, `interval` seconds apart; return the table."""
    before = {t.id: _sample(t) for t in targets}
    if targets:
        sleep(interval)
    host_memory = host_memory_bytes()
    rows = []
    for t in targets:
        after = _sample(t)
        if before[t.id] is None or after is None:
            rows.append((t.id[:12], t.name, "--", "--", "--", "--", "--"))
        else:
            rows.append(stats_row(t.id, t.name, before[t.id], after, host_memory))
    return format_table(rows)


def update_limits(targets: list[Target], limits: Limits, explain: Explain | None = None) -> list[str]:
    """Write new limits into each running container's cgroup; return their names.

    Every container is checked before any is changed, so a typo in the
    third name does not leave the first two half-updated."""
    for t in targets:
        if not t.running:
            raise ContainerNotRunning(f"container {t.name} is not running",
                                      "limits can change only while it runs")
        if not t.cgroup_path.is_dir():
            raise ContainerNotRunning(f"container {t.name} has no cgroup",
                                      "it was started without limits on a host without cgroup v2")
    for t in targets:
        Cgroup(t.cgroup_path, explain).update(limits)
    return [t.name for t in targets]
