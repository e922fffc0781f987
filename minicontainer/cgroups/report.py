"""`minict stats` and `minict update`: read or write the cgroups of several containers.

The container records belong to the runtime, which turns them into plain
`Target`s (runtime/resources.py: stats_targets, update), so the functions
here take Targets and can be fed by a test without any container records.
A container's cgroup is always <cgroup root>/minict/<container id>
(hierarchy.container_path).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ContainerNotRunning
from .hierarchy import Cgroup, Explain
from .limits import Limits
from .stats import (Sample, format_table, host_memory_bytes, net_io_text, read_net_io, read_sample,
                    stats_row)


@dataclass
class Target:
    id: str
    name: str
    running: bool
    cgroup_path: Path
    pid: int | None = None     # the container's PID 1, for its network counters


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
            # No cgroup to read (stopped, or none was made on a host without
            # cgroup v2): its network counters are still there while it runs.
            net = read_net_io(t.pid) if t.running else None
            rows.append((t.id[:12], t.name, "--", "--", "--", net_io_text(net), "--", "--"))
        else:
            rows.append(stats_row(t.id, t.name, before[t.id], after, host_memory,
                                  read_net_io(t.pid)))
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
