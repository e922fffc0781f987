"""cgroups v2 for minict: limits, accounting, OOM reporting, cleanup.

One module per job:

  units.py      docker's size spellings ("64m") in, docker's printing out
  limits.py     `--memory 64m ...` -> a validated Limits -> control-file writes
  detect.py     is cgroup v2 usable here? if not, the one-line reason and fix
  hierarchy.py  <root>/minict/<id>: create, limit, join, kill, remove, orphans
  stats.py      read the counters, CPU % between two samples, `minict stats` rows

What `minict run` calls, in order (see each docstring):

  limits = limits_from_cli(memory=..., pids_limit=..., ...)   # BadArgument: before anything
  if not limits.is_empty(): preflight(limits)                  # CgroupUnavailable: likewise
  cg = create_for_container(container_id, limits, explain=...) # Cgroup or None
  cg.add_pid(child_pid)          # while the child waits on the sync pipe
  ... child: unshare(CLONE_NEWCGROUP), mount cgroup2 read-only, execve ...
  cg.oom_report()                # after it exits: a sentence if the OOM killer ended it
  cg.destroy()                   # cgroup.kill, then rmdir

and later: Cgroup.of(container_id).add_pid(pid) for `minict exec`;
remove_orphans(is_live) in the crash cleanup.
"""

from ..errors import CgroupUnavailable
from .detect import diagnose, require_controllers
from .hierarchy import (DEFAULT_ROOT, SUBTREE, Cgroup, container_cgroups, container_path,
                        create_for_container, explain_to_stderr, find_orphans, preflight,
                        prepare_subtree, remove_orphans)
from .limits import UNLIMITED, DeviceRate, Limits, cpu_shares_to_weight, limits_from_cli
from .stats import Sample, cpu_percent, format_table, read_sample, stats_row

__all__ = [
    "CgroupUnavailable", "diagnose", "require_controllers",
    "DEFAULT_ROOT", "SUBTREE", "Cgroup", "container_cgroups", "container_path",
    "create_for_container", "explain_to_stderr", "find_orphans", "preflight", "prepare_subtree",
    "remove_orphans",
    "UNLIMITED", "DeviceRate", "Limits", "cpu_shares_to_weight", "limits_from_cli",
    "Sample", "cpu_percent", "format_table", "read_sample", "stats_row",
]
