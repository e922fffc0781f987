"""A container as an OCI bundle's config.json: the engine's half of the
engine/runtime split, written out.

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

create.py calls them when the container is made, and the config.json
they write is saved in the container's directory: from then on it is the
container (the engine keeps only what it has no field for: EngineRecord).
At each start, for_start adds what only the start knows (the network
namespace's path, the cgroup, without root the user namespace's maps)
and launch.py hands it to the runtime's init (child.py runs oci/init.py).
What minict does that config.json has no word for (the overlay root,
--init, --ipc container:'s /dev/shm) child.py adds, and the config names
it in an annotation (org.minict.*), as crun does for its own extensions.
"""

import copy
import errno
import os

from ..cgroups.devices import rules_for
from ..cgroups.limits import CPU_PERIOD_US, cpus_to_quota
from .mounts import MASKED_PATHS, READONLY_PATHS
from . import capabilities, syscall_filter

OCI_VERSION = "1.0.2"
RLIM_INFINITY = 2**64 - 1   # the spec's rlimits are uint64; --ulimit writes -1
ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}
KERNEL_FILES = ("nosuid", "noexec", "nodev")


def config_of(engine, process: dict, *, hostname: str, read_only: bool, binds, tmpfs,
              labels: dict, record_dir: str, rootless: bool = False) -> dict:
    """config.json as create.py writes it when the container is made, its
    root the container's merged overlay in `record_dir`. `engine`: the
    EngineRecord (its namespaces, devices, limits, privileges); `rootless`:
    minict runs without root (rootless.py)."""
    return {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": os.path.join(record_dir, "merged"), "readonly": read_only},
        "hostname": hostname,
        "mounts": mounts_of(engine, record_dir, binds, tmpfs, rootless=rootless),
        "annotations": {**labels, "org.minict.image": engine.image_ref,
                        "org.minict.overlay.lowerdirs": ":".join(reversed(engine.layer_dirs)),
                        **({"org.minict.init": "true"} if engine.init else {}),
                        **({"org.minict.ipc": engine.ipc} if engine.ipc.startswith("container:")
                           else {})},
        "linux": {"namespaces": namespaces_of(engine, {}),
                  "devices": devices_of(engine.devices), "resources": resources_of(engine),
                  **security_of(engine, process["capabilities"]["bounding"])},
    }


def for_start(saved: dict, engine, *, cgroups_path: str | None = None, id_map=None,
              console_size: tuple[int, int] | None = None, joined: dict | None = None,
              nodev: bool = False) -> dict:
    """The saved config.json with what only this start knows, for the
    runtime: `joined`, {type: path} of the namespaces the engine made or
    holds already (namespaces_of); `cgroups_path`, the cgroup of its own the
    runtime makes, shown to it at /sys/fs/cgroup (None: it has none;
    resources.cgroup_home decides); the limits as they are now (`minict
    update` may have changed them); `id_map`, without root the user
    namespace's idmap.IdMap; `console_size`, (rows, columns) of the
    terminal -t relays; `nodev`, no device controller guards it, so no
    CAP_MKNOD either (device_access.py)."""
    config = copy.deepcopy(saved)
    linux, process = config["linux"], config["process"]
    linux["namespaces"] = namespaces_of(engine, joined or {}, user=id_map is not None)
    linux["resources"] = resources_of(engine)
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
        after_sys = next(i for i, m in enumerate(config["mounts"]) if m["destination"] == "/sys")
        config["mounts"].insert(after_sys + 1, _cgroup_mount(engine))
    if id_map is not None:
        linux["uidMappings"] = mappings_of(id_map.uids)
        linux["gidMappings"] = mappings_of(id_map.gids)
    process.pop("consoleSize", None)
    if process["terminal"]:
        process.update(console_size_of(console_size))
    if nodev:
        process["capabilities"] = capabilities.without("CAP_MKNOD", process["capabilities"])
        linux.update(security_of(engine, process["capabilities"]["bounding"]))
    return config


def process_of(*, args, env, cwd: str, uid: int, gid: int, additional_gids=(), capabilities=(),
               ulimits=(), terminal: bool = False, privileged: bool = False) -> dict:
    identity = identity_of(uid, gid, additional_gids, capabilities)
    return {
        "terminal": terminal,
        "user": identity["user"],
        "args": list(args),
        "env": list(env),
        "cwd": cwd,
        "capabilities": identity["capabilities"],
        "rlimits": [{"type": f"RLIMIT_{u.name.upper()}", "soft": _rlimit(u.soft),
                     "hard": _rlimit(u.hard)} for u in ulimits],
        "noNewPrivileges": not privileged,
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


def mounts_of(engine, record_dir: str, binds=(), tmpfs=(), own_cgroup: bool = False,
              rootless: bool = False) -> list:
    # gid=5 (tty) exists only where it is mapped: not in a one-id user namespace.
    devpts = ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
              *([] if rootless else ["gid=5"])]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": list(KERNEL_FILES)},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
        *_shm(engine),
        *_mqueue(engine, rootless),
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": [*KERNEL_FILES, *([] if engine.privileged else ["ro"])]},
        *([_cgroup_mount(engine)] if own_cgroup else []),
    ]
    for name in ("hostname", "hosts", "resolv.conf"):
        mounts.append({"destination": f"/etc/{name}", "type": "bind",
                       "source": os.path.join(record_dir, name), "options": ["rbind", "nodev"]})
    # Shallow destinations first, so /data is mounted before /data/sub.
    asked = [{"destination": b.destination, "type": "bind", "source": b.source,
              "options": ["rbind", *(["ro"] if b.readonly else [])]} for b in binds]
    asked += [{"destination": t.destination, "type": "tmpfs", "source": "tmpfs",
               "options": [o for o in t.options.split(",") if o]} for t in tmpfs]
    return mounts + sorted(asked, key=lambda m: m["destination"].count("/"))


def _cgroup_mount(engine) -> dict:
    """Mounted in its own cgroup namespace: the container's cgroup is the root."""
    return {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": [*KERNEL_FILES, *([] if engine.privileged else ["ro"])]}


def _shm(engine) -> list:
    """/dev/shm: the host's with --ipc host; with --ipc container:NAME a copy
    of that container's, which child.py attaches (no config.json word)."""
    if engine.ipc == "host":
        return [{"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                 "options": ["rbind"]}]
    if engine.ipc.startswith("container:"):
        return []
    return [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777",
                         f"size={-(-engine.shm_size // 1024)}k"]}]


def _mqueue(engine, rootless: bool) -> list:
    """Only the owner of an IPC namespace's user namespace may mount its
    mqueue: without root, --ipc host binds the host's /dev/mqueue (when it
    has one; without, there is none, and mq_open(3) works all the same)."""
    if rootless and engine.ipc == "host":
        return [{"destination": "/dev/mqueue", "type": "bind", "source": "/dev/mqueue",
                 "options": ["rbind"]}] if os.path.isdir("/dev/mqueue") else []
    return [{"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]}]


def namespaces_of(engine, joined: dict, user: bool = False) -> list:
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
    if engine.pid_mode != "host":
        kinds.insert(0, "pid")
    if user:
        kinds.insert(0, "user")
    if engine.ipc != "host":    # private, shareable, or container:NAME's (joined)
        kinds.append("ipc")
    if engine.network != "host":
        kinds.append("network")
    return [{"type": kind, **({"path": joined[kind]} if kind in joined else {})}
            for kind in kinds]


def asked_mounts(config: dict) -> list:
    """The mounts the flags asked for (-v, --tmpfs, --mount, a GPU plan's):
    those after /etc/resolv.conf, the last that every container has."""
    mounts = config["mounts"]
    last = max(i for i, m in enumerate(mounts) if m["destination"] == "/etc/resolv.conf")
    return mounts[last + 1:]


def labels_of(config: dict) -> dict:
    """The image's LABELs and --label: the annotations that are not minict's."""
    return {key: value for key, value in config.get("annotations", {}).items()
            if not key.startswith("org.minict.")}


def ulimits_shown(process: dict) -> list:
    """process.rlimits as docker's inspect shows --ulimit (-1: unlimited)."""
    return [{"Name": r["type"].removeprefix("RLIMIT_").lower(),
             "Soft": -1 if r["soft"] == RLIM_INFINITY else r["soft"],
             "Hard": -1 if r["hard"] == RLIM_INFINITY else r["hard"]}
            for r in process.get("rlimits", [])]


def mappings_of(ranges) -> list:
    """An idmap.IdMap's (inside, outside, count) ranges in the spec's words."""
    return [{"containerID": inside, "hostID": outside, "size": count}
            for inside, outside, count in ranges]


def devices_of(devices) -> list:
    """flags.DeviceNode records as linux.devices: the nodes the runtime makes."""
    return [{"path": d.path, "type": d.type, "major": d.major, "minor": d.minor,
             "fileMode": d.mode, "uid": d.uid, "gid": d.gid} for d in devices]


def resources_of(engine) -> dict:
    """The device rules (cgroups/devices.py: runc's defaults, then --device
    and a GPU plan's nodes) as "deny everything, then allow each", and the
    limits. --privileged allows every device."""
    if engine.privileged:
        resources = {"devices": [{"allow": True, "access": "rwm"}]}
    else:
        resources = {"devices": [{"allow": False, "access": "rwm"},
                                 *(_allowed(rule) for rule in rules_for(engine.devices))]}
    limits = engine.resource_limits()
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


def security_of(engine, capabilities) -> dict:
    """Masked and read-only paths, and the seccomp filter the capabilities
    leave (none with --privileged or --security-opt seccomp=unconfined)."""
    if engine.privileged:
        return {}
    part = {"maskedPaths": list(MASKED_PATHS), "readonlyPaths": list(READONLY_PATHS)}
    if syscall_filter.confined(engine):
        part["seccomp"] = seccomp_profile(capabilities)
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

