"""Which device nodes a container may open, and what makes it so.

The container keeps CAP_MKNOD (docker's default set), and its image layers
may ship device nodes. Either way a process inside can hold a node for any
device of the host, its disks included; only the kernel's device
controller stops it from opening one. So before the container's first
process is forked, its owner (launch.py) picks the strongest enforcement
this host offers (plan), in this order:

  ebpf        the container has a cgroup v2 cgroup: the rules
              (cgroups/devices.py) go into config.json's
              linux.resources.devices, and the runtime (oci/cgroup.py)
              attaches them to it, assembled into an eBPF program
              (cgroups/device_program.py), as runc does. A run with no
              limit still gets a cgroup on a v2 host for this reason.
  cgroup-v1   no v2 cgroup, but MINICT_CGROUP_V1_DEVICES names a mounted
              cgroup v1 `devices` hierarchy: a cgroup <that>/minict/<id>
              with devices.deny "a" and one devices.allow line per rule.
              (Opt-in: on a host whose v1 hierarchies belong to systemd or a
              batch system, making cgroups there is its administrator's
              call, and the fallback below is safe without it.)
  nodev       no device controller at all. Then nothing is trusted: the
              container gets no CAP_MKNOD, and the root, volumes and every
              other mount except the /dev that minict fills itself are
              mounted nodev, so the only device nodes that can be opened
              are the ones minict made in /dev from the same rules.
  privileged  --privileged: every device is allowed (as docker's
              --privileged), nothing to enforce; checked first.

Without root (rootless.py) it is always nodev: loading a device program
needs CAP_BPF on the host, even where a delegated cgroup exists
(cgroups/delegated.py), and the user namespace refuses mknod. The nodes in /dev are
binds of the host's (devices.py), and opening one is the kernel's own check
of the caller against the host's node, the same as outside the container.

The choice is recorded with the running container (state.write_starting),
so `minict exec` gives its process the same treatment and `minict
inspect` shows it.
"""

import os
from collections import namedtuple
from pathlib import Path

from .. import syscalls as sc
from ..cgroups.devices import apply_v1, rules_for
from ..cgroups.hierarchy import Cgroup, make_dir
from ..errors import CgroupUnavailable

EBPF, CGROUP_V1, NODEV, PRIVILEGED = "ebpf", "cgroup-v1", "nodev", "privileged"

DESCRIPTIONS = {
    EBPF: "an eBPF device program (BPF_PROG_TYPE_CGROUP_DEVICE) attached to the container's "
          "cgroup v2 cgroup",
    CGROUP_V1: "a cgroup v1 devices cgroup (devices.deny a, then devices.allow per rule)",
    NODEV: "no device controller: CAP_MKNOD dropped, and every mount except /dev is nodev",
    PRIVILEGED: "--privileged allows every device: nothing to enforce",
}

V1_ENVIRONMENT = "MINICT_CGROUP_V1_DEVICES"
SUBTREE = "minict"


class DeviceGuard(namedtuple("DeviceGuard", "mechanism rules v1_cgroup")):
    """What enforces the device rules of one container: `mechanism` (one of
    the names above), the `rules` (cgroups.devices.DeviceRule) and, for
    cgroup-v1, the Cgroup made in the v1 hierarchy (else None)."""
    __slots__ = ()

    @property
    def nodev(self) -> bool:
        return self.mechanism == NODEV


def rules_of(engine) -> list:
    """runc's default list, plus --device and GPU nodes; with --privileged, everything."""
    return rules_for(engine.devices, engine.privileged)


def plan(kernel: sc.Kernel, engine, has_cgroup: bool) -> DeviceGuard:
    """Choose what puts the device rules of a container (its EngineRecord)
    in force, as the module docstring orders them; `has_cgroup`: it will
    have a cgroup v2 cgroup (resources.cgroup_home). Decided by the engine
    before anything is made, since config.json follows from it (no
    CAP_MKNOD for nodev: bundle.for_start). The eBPF program is then
    attached by the runtime, from config.json's linux.resources.devices
    (oci/cgroup.py prepare); the cgroup v1 cgroup is made by
    make_v1_cgroup."""
    rules = rules_of(engine)
    if os.geteuid() != 0:
        # Without root (rootless.py) there is no device controller, even in a
        # delegated cgroup: loading a device program needs CAP_BPF on the host,
        # and cgroup v1 is root's. The kernel itself holds the line: no mknod
        # in a user namespace, and its mounts cannot open device nodes
        # (SB_I_NODEV). /dev holds binds of host nodes (the harmless defaults,
        # a GPU plan's), which open only if the caller may open them outside.
        kernel.explain("No device controller without root (a device program needs CAP_BPF on "
                       "the host): the user namespace allows no mknod, every mount but /dev is "
                       "nodev, and /dev holds binds of host nodes, each opened under the kernel's "
                       "own permission check of your uid and groups against the host's node")
        return DeviceGuard(NODEV, rules, None)
    if engine.privileged:
        kernel.explain("--privileged allows every device (as docker's): nothing to enforce")
        return DeviceGuard(PRIVILEGED, rules, None)
    kernel.explain("The container may use only these devices; opening any other device node "
                   "fails with EPERM, even with CAP_MKNOD")
    for rule in rules:
        kernel.explain(f"Device rule: {rule.text()}")
    if has_cgroup:
        kernel.explain("They go into config.json's linux.resources.devices, which the runtime "
                       "hands to the kernel as an eBPF program attached to the container's cgroup")
        return DeviceGuard(EBPF, rules, None)
    reason = "the container has no cgroup v2 cgroup"
    if configured_v1_root() is not None:
        return DeviceGuard(CGROUP_V1, rules, None)
    limited = [d for d in engine.devices if set(d.access) != set("rwm")]
    if limited:
        raise CgroupUnavailable(f"--device {limited[0].path}:{limited[0].access} needs a device "
                                f"controller to hold it to {limited[0].access!r}, and this "
                                f"container has none ({reason})",
                                "give the device without permissions (all of rwm), or run where "
                                "cgroup v2 works (the Vagrant VM)")
    kernel.explain(f"No device controller ({reason}). Trust nothing instead: the container gets "
                   "no CAP_MKNOD, and every mount but /dev is nodev, so only the nodes minict "
                   "makes in /dev can be opened")
    return DeviceGuard(NODEV, rules, None)


def make_v1_cgroup(kernel: sc.Kernel, guard: DeviceGuard, container_id: str) -> DeviceGuard:
    """The guard with its cgroup v1 devices cgroup made, when that is what
    plan chose (minict's own extension: config.json has no word for v1)."""
    if guard.mechanism != CGROUP_V1:
        return guard
    v1_cgroup = _make_v1_cgroup(kernel, configured_v1_root(), container_id, guard.rules)
    return guard._replace(v1_cgroup=v1_cgroup)


# ---- cgroup v1 ----------------------------------------------------------------------

def configured_v1_root() -> Path | None:
    """The cgroup v1 devices hierarchy minict may use (MINICT_CGROUP_V1_DEVICES), or None."""
    value = os.environ.get(V1_ENVIRONMENT)
    if not value:
        return None
    root = Path(value)
    if not (root / "devices.allow").exists():
        raise CgroupUnavailable(f"{V1_ENVIRONMENT}={value} is not a cgroup v1 devices hierarchy "
                                "(it has no devices.allow)",
                                f"mount one there (mount -t cgroup -o devices none {value}), "
                                f"or unset {V1_ENVIRONMENT}")
    return root


def v1_path(root: Path, container_id: str) -> Path:
    return Path(root) / SUBTREE / container_id


def _make_v1_cgroup(kernel, root: Path, container_id: str, rules):
    path = v1_path(root, container_id)
    if not path.parent.is_dir():
        make_dir(path.parent, "minict's own subtree of the v1 devices hierarchy", kernel.explain,
                 exist_ok=True)
    try:
        make_dir(path, "Make the container's cgroup in the v1 devices hierarchy", kernel.explain)
    except FileExistsError:
        raise CgroupUnavailable(f"cgroup {path} already exists",
                                "a crashed minict left it behind: run minict cleanup") from None
    cgroup = Cgroup(path, kernel.explain)
    try:
        apply_v1(path, rules, kernel.explain)
    except OSError as exc:
        cgroup.destroy()
        raise CgroupUnavailable(f"cannot write the device rules in {path}: {exc.strerror}",
                                f"check {V1_ENVIRONMENT}") from None
    return cgroup


def release_v1(container_id: str, explain=None) -> bool:
    """Remove the container's v1 devices cgroup, if it has one (killing what
    is left in it first). True when one was removed."""
    root = configured_v1_root()
    if root is None:
        return False
    cgroup = Cgroup(v1_path(root, container_id), explain)
    if not cgroup.exists():
        return False
    cgroup.destroy()
    return True


def join_v1(kernel, container_id: str, pid: int) -> None:
    """`minict exec`: the new process joins the container's v1 devices cgroup."""
    root = configured_v1_root()
    if root is None:
        return
    cgroup = Cgroup(v1_path(root, container_id), kernel.explain)
    if cgroup.exists():
        cgroup.add_pid(pid)


# ---- inspect -------------------------------------------------------------------------

def describe(mechanism: str | None, container_id: str, running: bool) -> dict:
    """inspect's State.DeviceControl: how the devices of the last run were
    controlled, and while it runs, the ids of the eBPF programs the kernel
    has attached to its cgroup (`bpftool prog show id N` prints one)."""
    if mechanism is None:
        return {"Mechanism": "", "Description": "not started by this minict"}
    shown = {"Mechanism": mechanism, "Description": DESCRIPTIONS.get(mechanism, mechanism)}
    if mechanism == EBPF and running:
        cgroup = Cgroup.of(container_id)
        try:
            shown["ProgramIds"] = sc.cgroup_device_programs(cgroup.path)
        except OSError:
            shown["ProgramIds"] = []
    return shown
