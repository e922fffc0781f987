"""linux.uidMappings and gidMappings: the ids of a new user namespace.

A user namespace starts with no ids; its owner writes /proc/PID/uid_map
and gid_map ("FIRST-INSIDE FIRST-OUTSIDE COUNT" lines) while the process
waits. Who may write what (user_namespaces(7)):
- root (CAP_SETUID and CAP_SETGID outside): any map, directly;
- a user, for its own single id: directly, after writing "deny" to
  /proc/PID/setgroups (CVE-2014-8989);
- a user, for more ids: only the setuid helpers newuidmap/newgidmap, which
  check /etc/subuid and /etc/subgid (minicontainer/idmap.py does this
  for minict run).
"""

import os

from .. import idmap
from .. import syscalls as sc


def ranges(mappings: list) -> tuple:
    return tuple((m["containerID"], m["hostID"], m["size"]) for m in mappings)


def write(kernel: sc.Kernel, pid: int, linux: dict) -> None:
    uids, gids = ranges(linux["uidMappings"]), ranges(linux["gidMappings"])
    if os.geteuid() == 0:
        kernel.write_proc(f"/proc/{pid}/uid_map", idmap.map_lines(uids),
                          "linux.uidMappings: the user namespace's uids (root writes any map)")
        kernel.write_proc(f"/proc/{pid}/gid_map", idmap.map_lines(gids),
                          "linux.gidMappings: its gids")
        return
    own = len(uids) == 1 and uids[0][1:] == (os.getuid(), 1) and \
        len(gids) == 1 and gids[0][1:] == (os.getgid(), 1)
    # One id of your own: written directly; more: through newuidmap/newgidmap.
    idmap.write_maps(kernel, pid, idmap.IdMap(uids, gids) if not own else
                     idmap.IdMap(uids[:1], gids[:1]))
