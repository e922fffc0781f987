"""cgroups v2 for minict: limits, accounting, OOM reporting, cleanup.

One module per job:

  units.py      docker's size spellings ("64m") in, docker's printing out
  limits.py     `--memory 64m ...` -> a validated Limits -> control-file writes
  detect.py     is cgroup v2 usable here? if not, the one-line reason and fix
  hierarchy.py  <root>/minict/<id>: create, limit, join, kill, remove, orphans
  delegated.py  without root: the same, under the cgroup v2 subtree delegated to the caller
  stats.py      read the counters, CPU % between two samples, `minict stats` rows
  report.py     `minict stats` and `minict update` over several containers
  devices.py    which device nodes a container may use (runc's list, --device...)
  device_program.py  those rules as an eBPF program for cgroup v2

What `minict run` calls, in order (see each docstring; the runtime's side
is minicontainer/runtime/resources.py):

  limits = limits_from_cli(memory=..., pids_limit=..., ...)   # limits.py; BadArgument first
  if not limits.is_empty(): preflight(limits)                  # hierarchy.py; CgroupUnavailable
  home = home_for_container(limits, explain=...)   # the engine: where (as root), or None
  (without root: delegated.delegated_home, the caller's delegated cgroup)
  cg = Cgroup.create_at(home/minict/<id>, limits, home, ...)  # the runtime (oci/cgroup.py)
  cg.add_pid(child_pid)          # while the child waits on the sync pipe
  ... child: unshare(CLONE_NEWCGROUP), mount cgroup2 read-only, execve ...
  cg.oom_report()                # after it exits: a sentence if the OOM killer ended it
  cg.destroy()                   # cgroup.kill, then rmdir

and later: Cgroup.of(container_id).add_pid(pid) for `minict exec`;
remove_orphans(is_live) in the crash cleanup.
"""
