"""ContainerSpec: what one container will be, decided and checked once.

docs/ARCHITECTURE.md's data flow puts this between the image store and the runtime:
the image config (OCI image-spec config.md: Entrypoint, Cmd, Env,
WorkingDir, User, StopSignal) is merged with the command-line flags the
way `docker run` merges them, and every flag is validated here, before
anything is created. The runtime then trusts the spec: a bad volume, env
or user spec fails here with one line, leaving nothing behind.

The spec is saved as the container's config.json, so `minict start` runs
the same container again and `minict inspect` shows what was decided.

Two lists are deliberately general, for `--gpu-plan` (hpcshim's Plan):
`binds` are (source, destination, readonly) for files and directories
whose destination need not exist in the image (it is created in the
container's upper layer), and `devices` are device nodes made in the
container's /dev.

`limits` holds the resource limits (`--memory`, `--cpus`...) as the plain
dict of minicontainer.cgroups.limits.Limits.to_dict(), already validated;
empty when none was asked (resource_limits() gives the Limits back).
"""

import dataclasses
import os
import re
import signal
import stat
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path

from ..cgroups.devices import check_access
from ..cgroups.limits import Limits
from ..errors import BadArgument
from ..network.config import valid_name as valid_network_name
from ..network.ports import PortMapping, exposed as exposed_ports, parse as parse_port
from .capabilities import resolve as resolve_capabilities
from .command import parse_signal
from . import docker_flags
from .docker_flags import Ulimit
from .syscall_filter import DEFAULT as DEFAULT_SECCOMP, parse_security_opts
from .users import resolve_user

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# --network: "bridge" (the default network), "none" (loopback only), "host",
# "container:NAME" (another container's network stack), or a network that
# `minict network create` made (checked when the container starts).
SPECIAL_NETWORKS = ("bridge", "none", "host", "slirp4netns")   # slirp4netns: without root
DEFAULT_SHM_SIZE = 64 * 1024 * 1024   # docker's /dev/shm size


def valid_name(name: str) -> bool:
    """docker's rule for container names."""
    return re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", name) is not None


def valid_hostname(name: str) -> bool:
    """Letters, digits, dots and dashes; at most 64; no dash or dot at either end."""
    return len(name) <= 64 and re.fullmatch(r"[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?",
                                              name) is not None


def valid_env_key(key: str) -> bool:
    return bool(key) and "=" not in key and not any(c.isspace() for c in key)


TMPFS_FLAG_OPTIONS = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev"}
TMPFS_DATA_OPTIONS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"}


class Bind(namedtuple("Bind", "source destination readonly", defaults=(False,))):
    """A host file or directory (source) made visible at `destination` in
    the container, read-only or not."""
    __slots__ = ()


class Tmpfs(namedtuple("Tmpfs", "destination options",
                       defaults=("noexec,nosuid,nodev",))):   # docker's defaults for --tmpfs
    """A fresh tmpfs at `destination`, with mount(8)-style `options`."""
    __slots__ = ()


class DeviceNode(namedtuple("DeviceNode", "path type major minor mode uid gid access",
                            defaults=(0o666, 0, 0, "rwm"))):
    """A device node mknod(2)-ed into the container's /dev tmpfs: its path,
    type "c" (character) or "b" (block), major and minor numbers, mode
    (permission bits) and owner, and what the device controller lets the
    container do with it (`access`, letters from "rwm": read, write, mknod)."""
    __slots__ = ()


@dataclass(kw_only=True)
class ContainerSpec:
    """Everything decided about one container; saved as its config.json
    (fields in this order)."""
    id: str                                   # 64 hex digits
    image_ref: str                            # what the user typed (shown by ps)
    image_id: str                             # config digest (what rmi checks)
    layer_dirs: list[str]                     # bottom layer first
    argv: list[str]                           # the command, Entrypoint + Cmd merged
    env: list[str]                            # "NAME=value" items
    workdir: str = "/"
    user: str = ""                            # as given, for inspect
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    hostname: str = ""
    name: str | None = None                   # None until state.create_record picks one
    tty: bool = False                         # -t
    interactive: bool = False                 # -i
    detach: bool = False                      # -d
    auto_remove: bool = False                 # --rm
    init: bool = False                        # --init
    read_only: bool = False                   # --read-only
    privileged: bool = False
    network: str = "bridge"                   # --network (see SPECIAL_NETWORKS)
    capabilities: list[str] = field(default_factory=list)   # names, e.g. "CAP_CHOWN"
    seccomp: str = DEFAULT_SECCOMP            # "default" filter or "unconfined" (--security-opt)
    binds: list[Bind] = field(default_factory=list)
    tmpfs: list[Tmpfs] = field(default_factory=list)
    devices: list[DeviceNode] = field(default_factory=list)
    stop_signal: int = signal.SIGTERM         # what `minict stop` sends first
    limits: dict = field(default_factory=dict)  # Limits.to_dict(); {} = no limits
    ports: list[PortMapping] = field(default_factory=list)   # -p, -P
    extra_hosts: list[str] = field(default_factory=list)     # --add-host NAME:IP lines
    dns: list[str] = field(default_factory=list)             # --dns nameservers
    ipc: str = "private"                      # --ipc private|shareable|host|container:NAME
    shm_size: int = DEFAULT_SHM_SIZE          # --shm-size, bytes (its own /dev/shm only)
    pid_mode: str = "private"                 # --pid private|host
    ulimits: list[Ulimit] = field(default_factory=list)      # --ulimit
    labels: dict = field(default_factory=dict)               # the image's LABELs, then --label

    def __post_init__(self):
        # Sequences are kept as lists and the limits as a dict, whatever was
        # passed in, so a spec read back from config.json equals the one written.
        for name in ("layer_dirs", "argv", "env", "additional_gids", "capabilities", "binds",
                     "tmpfs", "devices", "ports", "extra_hosts", "dns", "ulimits"):
            setattr(self, name, list(getattr(self, name)))
        self.limits = dict(self.limits or {})
        self.labels = dict(self.labels or {})

    def replace(self, **changes) -> "ContainerSpec":
        """A copy with some fields changed (minict exec's command, user...)."""
        return dataclasses.replace(self, **changes)

    def resource_limits(self) -> Limits | None:
        """The saved limits as a cgroups Limits, or None when none were asked."""
        return Limits.from_dict(self.limits) if self.limits else None

    def to_dict(self) -> dict:
        """The fields as plain JSON types (the records become objects)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("binds", "tmpfs", "devices", "ports", "ulimits"):
            data[name] = [record._asdict() for record in data[name]]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ContainerSpec":
        data = dict(data)
        data["binds"] = [Bind(**b) for b in data.get("binds", [])]
        data["tmpfs"] = [Tmpfs(**t) for t in data.get("tmpfs", [])]
        data["devices"] = [DeviceNode(**d) for d in data.get("devices", [])]
        data["ports"] = [PortMapping(**p) for p in data.get("ports", [])]
        data["ulimits"] = [Ulimit(**u) for u in data.get("ulimits", [])]
        # A key this minict does not know (written by a newer one) is left out.
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def new_container_id() -> str:
    """64 hex digits from the kernel's random source, like docker's ids."""
    return os.urandom(32).hex()


# ---- the merge ----------------------------------------------------------------

def build_spec(image, *, image_ref: str, command=(), entrypoint=None, env=(), env_files=(),
               workdir=None, user=None, hostname=None, volumes=(), tmpfs=(), read_only=False,
               cap_add=(), cap_drop=(), privileged=False, security_opt=(), network="bridge",
               tty=False, interactive=False, detach=False, auto_remove=False, name=None, init=False,
               binds=(), devices=(), device=(), publish=(), publish_all=False, host_env=None,
               limits=None, mount=(), add_host=(), dns=(), ipc="private", shm_size=None,
               pid="private", ulimit=(), label=(), volumes_dir=None) -> ContainerSpec:
    """Merge `image` (a store.Image) with the flags of `minict run`.
    (`device`: the --device values; `devices`: DeviceNodes already made, a GPU plan's;
    `volumes_dir`: where named volumes live, ROOT/volumes.)

    Raises BadArgument / UnknownUser for anything malformed, before any
    state exists. `limits` is a cgroups Limits already validated (or None).
    """
    cfg = image.run_config
    host_env = os.environ if host_env is None else host_env
    layer_dirs = [Path(p) for p in image.layer_dirs]
    container_id = new_container_id()

    if name is not None and not valid_name(name):
        raise BadArgument(f"invalid container name {name!r}",
                          "use 2+ characters from [a-zA-Z0-9_.-], starting with a letter or digit")
    check_network(network)
    ports = [parse_port(p) for p in publish] + (exposed_ports(cfg) if publish_all else [])
    if ports and (network in ("none", "host") or network.startswith("container:")):
        raise BadArgument(f"-p/-P publish ports of a container's own network; --network {network} "
                          f"has none", "use the default bridge network or one of your own")

    shared = _check_namespace_flags(network, ipc, pid, shm_size, add_host, dns)

    if tty and interactive and not os.isatty(0):
        raise BadArgument("the input device is not a TTY (-i -t reads a terminal)",
                          "drop -t to pipe input into the container, or run from a terminal")
    argv = merge_command(cfg, command, entrypoint)
    hostname = hostname or container_id[:12]
    if not valid_hostname(hostname):
        raise BadArgument(f"invalid hostname {hostname!r}",
                          "use up to 64 letters, digits, dots and dashes")

    workdir = workdir if workdir is not None else (cfg.get("WorkingDir") or "/")
    if not workdir.startswith("/"):
        raise BadArgument(f"working directory {workdir!r} is not an absolute path",
                          "give a path starting with /, e.g. -w /tmp")
    workdir = os.path.normpath(workdir)

    user_text = user if user is not None else (cfg.get("User") or "")
    account = resolve_user(user_text, layer_dirs)

    merged_env = merge_env(cfg.get("Env") or [], env_files, env, host_env)
    keys = {e.split("=", 1)[0] for e in merged_env}
    if "PATH" not in keys:
        merged_env.insert(0, f"PATH={DEFAULT_PATH}")
    merged_env = [e for e in merged_env if not e.startswith("HOSTNAME=")]
    merged_env.append(f"HOSTNAME={hostname}")
    if "HOME" not in keys:
        merged_env.append(f"HOME={account.home}")
    if tty and "TERM" not in keys:
        merged_env.append("TERM=xterm")

    all_binds = [parse_volume(v, volumes_dir) for v in volumes] + list(binds)
    all_tmpfs = [parse_tmpfs(t) for t in tmpfs]
    for item in mount:
        kind, *rest = docker_flags.parse_mount(item)
        if kind == "tmpfs":
            all_tmpfs.append(parse_tmpfs(rest[0]))
        elif kind == "volume":
            all_binds.append(Bind(volume_path(rest[0], volumes_dir), rest[1], rest[2]))
        else:
            all_binds.append(Bind(*rest))
    seen = set()
    for dest in [b.destination for b in all_binds] + [t.destination for t in all_tmpfs]:
        if dest in seen:
            raise BadArgument(f"duplicate mount point {dest}", "give each destination once")
        seen.add(dest)
    all_devices = list(devices) + [parse_device(d) for d in device]
    paths = set()
    for dev in all_devices:
        check_device(dev)
        if dev.path in paths:
            raise BadArgument(f"device {dev.path} is given twice",
                              "give each device path in the container once")
        paths.add(dev.path)

    spec = ContainerSpec(
        id=container_id,
        image_ref=image_ref,
        image_id=image.id,
        layer_dirs=[str(p) for p in layer_dirs],
        argv=argv,
        env=merged_env,
        workdir=workdir,
        user=user_text,
        uid=account.uid,
        gid=account.gid,
        additional_gids=account.additional_gids,
        hostname=hostname,
        name=name,
        tty=tty,
        interactive=interactive,
        detach=detach,
        auto_remove=bool(auto_remove),
        init=init,
        read_only=read_only,
        privileged=privileged,
        network=network,
        capabilities=resolve_capabilities(cap_add, cap_drop, privileged),
        seccomp=parse_security_opts(security_opt),
        binds=all_binds,
        tmpfs=all_tmpfs,
        devices=all_devices,
        stop_signal=parse_signal(cfg.get("StopSignal") or "SIGTERM"),
        limits=limits.to_dict() if limits is not None and not limits.is_empty() else {},
        ports=ports,
        extra_hosts=[docker_flags.parse_add_host(h) for h in add_host],
        dns=[docker_flags.parse_dns(d) for d in dns],
        ipc=ipc,
        shm_size=shared.shm_size,
        pid_mode=pid,
        ulimits=_ulimits(ulimit),
        labels={**(cfg.get("Labels") or {}), **dict(docker_flags.parse_label(t) for t in label)},
    )
    # Named volumes are made last, once every flag has been accepted.
    for bind in spec.binds:
        if volumes_dir is not None and Path(bind.source).is_relative_to(volumes_dir):
            os.makedirs(bind.source, exist_ok=True)
    return spec


class _Shared(namedtuple("_Shared", "shm_size")):
    __slots__ = ()


def _check_namespace_flags(network, ipc, pid, shm_size, add_host, dns) -> _Shared:
    """--ipc, --pid, --shm-size, --add-host and --dns, with the network
    mode: what docker refuses together is refused here too."""
    docker_flags.parse_ipc(ipc)
    docker_flags.parse_pid(pid)
    if shm_size is not None and (ipc == "host" or ipc.startswith("container:")):
        raise BadArgument(f"--shm-size sizes a /dev/shm of the container's own; with --ipc {ipc} "
                          f"it shares another's", "drop --shm-size, or use --ipc private")
    borrowed = network.startswith("container:")
    if network == "none" and any(h.endswith(":host-gateway") for h in add_host):
        raise BadArgument("--add-host NAME:host-gateway: with --network none the container "
                          "cannot reach the host", "use the default bridge network, or host")
    if add_host and borrowed:
        raise BadArgument(f"--add-host cannot be used with --network {network}: that container's "
                          f"/etc/hosts is the one", "give --add-host to that container")
    if dns and (borrowed or network == "host"):
        raise BadArgument(f"--dns cannot be used with --network {network}: the resolver is "
                          f"{'the host' if network == 'host' else 'that container'}'s",
                          "use the default bridge network or one of your own")
    size = DEFAULT_SHM_SIZE if shm_size is None else docker_flags.parse_shm_size(shm_size)
    return _Shared(size)


def _ulimits(texts) -> list[Ulimit]:
    """--ulimit, one per resource (a later one for the same name wins, as in docker)."""
    can_raise = docker_flags.may_raise_hard_limits()
    chosen = {}
    for text in texts:
        limit = docker_flags.parse_ulimit(text, can_raise)
        chosen[limit.name] = limit
    return list(chosen.values())


def check_network(network: str) -> None:
    """--network: its form (whether a named network exists is checked at start)."""
    target = network.removeprefix("container:")
    if network in SPECIAL_NETWORKS or (network.startswith("container:") and target) \
            or valid_network_name(network):
        return
    raise BadArgument(f"invalid --network {network!r}",
                      "use bridge, none, host, container:NAME, or a network from "
                      "`minict network create`")


def merge_command(cfg: dict, command, entrypoint) -> list[str]:
    """docker's rule: ENTRYPOINT + CMD, where `--entrypoint` replaces the
    image's ENTRYPOINT and drops its CMD, and a command given on the
    command line replaces CMD."""
    if entrypoint is not None:
        ep = [entrypoint] if entrypoint else []
        cmd = list(command)
    else:
        ep = list(cfg.get("Entrypoint") or [])
        cmd = list(command) if command else list(cfg.get("Cmd") or [])
    argv = ep + cmd
    if not argv:
        raise BadArgument("no command given, and the image has no Entrypoint or Cmd",
                          "add the command after the image name, e.g. minict run IMAGE sh")
    return argv


def merge_env(image_env, env_files, cli_env, host_env) -> list[str]:
    """Image Env, then --env-file, then -e: later wins, order kept."""
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    for path in env_files:
        for item in read_env_file(path):
            _apply_env(merged, item, host_env, f"in {path}")
    for item in cli_env:
        _apply_env(merged, item, host_env, "in -e")
    return [f"{k}={v}" for k, v in merged.items()]


def _apply_env(merged, item, host_env, where):
    key, has_value, value = item.partition("=")
    if not valid_env_key(key):
        raise BadArgument(f"invalid environment variable {item!r} {where}",
                          "write NAME=value, or NAME alone to copy it from your environment")
    if has_value:
        merged[key] = value
    elif key in host_env:
        merged[key] = host_env[key]   # `-e NAME` copies the caller's value, as docker does


def read_env_file(path) -> list[str]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BadArgument(f"cannot read env file {path}: {exc.strerror}",
                          "give a readable file of NAME=value lines") from None
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def parse_volume(text: str, volumes_dir=None) -> Bind:
    """`-v HOST:CONTAINER[:ro|rw]`: a bind mount of an existing host path;
    `-v NAME:CONTAINER`: a named volume (volume_path)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise BadArgument(f"invalid volume {text!r}", "write -v /host/path:/container/path[:ro]")
    source, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise BadArgument(f"invalid volume mode {mode!r} in {text!r}", "use ro or rw")
    if not dest.startswith("/") or os.path.normpath(dest) == "/":
        raise BadArgument(f"volume destination {dest!r} must be an absolute path other than /",
                          "e.g. -v /srv/data:/data")
    if not source.startswith("/"):
        return Bind(source=volume_path(source, volumes_dir), destination=os.path.normpath(dest),
                    readonly=(mode == "ro"))
    if not os.path.exists(source):
        raise BadArgument(f"volume source {source} does not exist",
                          "create it first: minict does not create host paths")
    return Bind(source=os.path.realpath(source), destination=os.path.normpath(dest),
                readonly=(mode == "ro"))


def volume_path(name: str, volumes_dir) -> str:
    """A named volume: a directory of minict's store, ROOT/volumes/NAME/_data
    (docker's layout), made on first use (by build_spec) and kept after the
    container goes."""
    if volumes_dir is None or not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise BadArgument(f"invalid volume name {name!r}",
                          "name a volume with letters, digits, _ . - (e.g. -v data:/data), "
                          "or give a host path starting with /")
    return str(Path(volumes_dir) / name / "_data")


def parse_tmpfs(text: str) -> Tmpfs:
    """`--tmpfs /path[:opt,opt]` with mount(8)-style options."""
    dest, _, options = text.partition(":")
    if not dest.startswith("/") or os.path.normpath(dest) == "/":
        raise BadArgument(f"invalid tmpfs destination {dest!r}", "give an absolute path, e.g. --tmpfs /run")
    opts = [o for o in options.split(",") if o] if options else []
    for opt in opts:
        key = opt.split("=", 1)[0]
        if opt not in TMPFS_FLAG_OPTIONS and key not in TMPFS_DATA_OPTIONS:
            raise BadArgument(f"unknown tmpfs option {opt!r}",
                              "use size=, mode=, uid=, gid=, nr_inodes=, ro, noexec, nosuid, nodev")
    defaults = ["noexec", "nosuid", "nodev"]
    for opt in opts:  # an explicit exec/suid/dev replaces the matching default
        if opt in ("exec", "suid", "dev"):
            defaults.remove("no" + opt)
    merged = defaults + [o for o in opts if o not in ("exec", "suid", "dev")]
    return Tmpfs(destination=os.path.normpath(dest), options=",".join(merged))


def parse_device(text: str) -> DeviceNode:
    """`--device HOST[:CONTAINER][:PERMISSIONS]`, as docker takes it: the
    host's device node HOST is made at CONTAINER (default: the same path),
    with the host node's type, numbers, mode and owner, and the device
    controller allows PERMISSIONS on it (letters from rwm; default all)."""
    usage = "write --device /dev/HOST[:/dev/CONTAINER][:rwm], e.g. --device /dev/loop0"
    parts = text.split(":")
    if len(parts) > 3 or not all(parts):
        raise BadArgument(f"invalid --device {text!r}", usage)
    host, container, access = parts[0], parts[0], "rwm"
    if len(parts) == 2 and not parts[1].startswith("/"):
        access = parts[1]
    elif len(parts) >= 2:
        container = parts[1]
        access = parts[2] if len(parts) == 3 else access
    if not check_access(access):
        raise BadArgument(f"--device {text}: permissions {access!r} are not letters from rwm",
                          "r: read, w: write, m: mknod; e.g. --device /dev/loop0:rw")
    try:
        st = os.stat(host)
    except OSError as exc:
        raise BadArgument(f"--device {host}: {exc.strerror}",
                          "give a device node of this host, e.g. --device /dev/loop0") from None
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise BadArgument(f"--device {host} is not a device node",
                          "give a character or block device, e.g. --device /dev/loop0 "
                          "(use -v for files and directories)")
    if not container.startswith("/dev/") or os.path.normpath(container) != container:
        raise BadArgument(f"--device {text}: the path in the container must be under /dev/",
                          usage)
    return DeviceNode(path=container, type="c" if stat.S_ISCHR(st.st_mode) else "b",
                      major=os.major(st.st_rdev), minor=os.minor(st.st_rdev),
                      mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, access=access)


def check_device(dev: DeviceNode) -> None:
    if dev.type not in ("c", "b") or not dev.path.startswith("/dev/") \
            or not check_access(dev.access):
        raise BadArgument(f"invalid device node {dev.path} ({dev.type}, {dev.access})",
                          "device nodes go under /dev, are of type c or b, and their access "
                          "is letters from rwm")
