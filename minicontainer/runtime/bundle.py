"""A container's ContainerSpec as an OCI bundle's config.json: the engine's
half of the engine/runtime split, written out.

Every real engine (podman, containerd, CRI-O) hands its runtime a bundle:
a root filesystem and a config.json in the OCI runtime spec's words. This
module says what minict's flags become in those words, one small function
per concern, so that a student can put `minict run`'s decisions next to
what podman writes, and so that any OCI runtime (minict-oci, runc) can run
the same container: `minict inspect --bundle NAME` prints it.

  process_of     the command, its environment, user, capabilities, rlimits
  mounts_of      /proc, /dev, /sys, /etc files, volumes, tmpfs
  namespaces_of  which namespaces are new and which are shared (--pid host...)
  devices_of     the extra nodes (--device, a GPU plan)
  resources_of   the device rules and the limits (--memory, --pids-limit...)
  security_of    masked and read-only paths, minict's seccomp filter as a profile

`minict run` goes through it: launch.py makes the config at start and
hands it to the runtime's init (child.py runs oci/init.py). What minict
does that config.json has no word for (the overlay root, --init,
--ipc container:'s /dev/shm) child.py adds, and the config names it in
an annotation (org.minict.*), as crun does for its own extensions.
"""

import errno
import os

from ..cgroups.devices import rules_for
from ..cgroups.limits import CPU_PERIOD_US, cpus_to_quota
from .mounts import MASKED_PATHS, READONLY_PATHS
from . import syscall_filter

OCI_VERSION = "1.0.2"
RLIM_INFINITY = 2**64 - 1   # the spec's rlimits are uint64; --ulimit writes -1
ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}


def config_of(spec, record_dir: str, *, cgroups_path: str | None = None, id_map=None,
              console_size: tuple[int, int] | None = None, joined: dict | None = None) -> dict:
    """The whole config.json for `spec`, its root the container's merged overlay.
    `cgroups_path`: the cgroup of its own the runtime makes, shown to it at
    /sys/fs/cgroup (None: it has none; resources.cgroup_home decides);
    `id_map`: minict runs without root (rootless.py), in a user namespace
    with this idmap.IdMap; `console_size`: (rows, columns) of the terminal
    -t relays; `joined`: {type: path} of namespaces the engine made or
    holds already (namespaces_of)."""
    rootless = id_map is not None
    linux = {"namespaces": namespaces_of(spec, joined or {}, user=rootless),
             "devices": devices_of(spec), "resources": resources_of(spec), **security_of(spec)}
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
    if rootless:
        linux["uidMappings"] = mappings_of(id_map.uids)
        linux["gidMappings"] = mappings_of(id_map.gids)
    return {
        "ociVersion": OCI_VERSION,
        "process": process_of(spec, console_size),
        "root": {"path": os.path.join(record_dir, "merged"), "readonly": spec.read_only},
        "hostname": spec.hostname,
        "mounts": mounts_of(spec, record_dir, cgroups_path is not None, rootless),
        "annotations": {**spec.labels, "org.minict.image": spec.image_ref,
                        "org.minict.overlay.lowerdirs": ":".join(reversed(spec.layer_dirs)),
                        **({"org.minict.init": "true"} if spec.init else {}),
                        **({"org.minict.ipc": spec.ipc} if spec.ipc.startswith("container:")
                           else {})},
        "linux": linux,
    }


def process_of(spec, console_size=None) -> dict:
    identity = identity_of(spec.uid, spec.gid, spec.additional_gids, spec.capabilities)
    return {
        "terminal": spec.tty,
        **(console_size_of(console_size) if spec.tty else {}),
        "user": identity["user"],
        "args": list(spec.argv),
        "env": list(spec.env),
        "cwd": spec.workdir,
        "capabilities": identity["capabilities"],
        "rlimits": [{"type": f"RLIMIT_{u.name.upper()}", "soft": _rlimit(u.soft),
                     "hard": _rlimit(u.hard)} for u in spec.ulimits],
        "noNewPrivileges": not spec.privileged,
    }


def identity_of(uid: int, gid: int, additional_gids, capabilities) -> dict:
    """process.user and process.capabilities (minict exec --user: again).
    A user other than root starts with no capability in effect, as in
    docker (moby clears them for a non-root --user): only the bounding set
    keeps the allowed ones, for a setuid program to gain."""
    caps = list(capabilities)
    held = caps if uid == 0 else []
    return {"user": {"uid": uid, "gid": gid, "additionalGids": list(additional_gids)},
            "capabilities": {"bounding": caps, "effective": held, "permitted": held}}


def console_size_of(size: tuple[int, int] | None) -> dict:
    """process.consoleSize from (rows, columns), or nothing when unknown."""
    return {"consoleSize": {"height": size[0], "width": size[1]}} if size else {}


def _rlimit(value: int) -> int:
    return RLIM_INFINITY if value < 0 else value


def mounts_of(spec, record_dir: str, own_cgroup: bool = False, rootless: bool = False) -> list:
    kernel_files = "nosuid", "noexec", "nodev"
    # gid=5 (tty) exists only where it is mapped: not in a one-id user namespace.
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
              *([] if rootless else ["gid=5"])]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": list(kernel_files)},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
        *_shm(spec),
        *_mqueue(spec, rootless),
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": [*kernel_files, *([] if spec.privileged else ["ro"])]},
    ]
    if own_cgroup:
        # Mounted in its own cgroup namespace: the container's cgroup is the root.
        mounts.append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                       "options": [*kernel_files, *([] if spec.privileged else ["ro"])]})
    for name in ("hostname", "hosts", "resolv.conf"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind",
                       "source": os.path.join(record_dir, name), "options": ["rbind", "nodev"]})
    # Shallow destinations first, so /data is mounted before /data/sub.
    asked = [{"destination": b.destination, "type": "bind", "source": b.source,
              "options": ["rbind", *(["ro"] if b.readonly else [])]} for b in spec.binds]
    asked += [{"destination": t.destination, "type": "tmpfs", "source": "tmpfs",
               "options": [o for o in t.options.split(",") if o]} for t in spec.tmpfs]
    return mounts + sorted(asked, key=lambda m: m["destination"].count("/"))


def _shm(spec) -> list:
    """/dev/shm: the host's with --ipc host; with --ipc container:NAME a copy
    of that container's, which child.py attaches (no config.json word)."""
    if spec.ipc == "host":
        return [{"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                 "options": ["rbind"]}]
    if spec.ipc.startswith("container:"):
        return []
    return [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777",
                         f"size={-(-spec.shm_size // 1024)}k"]}]


def _mqueue(spec, rootless: bool) -> list:
    """Only the owner of an IPC namespace's user namespace may mount its
    mqueue: without root, --ipc host binds the host's /dev/mqueue (when it
    has one; without, there is none, and mq_open(3) works all the same)."""
    if rootless and spec.ipc == "host":
        return [{"destination": "/dev/mqueue", "type": "bind", "source": "/dev/mqueue",
                 "options": ["rbind"]}] if os.path.isdir("/dev/mqueue") else []
    return [{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]}]


def namespaces_of(spec, joined: dict, user: bool = False) -> list:
    """--pid host, --ipc host and --network host share the host's (no entry).
    `joined` gives a path to the namespaces that exist already when the
    runtime starts: the network namespace the engine made and plugged into
    its network, or --network container:NAME's; --ipc container:NAME's IPC
    namespace. The engine holds each open and names it by its fd,
    /proc/ENGINE-PID/fd/N (podman pins its own with a bind mount under
    /run/netns, as `ip netns add` does; an fd needs nothing to be
    unmounted). `user`: without root, a user namespace first (its
    mappings: mappings_of)."""
    kinds = ["mount", "uts", "cgroup"]
    if spec.pid_mode != "host":
        kinds.insert(0, "pid")
    if user:
        kinds.insert(0, "user")
    if spec.ipc != "host":    # private, shareable, or container:NAME's (joined)
        kinds.append("ipc")
    if spec.network != "host":
        kinds.append("network")
    return [{"type": kind, **({"path": joined[kind]} if kind in joined else {})}
            for kind in kinds]


def mappings_of(ranges) -> list:
    """An idmap.IdMap's (inside, outside, count) ranges in the spec's words."""
    return [{"containerID": inside, "hostID": outside, "size": count}
            for inside, outside, count in ranges]


def devices_of(spec) -> list:
    return [{"path": d.path, "type": d.type, "major": d.major, "minor": d.minor,
             "fileMode": d.mode, "uid": d.uid, "gid": d.gid} for d in spec.devices]


def resources_of(spec) -> dict:
    """The device rules (cgroups/devices.py: runc's defaults, then --device
    and a GPU plan's nodes) as "deny everything, then allow each", and the
    limits. --privileged allows every device."""
    if spec.privileged:
        resources = {"devices": [{"allow": True, "access": "rwm"}]}
    else:
        resources = {"devices": [{"allow": False, "access": "rwm"},
                                 *(_allowed(rule) for rule in rules_for(spec.devices))]}
    limits = spec.resource_limits()
    if limits is not None:
        resources.update(limits_in_spec_words(limits))
    return resources


def limits_in_spec_words(limits) -> dict:
    """A cgroups.limits.Limits as linux.resources' groups (UNLIMITED is -1
    in both). oci/cgroup.py limits_of reads them back into the same Limits.
    --cpu-weight has no field of its own (cpu.shares is cgroup v1's word),
    so it goes in `unified`, the spec's map of raw cgroup v2 files."""
    memory = {"limit": limits.memory, "reservation": limits.memory_reservation,
              "swap": limits.memory_swap}
    cpu = {"shares": limits.cpu_shares, "cpus": limits.cpuset_cpus}
    if limits.cpus is not None and limits.cpus > 0:
        cpu.update(quota=cpus_to_quota(limits.cpus), period=CPU_PERIOD_US)
    block_io = {
        "throttleReadBpsDevice": [{"major": d.major, "minor": d.minor, "rate": d.read_bps}
                                  for d in limits.devices if d.read_bps is not None],
        "throttleWriteBpsDevice": [{"major": d.major, "minor": d.minor, "rate": d.write_bps}
                                   for d in limits.devices if d.write_bps is not None]}
    groups = {"memory": _given(memory), "cpu": _given(cpu),
              "pids": _given({"limit": limits.pids_limit}), "blockIO": _given(block_io)}
    if limits.cpu_weight is not None and limits.cpu_shares is None:
        groups["unified"] = {"cpu.weight": str(limits.cpu_weight)}
    return {name: group for name, group in groups.items() if group}


def _given(group: dict) -> dict:
    return {key: value for key, value in group.items() if value not in (None, [])}


def _allowed(rule) -> dict:
    """One cgroups.devices.DeviceRule as an allow entry (no major or minor: any)."""
    entry = {"allow": True, "type": rule.type, "major": rule.major, "minor": rule.minor,
             "access": rule.access}
    return {key: value for key, value in entry.items() if value is not None}


def security_of(spec) -> dict:
    if spec.privileged:
        return {}
    part = {"maskedPaths": list(MASKED_PATHS), "readonlyPaths": list(READONLY_PATHS)}
    if syscall_filter.confined(spec):
        part["seccomp"] = seccomp_profile(spec.capabilities)
    return part


def seccomp_profile(capabilities) -> dict:
    """minict's deny list (runtime/syscall_filter.py) in the runtime spec's
    words: allow by default; EPERM for the listed calls; clone with a
    namespace flag EPERM (an argument comparison); clone3 ENOSYS."""
    plan = syscall_filter.plan_for(capabilities)
    rules = [{"names": list(plan.denied), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM}]
    if plan.clone_checked:
        for flag in syscall_filter.NAMESPACE_FLAGS:
            rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": errno.EPERM,
                          "args": [{"index": 0, "value": flag, "valueTwo": flag,
                                    "op": "SCMP_CMP_MASKED_EQ"}]})
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    return {"defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ARCHES.get(os.uname().machine, []), "syscalls": rules}

