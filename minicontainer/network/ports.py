"""Published ports: what `-p` and `-P` ask for, and which host port each gets.

    -p 8080:80            host port 8080 (every address of the host) -> container port 80/tcp
    -p 127.0.0.1:8080:80  only on that host address
    -p 80                 a free host port, chosen at start
    -p 5353:53/udp        udp
    -P                    every port the image's config lists in ExposedPorts, each on a free port

A host port is checked free when the container starts (by binding it for a
moment); the DNAT rules that publish it (firewall.py) do not hold it, so a
program that binds it later wins for connections to it from outside.
"""

import errno
import ipaddress
import re
import socket
from collections import namedtuple

from ..errors import BadArgument, PortInUse

_SPEC = re.compile(r"^(?:(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}):)?(?P<host>\d*):)?"
                   r"(?P<container>\d+)(?:/(?P<proto>tcp|udp))?$")
USAGE = "write -p [IP:]HOST:CONTAINER[/tcp|udp] or -p CONTAINER, e.g. -p 8080:80"


class PortMapping(namedtuple("PortMapping", "container_port protocol host_port host_ip",
                             defaults=("tcp", 0, ""))):
    """One published port: container_port/protocol on host_ip:host_port
    (host_port 0: a free one, chosen at start; host_ip "": every address)."""
    __slots__ = ()

    def text(self) -> str:
        """As `minict port` and docker print it: 80/tcp -> 0.0.0.0:8080."""
        return f"{self.container_port}/{self.protocol} -> {self.host_ip or '0.0.0.0'}:{self.host_port}"


def parse(text: str) -> PortMapping:
    match = _SPEC.match(text.strip())
    if not match:
        raise BadArgument(f"invalid -p {text!r}", USAGE)
    container = _port(match["container"], text)
    host = _port(match["host"], text) if match["host"] else 0
    ip = match["ip"] or ""
    if ip:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise BadArgument(f"invalid -p {text!r}: {ip} is not an IPv4 address", USAGE) from None
    return PortMapping(container, match["proto"] or "tcp", host, ip)


def exposed(config: dict) -> list[PortMapping]:
    """-P: the image's ExposedPorts ({"80/tcp": {}}), each on a free host port."""
    mappings = []
    for key in sorted((config or {}).get("ExposedPorts") or {}):
        number, _, proto = key.partition("/")
        mappings.append(parse(f"{number}/{proto or 'tcp'}"))
    return mappings


def _port(text: str, spec: str) -> int:
    number = int(text)
    if not 1 <= number <= 65535:
        raise BadArgument(f"invalid -p {spec!r}: port {number} is not between 1 and 65535", USAGE)
    return number


def claim(mapping: PortMapping) -> PortMapping:
    """The mapping with its host port checked free (and chosen, for -p CTR):
    PortInUse when something already holds it."""
    kind = socket.SOCK_STREAM if mapping.protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((mapping.host_ip or "0.0.0.0", mapping.host_port))
        except OSError as exc:
            where = f"{mapping.host_ip or '0.0.0.0'}:{mapping.host_port}/{mapping.protocol}"
            if exc.errno == errno.EADDRNOTAVAIL:
                raise BadArgument(f"-p {mapping.host_ip}:...: {mapping.host_ip} is not an address "
                                  f"of this host", "give one of its addresses, or none") from None
            raise PortInUse(f"-p {mapping.host_port}:{mapping.container_port}: {where} is "
                            f"already in use ({exc.strerror})",
                            "choose another host port, or stop what holds it") from None
        port = probe.getsockname()[1]
    return PortMapping(mapping.container_port, mapping.protocol, port, mapping.host_ip)
