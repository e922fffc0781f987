"""The `docker run` flags course material uses, read as docker reads them.

    --ulimit NAME=SOFT[:HARD]    memlock=-1, stack=67108864, nofile=1024:4096
    --mount type=bind|tmpfs|volume,source=...,target=...[,readonly]
    --add-host NAME:IP           (IP may be host-gateway: the network's gateway)
    --dns IP                     --label KEY=VALUE
    --ipc private|shareable|host|container:NAME
    --pid host                   --shm-size SIZE
    --gpus all|N|device=0,2      docker's spelling of --gpu=nvidia (runtime/gpu.py)

Each parser raises BadArgument with one line saying what was wrong, before
anything is made; create.py puts the results in config.json and the
engine's record.
"""

import ipaddress
import os
import resource
from collections import namedtuple

from ..cgroups.units import parse_size
from ..errors import BadArgument


def size_of(text: str, flag: str) -> int:
    """A docker size (64m, 1g) given to `flag`, in bytes."""
    try:
        size = parse_size(text)
    except ValueError:
        size = 0
    if size <= 0:
        raise BadArgument(f"invalid {flag} {text!r}", f"give a size, e.g. {flag} 64m")
    return size


class Ulimit(namedtuple("Ulimit", "name soft hard")):
    """One resource limit for the container's processes (-1: unlimited)."""
    __slots__ = ()


# --ulimit names -> the resource(2) limits (setrlimit(2) lists them)
ULIMITS = {
    "core": resource.RLIMIT_CORE, "cpu": resource.RLIMIT_CPU, "data": resource.RLIMIT_DATA,
    "fsize": resource.RLIMIT_FSIZE,
    "memlock": resource.RLIMIT_MEMLOCK, "msgqueue": resource.RLIMIT_MSGQUEUE,
    "nice": resource.RLIMIT_NICE, "nofile": resource.RLIMIT_NOFILE,
    "nproc": resource.RLIMIT_NPROC, "rss": resource.RLIMIT_RSS,
    "rtprio": resource.RLIMIT_RTPRIO, "rttime": resource.RLIMIT_RTTIME,
    "sigpending": resource.RLIMIT_SIGPENDING, "stack": resource.RLIMIT_STACK,
    "as": resource.RLIMIT_AS,
}


CAP_SYS_RESOURCE = 24   # <linux/capability.h>


def may_raise_hard_limits() -> bool:
    """Does minict hold CAP_SYS_RESOURCE (its effective set, /proc/self/status),
    the capability setrlimit(2) needs to raise a hard limit?"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def parse_ulimit(text: str, can_raise_hard: bool) -> Ulimit:
    """`--ulimit NAME=SOFT[:HARD]` (HARD defaults to SOFT). A hard limit above
    minict's own is refused here unless minict may raise it (CAP_SYS_RESOURCE):
    the kernel would refuse it half-way through the start."""
    name, sep, values = text.partition("=")
    usage = "write --ulimit NAME=SOFT[:HARD], e.g. --ulimit nofile=1024:4096 or memlock=-1"
    if not sep or name not in ULIMITS:
        raise BadArgument(f"invalid --ulimit {text!r}",
                          f"{usage}; names: {', '.join(sorted(ULIMITS))}")
    soft_text, _, hard_text = values.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if hard_text else soft
    except ValueError:
        raise BadArgument(f"invalid --ulimit {text!r}: not a number", usage) from None
    if soft < -1 or hard < -1:
        raise BadArgument(f"invalid --ulimit {text!r}: -1 (unlimited) is the only negative value",
                          usage)
    if hard != -1 and (soft == -1 or soft > hard):
        raise BadArgument(f"--ulimit {text}: the soft limit is above the hard one", usage)
    own_hard = resource.getrlimit(ULIMITS[name])[1]
    above = own_hard != resource.RLIM_INFINITY and (hard == -1 or hard > own_hard)
    if above and not can_raise_hard:
        shown = "unlimited" if hard == -1 else str(hard)
        raise BadArgument(f"--ulimit {text}: the hard limit {shown} is above minict's own "
                          f"({own_hard}), and raising it needs CAP_SYS_RESOURCE",
                          f"ask for at most {own_hard}, or run minict where root may raise it")
    return Ulimit(name, soft, hard)


def parse_add_host(text: str) -> str:
    """`--add-host NAME:IP` -> "NAME:IP" (IP may be host-gateway)."""
    name, sep, address = text.partition(":")
    if not sep or not name or not address:
        raise BadArgument(f"invalid --add-host {text!r}", "write --add-host NAME:IP, e.g. "
                                                          "db:10.0.0.5 or host.docker.internal:host-gateway")
    if address != "host-gateway":
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise BadArgument(f"invalid --add-host {text!r}: {address} is not an IP address",
                              "write --add-host NAME:IP") from None
    return f"{name}:{address}"


def parse_dns(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise BadArgument(f"invalid --dns {text!r}: not an IP address",
                          "give a nameserver's address, e.g. --dns 9.9.9.9") from None


def parse_label(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    if not key:
        raise BadArgument(f"invalid --label {text!r}", "write --label KEY=VALUE")
    return key, value


def parse_ipc(text: str) -> str:
    if text in ("private", "shareable", "host") or (text.startswith("container:") and text[10:]):
        return text
    raise BadArgument(f"invalid --ipc {text!r}", "use private, shareable, host or container:NAME")


def parse_pid(text: str) -> str:
    if text in ("private", "host"):
        return text
    raise BadArgument(f"invalid --pid {text!r}", "use host (or private, the default)")


def parse_shm_size(text: str) -> int:
    return size_of(text, "--shm-size")


def parse_mount(text: str) -> tuple:
    """`--mount type=bind|tmpfs|volume,...` -> ("bind", source, target, readonly),
    ("volume", name, target, readonly) or ("tmpfs", the --tmpfs text)."""
    usage = ("write --mount type=bind,source=/host,target=/ctr[,readonly], "
             "type=tmpfs,target=/ctr[,tmpfs-size=64m], or type=volume,source=NAME,target=/ctr")
    fields = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if key in ("readonly", "ro") and not sep:
            value = "true"
        elif not sep:
            raise BadArgument(f"invalid --mount {text!r}: {part!r} is not KEY=VALUE", usage)
        fields[{"src": "source", "dst": "target", "destination": "target",
                "ro": "readonly"}.get(key, key)] = value
    kind = fields.pop("type", "volume")
    target = fields.pop("target", "")
    readonly = fields.pop("readonly", "false").lower() in ("true", "1", "yes")
    if not target.startswith("/") or os.path.normpath(target) == "/":
        raise BadArgument(f"invalid --mount {text!r}: target must be an absolute path other than /",
                          usage)
    target = os.path.normpath(target)
    if kind == "tmpfs":
        options = [f"size={size_of(fields.pop('tmpfs-size'), '--mount tmpfs-size')}"] \
            if "tmpfs-size" in fields else []
        if "tmpfs-mode" in fields:
            options.append(f"mode={fields.pop('tmpfs-mode')}")
        _no_more(fields, text, usage)
        return ("tmpfs", f"{target}:{','.join(options + (['ro'] if readonly else []))}")
    source = fields.pop("source", "")
    fields.pop("bind-propagation", None)
    _no_more(fields, text, usage)
    if kind == "bind":
        if not source.startswith("/") or not os.path.exists(source):
            raise BadArgument(f"invalid --mount {text!r}: source {source!r} is not an existing "
                              f"absolute path", "create it first: minict does not create host paths")
        return ("bind", os.path.realpath(source), target, readonly)
    if kind == "volume":
        # An anonymous volume (no source) would outlive the container with
        # nothing to name it by: minict asks for a name instead.
        if not source:
            raise BadArgument(f"--mount {text}: a volume needs a name (source=NAME)",
                              "e.g. --mount type=volume,source=data,target=/data")
        return ("volume", source, target, readonly)
    raise BadArgument(f"invalid --mount {text!r}: type {kind!r}", usage)


def _no_more(fields: dict, text: str, usage: str) -> None:
    if fields:
        raise BadArgument(f"invalid --mount {text!r}: unknown option {next(iter(fields))!r}", usage)


def gpus_environment(value: str, host_env) -> dict:
    """`--gpus VALUE` as the environment hpcshim's selection reads.

    docker's words, read the way a batch job needs them:
      all          the GPUs this job owns: the job's own variables (Slurm's,
                   CUDA_VISIBLE_DEVICES) still decide; outside a job, every GPU
      N, count=N   the first N of the GPUs this process can open
                   (CUDA_VISIBLE_DEVICES=0,...,N-1: with Slurm's device
                   constraint those are the job's)
      device=LIST  these host GPUs, by nvidia-smi index or UUID
                   (NVIDIA_VISIBLE_DEVICES=LIST, docker's meaning)
    """
    from hpcshim.selection import VARIABLES  # --gpus only: hpcshim is a separate program
    word = value.strip().strip('"').strip("'")
    env = dict(host_env)
    if word.startswith("count="):
        word = word[len("count="):]
    if word == "all":
        return env
    env = {k: v for k, v in env.items() if k not in VARIABLES}
    if word.startswith("device="):
        env["NVIDIA_VISIBLE_DEVICES"] = word[len("device="):]
    elif word.isdigit() and int(word) >= 1:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(int(word)))
    else:
        raise BadArgument(f"invalid --gpus {value!r}",
                          "use --gpus all, --gpus N (the first N) or --gpus device=0,2")
    return env
