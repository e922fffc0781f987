"""`minict stats` and `minict update`: find the containers, then read or write their cgroups.

Containers are looked up through the runtime's state module, which owns the
container records: `minicontainer.runtime.state.find_container(config, name)`
and `list_containers(config)`, each container having `.id`, `.name`,
`.status` ("running", "exited"...) and `.cgroup_path` (None when no cgroup
was made). The import is lazy so this module loads without the runtime.
"""

import time
from pathlib import Path
from typing import Callable, Iterable

from ..errors import ContainerNotRunning, MinictError
from .hierarchy import Cgroup, Explain
from .limits import Limits
from .stats import Sample, format_table, host_memory_bytes, read_sample, stats_row


def _state():
    try:
        from ..runtime import state
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("minicontainer.runtime"):
            raise MinictError("this minict has no container runtime yet (minicontainer.runtime)",
                              "install a complete minict") from None
        raise
    return state


def resolve(config, names: Iterable[str]) -> list:
    """The named containers, or every running one when no name is given."""
    state = _state()
    names = list(names)
    if names:
        return [state.find_container(config, name) for name in names]
    return [c for c in state.list_containers(config) if c.status == "running"]


def _sample(container) -> Sample | None:
    path = getattr(container, "cgroup_path", None)
    if not path or not Path(path).is_dir():
        return None
    return read_sample(Path(path))


def stats_table(containers: list, interval: float = 1.0,
                sleep: Callable[[float], None] = time.sleep) -> str:
    """Sample every container twice, `interval` seconds apart; return the table."""
    before = {c.id: _sample(c) for c in containers}
    sleep(interval)
    host_memory = host_memory_bytes()
    rows = []
    for c in containers:
        name = getattr(c, "name", None) or c.id[:12]
        after = _sample(c)
        if before[c.id] is None or after is None:
            rows.append((c.id[:12], name, "--", "--", "--", "--", "--"))
        else:
            rows.append(stats_row(c.id, name, before[c.id], after, host_memory))
    return format_table(rows)


def update_limits(containers: list, limits: Limits, explain: Explain | None = None) -> list[str]:
    """Write new limits into each running container's cgroup; return their names."""
    for c in containers:
        if c.status != "running" or not getattr(c, "cgroup_path", None):
            raise ContainerNotRunning(
                f"container {getattr(c, 'name', None) or c.id} is not running with a cgroup",
                "limits can change only while it runs: `minict start` it first")
    done = []
    for c in containers:
        Cgroup(Path(c.cgroup_path), explain).update(limits)
        done.append(getattr(c, "name", None) or c.id)
    return done
