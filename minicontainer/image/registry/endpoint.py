"""Where a registry's API lives, and whether plain HTTP may be used for it.

A reference names a registry as `host[:port]` ("docker.io",
"localhost:5000"). Two things follow from that name:

- the host that serves the API. Only Docker Hub differs: references say
  `docker.io`, but its API is at `registry-1.docker.io`.
- the URL scheme. Images are code we are about to run, so HTTPS is the
  default and the only choice for the open internet. Plain HTTP is allowed
  for loopback registries, which never leave the machine (docker treats
  127.0.0.0/8 the same way), and for registries the user names insecure
  with `--insecure-registry HOST[:PORT]` or `MINICT_INSECURE_REGISTRIES`
  (comma-separated).

Loopback is decided from the name as written (`localhost`, an IPv4
address in 127.0.0.0/8, `::1`), never from what DNS says: a resolver that
lies must not be able to turn HTTPS off.
"""

import ipaddress
import os

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
# Names docker and its tools use for Docker Hub, in config files and on
# command lines; all mean the registry that references call docker.io.
DOCKER_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io",
                      "registry.hub.docker.com"}
INSECURE_ENV = "MINICT_INSECURE_REGISTRIES"


def normalize_server(text: str) -> str:
    """Reduce what users and config files write for a registry to its
    reference form: `https://index.docker.io/v1/` -> `docker.io`,
    `http://localhost:5000/v2/` -> `localhost:5000`."""
    server = text.strip()
    for scheme in ("https://", "http://"):
        if server.lower().startswith(scheme):
            server = server[len(scheme):]
    server = server.split("/", 1)[0].lower()
    return DOCKER_HUB if server in DOCKER_HUB_ALIASES else server


def api_host(registry: str) -> str:
    """host[:port] that serves the /v2/ API of `registry`."""
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def split_host_port(server: str) -> tuple[str, str | None]:
    """`[::1]:5000` -> ("::1", "5000"); `localhost` -> ("localhost", None)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    if server.count(":") > 1:
        return server, None  # a bare IPv6 address: ports need [brackets]
    host, sep, port = server.rpartition(":")
    if not sep or not port.isdigit():
        return server, None
    return host, port


def is_loopback(server: str) -> bool:
    """Is `server` (host[:port]) a loopback name as written?"""
    host, _ = split_host_port(server)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a DNS name: never trusted to be local


def insecure_registries(extra=()) -> set[str]:
    """The registries the user allowed plain HTTP for: flags plus the env."""
    names = set()
    for item in [*extra, *os.environ.get(INSECURE_ENV, "").split(",")]:
        if item.strip():
            names.add(normalize_server(item))
    return names


def plain_http_allowed(registry: str, extra_insecure=()) -> bool:
    """May we speak plain HTTP to `registry` (as written in a reference)?

    A name given without a port covers every port of that host, as with
    docker's --insecure-registry.
    """
    if is_loopback(registry):
        return True
    registry = normalize_server(registry)   # host names are case-insensitive
    host, _ = split_host_port(registry)
    allowed = insecure_registries(extra_insecure)
    return registry in allowed or host in allowed
