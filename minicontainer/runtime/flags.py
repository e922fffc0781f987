"""What each flag of `minict run` means, checked one value at a time.

docker's rules, in one place, for the engine (create.py) to use while it
turns the flags into config.json: a bad value fails here with one line
saying what was wrong and what to write instead, before anything exists.

The three records are what the flags and a GPU plan (gpu.py) add to a
container, before they become config.json's words (bundle.py):

  Bind        a host file or directory at a path in the container (-v,
              --mount, a GPU plan's libraries); its destination need not
              exist in the image (it is made in the container's upper layer)
  Tmpfs       a fresh tmpfs (--tmpfs, --mount type=tmpfs)
  DeviceNode  a device node made in the container's /dev (--device, a
              GPU plan's /dev/nvidia*), and what the device rules allow on it
"""

import os
import re
import stat
from collections import namedtuple
from pathlib import Path

from ..cgroups.devices import check_access
from ..errors import BadArgument
from ..network.config import valid_name as valid_network_name
from . import docker_flags
from .docker_flags import Ulimit


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


def new_container_id() -> str:
    """64 hex digits from the kernel's random source, like docker's ids."""
    return os.urandom(32).hex()


def check_namespace_flags(network, ipc, pid, shm_size, add_host, dns) -> int:
    """--ipc, --pid, --shm-size, --add-host and --dns, with the network
    mode: what docker refuses together is refused here too. Returns the
    size of the container's own /dev/shm in bytes (docker's 64 MiB unless
    --shm-size says otherwise)."""
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
    return DEFAULT_SHM_SIZE if shm_size is None else docker_flags.parse_shm_size(shm_size)


def ulimits_of(texts) -> list[Ulimit]:
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
    (docker's layout), made on first use (by create.py) and kept after the
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


def mounts_of_flags(volumes=(), tmpfs=(), mount=(), binds=(), volumes_dir=None):
    """-v, --tmpfs and --mount (and the binds a GPU plan or --device adds
    without root) as (binds, tmpfs), each destination once."""
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
    return all_binds, all_tmpfs


def devices_of_flags(device=(), devices=()) -> list[DeviceNode]:
    """--device's nodes after `devices` (a GPU plan's), each path once."""
    all_devices = list(devices) + [parse_device(d) for d in device]
    paths = set()
    for dev in all_devices:
        check_device(dev)
        if dev.path in paths:
            raise BadArgument(f"device {dev.path} is given twice",
                              "give each device path in the container once")
        paths.add(dev.path)
    return all_devices
