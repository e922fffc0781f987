"""EngineRecord: what the engine keeps about a container that config.json
has no field for.

`minict run` is an engine driving a runtime (docs/ARCHITECTURE.md). The
runtime's whole contract is the container's config.json, which the engine
writes once, when the container is made (create.py), into the container's
directory: the command, environment, user, capabilities, mounts, devices,
namespaces, limits and seccomp profile all live there, in the OCI runtime
spec's words, and nowhere else.

What the engine needs besides, to look after the container during its
life, is here; podman keeps the same in its database beside the config.json
it writes. Saved in the container's directory as container.json:

    which image       image_ref (as typed: ps), image_id (rmi checks it),
                      layer_dirs (the overlay's lower layers, bottom first)
    its life          name, detach (-d), auto_remove (--rm), interactive
                      (-i: stdin), stop_signal (`minict stop`)
    its network       network, ports (-p, -P), extra_hosts, dns: the
                      engine plugs the network namespace in before the
                      runtime runs (networking.py), and writes /etc/hosts
    namespaces shared ipc (--ipc container:NAME is found by name), pid_mode,
                      shm_size (shown by inspect)
    what the engine   privileged, seccomp (--security-opt), init (--init),
    decides each      devices (--device and a GPU plan's: which device
    start             controller holds their rules, device_access.py),
                      limits (the cgroup's, as `minict update` leaves them;
                      written into config.json's resources at each start)
    inspect           user (the -u text, as given)
"""

import dataclasses
import signal
from dataclasses import dataclass, field

from ..cgroups.limits import Limits
from ..network.ports import PortMapping
from .flags import DEFAULT_SHM_SIZE, DeviceNode
from .syscall_filter import DEFAULT as DEFAULT_SECCOMP


@dataclass(kw_only=True)
class EngineRecord:
    """The engine's own facts about one container (saved as container.json)."""
    id: str                                   # 64 hex digits
    image_ref: str                            # what the user typed (shown by ps)
    image_id: str                             # config digest (what rmi checks)
    layer_dirs: list[str]                     # bottom layer first
    name: str | None = None                   # None until state.create_record picks one
    user: str = ""                            # -u as given, for inspect
    interactive: bool = False                 # -i
    detach: bool = False                      # -d
    auto_remove: bool = False                 # --rm
    init: bool = False                        # --init
    privileged: bool = False
    seccomp: str = DEFAULT_SECCOMP            # "default" filter or "unconfined" (--security-opt)
    network: str = "bridge"                   # --network (flags.SPECIAL_NETWORKS, or a name)
    ports: list[PortMapping] = field(default_factory=list)   # -p, -P
    extra_hosts: list[str] = field(default_factory=list)     # --add-host NAME:IP lines
    dns: list[str] = field(default_factory=list)             # --dns nameservers
    ipc: str = "private"                      # --ipc private|shareable|host|container:NAME
    shm_size: int = DEFAULT_SHM_SIZE          # --shm-size, bytes (its own /dev/shm only)
    pid_mode: str = "private"                 # --pid private|host
    stop_signal: int = signal.SIGTERM         # what `minict stop` sends first
    devices: list[DeviceNode] = field(default_factory=list)  # --device, a GPU plan's
    limits: dict = field(default_factory=dict)  # Limits.to_dict(); {} = no limits

    def __post_init__(self):
        # Lists and a dict, whatever was passed in, so a record read back
        # from container.json equals the one written.
        for name in ("layer_dirs", "ports", "extra_hosts", "dns", "devices"):
            setattr(self, name, list(getattr(self, name)))
        self.limits = dict(self.limits or {})

    def replace(self, **changes) -> "EngineRecord":
        return dataclasses.replace(self, **changes)

    def resource_limits(self) -> Limits | None:
        """The saved limits as a cgroups Limits, or None when none were asked."""
        return Limits.from_dict(self.limits) if self.limits else None

    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("ports", "devices"):
            data[name] = [item._asdict() for item in data[name]]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "EngineRecord":
        data = dict(data)
        data["ports"] = [PortMapping(**p) for p in data.get("ports", [])]
        data["devices"] = [DeviceNode(**d) for d in data.get("devices", [])]
        # A key this minict does not know (written by a newer one) is left out.
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
