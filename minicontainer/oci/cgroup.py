"""linux.cgroupsPath and linux.resources: the container's cgroup (v2 only).

The engine names the cgroup (`cgroupsPath`) and its limits (`resources`);
the runtime makes it, writes the limits, attaches the device filter and
moves the container's process in before a single instruction of the
command runs. minicontainer/cgroups does the writing, as for minict run:
this module only turns the spec's words into its Limits.

  cgroupsPath "/a/b"   /sys/fs/cgroup/a/b (absolute: from the root)
  cgroupsPath "a/b"    /sys/fs/cgroup/minict-oci/a/b (relative: under ours)
  none                 /sys/fs/cgroup/minict-oci/ID
  "slice:prefix:name"  systemd's form: refused (no --systemd-cgroup here)

`pause`, `resume` and `update` act on that cgroup only, so they are here too.

On a host whose controllers are held by cgroup v1 (this project's CI
machine) there is no cgroup v2 tree to use, and minict never writes to v1.
Then the container gets no cgroup; a limit it asked for is refused with one
line (never silently dropped), and resources.devices is kept the way
runtime/device_access.py keeps minict's own device rules without a device
controller: every mount but the runtime's /dev is nodev (init.py).
"""

import json
import os
import time
from pathlib import Path

from .. import syscalls as sc
from ..cgroups import devices as device_rules
from ..cgroups.device_program import assemble
from ..cgroups.hierarchy import DEFAULT_ROOT, Cgroup
from ..cgroups.limits import UNLIMITED, DeviceRate, Limits, cpu_shares_to_weight
from ..errors import BadArgument, CgroupUnavailable, ContainerStateError, UnsupportedConfig
from . import config as config_file, state

OWN_SUBTREE = "minict-oci"


def v2_available(root: Path = DEFAULT_ROOT) -> bool:
    return (Path(root) / "cgroup.controllers").exists() and os.access(root, os.W_OK)


def limits_of(resources: dict) -> Limits | None:
    """linux.resources as minict's Limits (None: nothing to limit). minict
    run's engine writes them from the same Limits (runtime/bundle.py
    limits_in_spec_words)."""
    memory, cpu, pids = (resources.get(k) or {} for k in ("memory", "cpu", "pids"))
    weight = (resources.get("unified") or {}).get("cpu.weight")
    limits = Limits(
        memory=_limit(memory.get("limit")), memory_reservation=memory.get("reservation"),
        memory_swap=_limit(memory.get("swap")),
        pids_limit=_limit(pids.get("limit")),
        cpus=(cpu["quota"] / (cpu.get("period") or 100_000)) if cpu.get("quota", 0) > 0 else None,
        cpu_weight=(int(weight) if weight is not None else
                    cpu_shares_to_weight(cpu["shares"]) if cpu.get("shares") else None),
        cpu_shares=cpu.get("shares") or None, cpuset_cpus=cpu.get("cpus") or None,
        devices=_device_rates(resources.get("blockIO") or {}))
    return None if limits.is_empty() else limits


def _device_rates(block_io: dict) -> tuple[DeviceRate, ...]:
    """blockIO's throttle lists as one DeviceRate (an io.max line) per device."""
    rates = {}
    for key, kind in (("throttleReadBpsDevice", "read_bps"), ("throttleWriteBpsDevice", "write_bps")):
        for entry in block_io.get(key) or []:
            device = (entry["major"], entry["minor"])
            rates.setdefault(device, {})[kind] = entry["rate"]
    return tuple(DeviceRate("block device", major, minor, **given)
                 for (major, minor), given in sorted(rates.items()))


def _limit(value):
    if value is None or value == 0:
        return None
    return UNLIMITED if value < 0 else value


def path_for(config: dict, container_id: str, root: Path = DEFAULT_ROOT) -> Path:
    given = config.get("linux", {}).get("cgroupsPath", "")
    if ":" in given:
        raise UnsupportedConfig(f"config.json: linux.cgroupsPath {given!r} is systemd's "
                                f"slice:prefix:name form; minict-oci has no systemd cgroup driver",
                                "give a path (podman: --cgroup-manager=cgroupfs)")
    if ".." in given.split("/"):
        raise UnsupportedConfig(f"config.json: linux.cgroupsPath {given!r} climbs with '..'",
                                "name the cgroup without '..'")
    if given.startswith("/"):
        return Path(root) / given.lstrip("/")
    return Path(root) / OWN_SUBTREE / (given or container_id)


def device_rules_of(linux: dict) -> list | None:
    """linux.resources.devices as an allow list for cgroups/device_program.py,
    with what runc adds to it: the default devices every container has
    (/dev/null...) and one rule per node in linux.devices, so that what the
    runtime made can be used (a node the list names already keeps the
    access the list gives it: minict run's --device /dev/loop0:r).
    Engines write "deny everything, then allow each": that shape is what
    the eBPF program minict assembles can say (first match allows, else
    deny). A list that allows everything gives
    None (no program)."""
    rules, entries = [], (linux.get("resources") or {}).get("devices") or []
    for i, entry in enumerate(entries):
        kind, access = entry.get("type", "a"), entry.get("access", "rwm")
        major, minor = entry.get("major"), entry.get("minor")
        if kind == "a" and major is None and minor is None and set(access) == set("rwm"):
            rules = [] if not entry["allow"] else [device_rules.EVERY_DEVICE[0]]
            continue
        if not entry["allow"]:
            raise UnsupportedConfig(f"config.json: linux.resources.devices[{i}]: a deny rule "
                                    f"after the first is not supported by minict-oci",
                                    "write the list as deny-all followed by allow rules")
        rules.append(device_rules.DeviceRule(kind, major, minor, access, f"rule {i}"))
    if rules and rules[0] is device_rules.EVERY_DEVICE[0]:
        return None
    made = [device_rules.DeviceRule(d["type"], d.get("major"), d.get("minor"), "rwm", d["path"])
            for d in linux.get("devices", []) if d["type"] in ("c", "b")]
    for rule in device_rules.DEFAULT_RULES:
        if not any(r[:4] == rule[:4] for r in rules):   # (a repeated block is dead code,
            rules.append(rule)                          # which the verifier refuses)
    for rule in made:     # a node the list names already keeps the access it gives
        if not any(r[:3] == rule[:3] for r in rules):
            rules.append(rule)
    return rules


def prepare(kernel: sc.Kernel, config: dict, container_id: str, *,
            within: Path = DEFAULT_ROOT, device_filter: bool = True) -> Cgroup | None:
    """The container's cgroup with its limits and device filter, or None
    where there is no cgroup v2 tree (a limit asked for is then refused).

    `within`: the part of the tree this runtime may write, where it makes
    what is missing above the cgroup (minict run without root: the cgroup
    delegated to the caller). `device_filter`: attach resources.devices as
    an eBPF program (minict run without root cannot: it needs CAP_BPF)."""
    resources = config.get("linux", {}).get("resources") or {}
    limits = limits_of(resources)
    if not v2_available(within):
        if limits is not None:
            raise CgroupUnavailable("config.json: linux.resources asks for limits, and this host "
                                    "has no cgroup v2 tree minict-oci can use",
                                    "run on a cgroup v2 host (the VM: vagrant up), or drop the "
                                    "limits (podman: --cgroups=disabled)")
        kernel.explain(f"No cgroup v2 tree at {within} this runtime may write: the container "
                       f"gets no cgroup")
        return None
    path = path_for(config, container_id, DEFAULT_ROOT)   # (a test's fake tree: patched)
    if not path.is_relative_to(within) or path == Path(within):
        raise UnsupportedConfig(f"config.json: linux.cgroupsPath names {path}, outside {within}, "
                                f"the part of the cgroup tree this runtime may write",
                                f"name a cgroup under {within}")
    cgroup = Cgroup.create_at(path, limits, within, kernel.explain,
                              sentence=f"Create the cgroup of container {container_id}")
    try:
        rules = device_rules_of(config.get("linux", {})) if device_filter else None
        if rules is not None:
            kernel.attach_device_program(path, assemble(rules),
                                         "linux.resources.devices: the container's device filter, "
                                         "an eBPF program run at every open and mknod of a device "
                                         "node in the cgroup")
    except OSError as exc:
        cgroup.destroy()
        raise CgroupUnavailable(f"the kernel refused the container's device filter "
                                f"(linux.resources.devices): {exc.strerror}",
                                "use a kernel with CONFIG_CGROUP_BPF (Debian's has it)") from None
    except BaseException:
        cgroup.destroy()
        raise
    return cgroup


def freeze(kernel: sc.Kernel, root: Path, container_id: str, frozen: bool) -> None:
    """pause / resume: the cgroup v2 freezer (cgroup.freeze)."""
    record = state.load(root, container_id)
    if not record.cgroup:
        raise CgroupUnavailable(f"container {container_id} has no cgroup to freeze",
                                "pause and resume need a cgroup v2 host (the VM: vagrant up)")
    current = state.status(root, record)
    if current not in ("running", "paused"):
        raise ContainerStateError(f"container {container_id} is {current}",
                                  "pause and resume take a running container")
    path = Path(record.cgroup) / "cgroup.freeze"
    kernel.explain(f"{'Freeze' if frozen else 'Thaw'} every process of the cgroup",
                   f"write {path} \"{int(frozen)}\"")
    path.write_text("1" if frozen else "0")
    for _ in range(1000):
        if state.status(root, record) == ("paused" if frozen else "running"):
            return
        time.sleep(0.001)


def update(kernel: sc.Kernel, root: Path, container_id: str, resources_text: str) -> None:
    """update --resources FILE: new linux.resources limits for a running container."""
    record = state.load(root, container_id)
    try:
        resources = json.loads(resources_text)
    except ValueError as exc:
        raise BadArgument(f"--resources is not JSON: {exc}",
                          "give linux.resources as JSON, e.g. {\"pids\": {\"limit\": 10}}") \
            from None
    config_file.check_resources(resources)
    limits = limits_of(resources)
    if not record.cgroup:
        raise CgroupUnavailable(f"container {container_id} has no cgroup to update",
                                "update needs a cgroup v2 host (the VM: vagrant up)")
    if limits is not None:
        Cgroup(Path(record.cgroup), kernel.explain).apply(limits)
