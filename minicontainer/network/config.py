"""Networks: a name, a subnet, a gateway address on a bridge of its own.

    ROOT/networks/<name>/config.json   what `minict network inspect` shows
    ROOT/networks/<name>/leases/       the addresses handed out (ipam.py)

`bridge` is docker's default network: bridge minict0, 10.88.0.0/16. It is
made the first time a container asks for it. Networks that `minict network
create` makes get the next free 10.89.N.0/24 unless --subnet says
otherwise, and a bridge named mct-<name> (a Linux interface name has at
most 15 characters). On user networks, containers find each other by name
(runtime/networking.py writes their /etc/hosts); on `bridge` they do not, as with
docker.
"""

import ipaddress
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from baselib.files import atomic_write

from ..errors import BadArgument, NetworkInUse, NetworkNotFound

DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "minict0"
DEFAULT_SUBNET = "10.88.0.0/16"
USER_SUBNETS = "10.89.{}.0/24"        # the Nth user network, unless --subnet is given
MODES = ("none", "host")              # network modes that are no network


@dataclass(frozen=True)
class Network:
    name: str
    subnet: str          # "10.88.0.0/16"
    gateway: str         # the bridge's own address, the containers' default route
    bridge: str          # the bridge interface on the host
    created: str = ""

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def names_peers(self) -> bool:
        """Do containers on it find each other by name? (docker: user networks only)"""
        return self.name != DEFAULT_NETWORK


def directory(root: Path, name: str) -> Path:
    return Path(root) / "networks" / name


def valid_name(name: str) -> bool:
    return re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}", name) is not None


def load(root: Path, name: str) -> Network:
    """The network called `name`; `bridge` is made on first use."""
    path = directory(root, name) / "config.json"
    try:
        return Network(**json.loads(path.read_text()))
    except FileNotFoundError:
        if name == DEFAULT_NETWORK:
            return _save(root, Network(DEFAULT_NETWORK, DEFAULT_SUBNET, _first_host(DEFAULT_SUBNET),
                                       DEFAULT_BRIDGE, _now()))
        raise NetworkNotFound(f"no such network: {name}",
                              "see minict network ls, or make it: minict network create " + name) \
            from None


def listing(root: Path, with_default: bool = True) -> list[Network]:
    """Every network, `bridge` first (made on the way unless `with_default`
    is False: then only the networks already on disk)."""
    names = {p.name for p in (Path(root) / "networks").glob("*") if (p / "config.json").exists()}
    if with_default:
        names.add(DEFAULT_NETWORK)
    return [load(root, n) for n in sorted(names, key=lambda n: (n != DEFAULT_NETWORK, n))]


def create(root: Path, name: str, subnet: str | None = None) -> Network:
    """`minict network create NAME [--subnet CIDR]`."""
    if not valid_name(name) or name in MODES or name.startswith("container:"):
        raise BadArgument(f"invalid network name {name!r}",
                          "use letters, digits, '_', '.', '-' (and not none, host or bridge)")
    if (directory(root, name) / "config.json").exists() or name == DEFAULT_NETWORK:
        raise BadArgument(f"network {name} already exists", "see minict network ls")
    taken = [ipaddress.ip_network(n.subnet) for n in listing(root)]
    if subnet is None:
        subnet = next((USER_SUBNETS.format(i) for i in range(256)
                       if not any(ipaddress.ip_network(USER_SUBNETS.format(i)).overlaps(t)
                                  for t in taken)), None)
        if subnet is None:
            raise BadArgument("no free 10.89.N.0/24 subnet is left", "give one with --subnet")
    try:
        network = ipaddress.ip_network(subnet)
    except ValueError as exc:
        raise BadArgument(f"--subnet {subnet}: {exc}", "write an IPv4 network, e.g. 10.90.0.0/24") \
            from None
    if network.version != 4 or network.prefixlen > 30:
        raise BadArgument(f"--subnet {subnet}: an IPv4 network of /30 or larger is needed",
                          "e.g. --subnet 10.90.0.0/24")
    overlap = next((t for t in taken if t.overlaps(network)), None)
    if overlap is not None:
        raise BadArgument(f"--subnet {subnet} overlaps {overlap}, which another network uses",
                          "choose another subnet")
    return _save(root, Network(name, str(network), _first_host(str(network)),
                               f"mct-{name}"[:15], _now()))


def remove(root: Path, name: str, in_use: list[str]) -> None:
    """`minict network rm NAME`; `in_use`: the containers attached to it."""
    load(root, name)
    if name == DEFAULT_NETWORK:
        raise BadArgument("the bridge network cannot be removed", "it is minict's default")
    if in_use:
        raise NetworkInUse(f"network {name} is in use by {', '.join(sorted(in_use))}",
                           "remove those containers first (minict rm -f)")
    shutil.rmtree(directory(root, name))


def _save(root: Path, network: Network) -> Network:
    path = directory(root, network.name)
    (path / "leases").mkdir(parents=True, exist_ok=True)
    atomic_write(path / "config.json", json.dumps(asdict(network), indent=1).encode())
    return network


def _first_host(subnet: str) -> str:
    return str(next(ipaddress.ip_network(subnet).hosts()))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
