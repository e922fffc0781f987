"""Cgroup limits without root: only in a cgroup v2 subtree delegated to you.

The cgroup tree belongs to root: an ordinary user may not make a cgroup
or write a limit. A service manager running as root can hand a subtree
over, though ("Delegation" in Documentation/admin-guide/cgroup-v2.rst;
systemd's Delegate=yes): it makes a cgroup, puts the user's process in
it, and gives the user the directory and three of its files,
cgroup.procs, cgroup.subtree_control and cgroup.threads. From then on
the user may make child cgroups there, move its own processes between
them and write their limits. What the parent does not pass down (the
parent's cgroup.subtree_control, still root's) stays out of reach.
systemd delegates every user's service manager (user@UID.service), and

    systemd-run --user --scope -p Delegate=yes minict run ...

runs minict in a delegated cgroup of its own.

Without root, minict looks in one place: its own cgroup (the "0::" line of
/proc/self/cgroup, under /sys/fs/cgroup). If that cgroup is delegated to
it, the container's cgroup is made there, laid out like root's:

    D/                  the delegated cgroup minict was started in
    D/init/             a leaf: the processes that were in D, minict among them
    D/minict/           minict's subtree
    D/minict/<id>/      the container's cgroup, with its limits

Why D/init: the "No Internal Process Constraint" of cgroup v2 (cgroup-v2.rst):
a cgroup that enables controllers for its children may hold no process
itself, and D holds minict (and perhaps the shell that started it). The
container's cgroup cannot be a sibling of D instead: D's parent is not
the user's. So minict first moves every process of D into the leaf
D/init, as docker-in-docker's entrypoint does at the top of its cgroup
namespace (hierarchy.prepare_levels does the moving), and only then
enables controllers in D. A later minict started from that shell finds
itself in D/init: the delegated cgroup is then init's parent.

A run without limits makes no cgroup at all: minict does not rearrange
the caller's cgroup unless a limit needs it. Everywhere else, a run that
asks for a limit is refused with one line saying why and what to do.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CgroupUnavailable
from . import detect
from .hierarchy import DEFAULT_ROOT, EVACUATION_LEAF, Explain
from .limits import FLAG_CONTROLLERS, Limits

# What systemd hands to the user (and so what minict must be able to write).
# cgroup.threads is missing on kernels before 4.14: then it is not asked for.
DELEGATED_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")

HOW_TO_DELEGATE = ("run it in a cgroup delegated to you: systemd-run --user --scope "
                   "-p Delegate=yes minict run ..., or run minict as root")


@dataclass(frozen=True)
class Delegation:
    """Where minict without root may make cgroups: `cgroup`, or None and
    `why_not` (the end of a sentence) and `fix` (what the user can do)."""
    cgroup: Path | None
    why_not: str = ""
    fix: str = ""


def own_cgroup(proc: Path = Path("/proc")) -> str | None:
    """This process's cgroup v2 path, e.g. "/user.slice/user-1000.slice/...",
    from the "0::PATH" line of /proc/self/cgroup; None when there is none."""
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[len("0::"):]
    return None


def is_delegated(cgroup: Path) -> bool:
    """May this process make child cgroups in `cgroup` and move processes
    and controllers there? That is what delegation hands over: the
    directory and DELEGATED_FILES, writable (checked with the effective
    uid, as the kernel will)."""
    if not os.access(cgroup, os.W_OK | os.X_OK, effective_ids=True):
        return False
    for name in DELEGATED_FILES:
        path = cgroup / name
        if name == "cgroup.threads" and not path.exists():
            continue
        if not os.access(path, os.W_OK, effective_ids=True):
            return False
    return True


def find(root: Path = DEFAULT_ROOT, proc: Path = Path("/proc")) -> Delegation:
    """The cgroup delegated to this process, or why there is none."""
    root = Path(root)
    if detect.available_controllers(root) is None:
        return Delegation(None, f"there is no cgroup v2 hierarchy at {root}",
                          "drop the limit, or run minict as root where cgroup v2 works, "
                          "e.g. in the Vagrant VM")
    own = own_cgroup(proc)
    if own is None:
        return Delegation(None, "this process is in no cgroup v2 cgroup (/proc/self/cgroup)",
                          "run minict as root")
    here = root / own.lstrip("/")
    if here.name == EVACUATION_LEAF and is_delegated(here.parent):
        return Delegation(here.parent)   # an earlier minict moved us into D/init
    if is_delegated(here):
        return Delegation(here)
    return Delegation(None, f"your cgroup {here} is not delegated to you (uid {os.geteuid()} "
                            f"may not write its cgroup.procs and cgroup.subtree_control)",
                      HOW_TO_DELEGATE)


def cgroup_root(root: Path = DEFAULT_ROOT, proc: Path = Path("/proc")) -> Path:
    """Where this minict's container cgroups are: `root` when it runs as
    root; without root, the cgroup delegated to it (or `root` when there is
    none, and then nothing of minict's is there)."""
    if os.geteuid() == 0:
        return Path(root)
    return find(root, proc).cgroup or Path(root)


def check_flags(flags: list[str], root: Path = DEFAULT_ROOT, proc: Path = Path("/proc")) -> Path:
    """Without root, may these resource flags (click's names: "memory",
    "pids_limit"...) be honoured? Returns the delegated cgroup, or raises
    CgroupUnavailable with one line: why not, and what to do. Reads only."""
    first = "--" + flags[0].replace("_", "-")
    found = find(root, proc)
    if found.cgroup is None:
        raise CgroupUnavailable(f"{first} needs a cgroup, and without root minict makes one "
                                f"only in a cgroup v2 subtree delegated to you: {found.why_not}",
                                found.fix)
    offered = detect.available_controllers(found.cgroup) or set()
    for flag in flags:
        controller = FLAG_CONTROLLERS[flag]
        if controller not in offered:
            raise CgroupUnavailable(
                f"--{flag.replace('_', '-')} needs the {controller} controller, and the cgroup "
                f"delegated to you ({found.cgroup}) does not have it (its cgroup.controllers: "
                f"{' '.join(sorted(offered)) or 'none'})",
                f"have it delegated too (systemd: Delegate={_delegate_list(offered, controller)} "
                f"in a drop-in for user@.service), or run minict as root")
    return found.cgroup


def _delegate_list(offered: set[str], wanted: str) -> str:
    """systemd's Delegate= value that keeps what is delegated and adds `wanted`."""
    usual = ["memory", "pids", "cpu"]   # what systemd delegates to user@.service by default
    names = [c for c in usual if c in offered or c == wanted]
    names += sorted((offered | {wanted}) - set(names))
    return " ".join(names)


def delegated_home(limits: Limits | None, explain: Explain, root: Path = DEFAULT_ROOT,
                   proc: Path = Path("/proc")) -> Path | None:
    """Without root: where the container's cgroup goes, the cgroup D
    delegated to the caller (the container's is then D/minict/<id>), or
    None when no limit was asked (the container stays in the caller's
    cgroup). rootless.check_request has checked the delegation already.
    Reads only: the runtime makes it (oci/cgroup.py)."""
    if limits is None or limits.is_empty():
        explain("Without root minict makes a cgroup only for a limit (it would have to "
                "rearrange your own cgroup): the container stays in your cgroup")
        return None
    found = find(root, proc)
    if found.cgroup is None:
        raise CgroupUnavailable(f"a resource limit needs a cgroup, and without root minict "
                                f"makes one only in a cgroup v2 subtree delegated to you: "
                                f"{found.why_not}", found.fix)
    explain(f"Without root: your cgroup {found.cgroup} is delegated to you (you may write its "
            f"cgroup.procs and cgroup.subtree_control), so the container's cgroup goes under it; "
            f"a process still in it moves to the leaf {EVACUATION_LEAF}/ first (cgroup v2's "
            f"no-internal-processes rule)")
    return found.cgroup
