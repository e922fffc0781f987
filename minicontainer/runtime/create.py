"""The engine's half of `minict run`: an image and the flags become a
container, that is, a config.json (for the runtime) and an EngineRecord
(what the engine keeps besides). Nothing is made here; a bad flag fails
with one line before any state exists (lifecycle.run then makes the
container's directory and saves both).

docker's rules for merging an image's config (OCI image-spec config.md:
Entrypoint, Cmd, Env, WorkingDir, User, StopSignal, Labels) with the flags
are kept, one concern at a time:

    the engine's record  name, network, ports, namespaces shared, devices
    the process          command (ENTRYPOINT + CMD), environment, working
                         directory, user (from the image's /etc/passwd),
                         capabilities, rlimits, terminal
    the files            -v, --tmpfs, --mount (named volumes made last)

and written into config.json's words by bundle.py, one function per part.
"""

import os
from pathlib import Path

from ..errors import BadArgument
from ..network.ports import exposed as exposed_ports, parse as parse_port
from . import bundle, docker_flags, flags, rootless
from .capabilities import resolve as resolve_capabilities
from .command import parse_signal
from .engine_record import EngineRecord
from .request import RunRequest
from .syscall_filter import parse_security_opts
from .users import resolve_user


def container_from(image, request: RunRequest, containers_dir: Path, *, gpu=None, limits=None,
                   device_binds=(), volumes_dir=None, host_env=None) -> tuple[EngineRecord, dict]:
    """(the engine's record, config.json) of a new container of `image` as
    `request` asks, to live in containers_dir/<id>. `gpu`: a GPU plan's
    gpu.GpuInjection, or None; `limits`: a validated cgroups Limits, or
    None; `device_binds`: --device as binds, without root; `volumes_dir`:
    where named volumes live, ROOT/volumes; `host_env`: where -e NAME finds
    its value (the caller's environment unless given).

    Raises BadArgument / UnknownUser for anything malformed, before any
    state exists."""
    cfg = image.run_config
    engine = engine_record_of(image, request, cfg, gpu, limits)
    hostname = request.hostname or engine.id[:12]
    if not flags.valid_hostname(hostname):
        raise BadArgument(f"invalid hostname {hostname!r}",
                          "use up to 64 letters, digits, dots and dashes")
    process = process_of(cfg, request, engine, hostname, gpu,
                         os.environ if host_env is None else host_env)
    binds, tmpfs = flags.mounts_of_flags(request.volume, request.tmpfs, request.mount,
                                         (gpu.binds if gpu is not None else []) + list(device_binds),
                                         volumes_dir)
    labels = {**(cfg.get("Labels") or {}),
              **dict(docker_flags.parse_label(text) for text in request.label)}
    config = bundle.config_of(engine, process, hostname=hostname, read_only=request.read_only,
                              binds=binds, tmpfs=tmpfs, labels=labels,
                              record_dir=str(Path(containers_dir) / engine.id),
                              rootless=rootless.active())
    # Named volumes are made last, once every flag has been accepted.
    for bind in binds:
        if volumes_dir is not None and Path(bind.source).is_relative_to(volumes_dir):
            os.makedirs(bind.source, exist_ok=True)
    return engine, config


def engine_record_of(image, request: RunRequest, cfg: dict, gpu, limits) -> EngineRecord:
    """What the engine keeps: the flags about the container's life, network,
    shared namespaces and devices, checked."""
    network = request.network
    if request.name is not None and not flags.valid_name(request.name):
        raise BadArgument(f"invalid container name {request.name!r}",
                          "use 2+ characters from [a-zA-Z0-9_.-], starting with a letter or digit")
    flags.check_network(network)
    ports = [parse_port(p) for p in request.publish] + \
        (exposed_ports(cfg) if request.publish_all else [])
    if ports and (network in ("none", "host") or network.startswith("container:")):
        raise BadArgument(f"-p/-P publish ports of a container's own network; --network {network} "
                          f"has none", "use the default bridge network or one of your own")
    shm_size = flags.check_namespace_flags(network, request.ipc, request.pid, request.shm_size,
                                           request.add_host, request.dns)
    if request.tty and request.interactive and not os.isatty(0):
        raise BadArgument("the input device is not a TTY (-i -t reads a terminal)",
                          "drop -t to pipe input into the container, or run from a terminal")
    return EngineRecord(
        id=flags.new_container_id(), image_ref=request.image, image_id=image.id,
        layer_dirs=[str(p) for p in image.layer_dirs], name=request.name,
        user=request.user if request.user is not None else (cfg.get("User") or ""),
        interactive=request.interactive, detach=request.detach,
        auto_remove=bool(request.auto_remove), init=request.init,
        privileged=request.privileged, seccomp=parse_security_opts(request.security_opt),
        network=network, ports=ports,
        extra_hosts=[docker_flags.parse_add_host(h) for h in request.add_host],
        dns=[docker_flags.parse_dns(d) for d in request.dns],
        ipc=request.ipc, shm_size=shm_size, pid_mode=request.pid,
        stop_signal=parse_signal(cfg.get("StopSignal") or "SIGTERM"),
        devices=flags.devices_of_flags(request.device,
                                       gpu.devices if gpu is not None else ()),
        limits=limits.to_dict() if limits is not None and not limits.is_empty() else {})


def process_of(cfg: dict, request: RunRequest, engine: EngineRecord, hostname: str, gpu,
               host_env) -> dict:
    """config.json's process: the image's command, environment, working
    directory and user, as the flags change them."""
    argv = flags.merge_command(cfg, request.command, request.entrypoint)
    workdir = request.workdir if request.workdir is not None else (cfg.get("WorkingDir") or "/")
    if not workdir.startswith("/"):
        raise BadArgument(f"working directory {workdir!r} is not an absolute path",
                          "give a path starting with /, e.g. -w /tmp")
    account = resolve_user(engine.user, [Path(p) for p in engine.layer_dirs])
    # the GPU plan's variables first: the user's -e comes later and wins
    cli_env = (*gpu.env, *request.env) if gpu is not None else request.env
    env = flags.merge_env(cfg.get("Env") or [], request.env_file, cli_env, host_env)
    keys = {e.split("=", 1)[0] for e in env}
    if "PATH" not in keys:
        env.insert(0, f"PATH={flags.DEFAULT_PATH}")
    env = [e for e in env if not e.startswith("HOSTNAME=")] + [f"HOSTNAME={hostname}"]
    if "HOME" not in keys:
        env.append(f"HOME={account.home}")
    if request.tty and "TERM" not in keys:
        env.append("TERM=xterm")
    if gpu is not None:
        env = gpu.with_library_path(env)
    return bundle.process_of(
        args=argv, env=env, cwd=os.path.normpath(workdir), uid=account.uid, gid=account.gid,
        additional_gids=account.additional_gids,
        capabilities=resolve_capabilities(request.cap_add, request.cap_drop, request.privileged),
        ulimits=flags.ulimits_of(request.ulimit), terminal=request.tty,
        privileged=request.privileged)
