"""cgroups v2 for minict: limits, accounting, OOM reporting, cleanup.

One module per job:

  units.py      docker's size spellings ("64m") in, docker's printing out
  limits.py     `--memory 64m ...` -> a validated Limits -> control-file writes
  detect.py     is cgroup v2 usable here? if not, the one-line reason and fix
  hierarchy.py  <root>/minict/<id>: create, limit, join, kill, remove, orphans
  stats.py      read the counters, CPU % between two samples, `minict stats` rows

What `minict run` calls, in order (see each docstring; the runtime's side
is minicontainer/runtime/resources.py):

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

# Resource flags of `minict run` and `minict update`, named as click names
# their parameters (and in the order limits_from_cli takes them). Kept here,
# in the package's light front, so the run fast path (minicontainer.entry)
# can tell whether any was given without importing the parsers.
RESOURCE_FLAGS = ("memory", "memory_swap", "memory_reservation", "pids_limit", "cpus",
                  "cpu_shares", "cpu_weight", "cpuset_cpus", "device_read_bps",
                  "device_write_bps")

# name -> the module that defines it. Importing this package imports none of
# them: a `minict run` with no limit on a host without cgroup v2 needs only
# detect.py (and hierarchy.py to say so), and start-up time is benchmarked
# (bench/start). Each name is imported on first use (PEP 562 __getattr__).
_WHERE = {
    "CgroupUnavailable": "..errors",
    "diagnose": ".detect", "require_controllers": ".detect",
    "DEFAULT_ROOT": ".hierarchy", "SUBTREE": ".hierarchy", "Cgroup": ".hierarchy",
    "container_cgroups": ".hierarchy", "container_path": ".hierarchy",
    "create_for_container": ".hierarchy", "explain_to_stderr": ".hierarchy",
    "find_orphans": ".hierarchy", "preflight": ".hierarchy", "prepare_subtree": ".hierarchy",
    "remove_orphans": ".hierarchy",
    "UNLIMITED": ".limits", "DeviceRate": ".limits", "Limits": ".limits",
    "cpu_shares_to_weight": ".limits", "limits_from_cli": ".limits",
    "Sample": ".stats", "cpu_percent": ".stats", "format_table": ".stats",
    "read_sample": ".stats", "stats_row": ".stats",
}

__all__ = ["RESOURCE_FLAGS", *_WHERE]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value   # next time, a plain attribute
    return value
