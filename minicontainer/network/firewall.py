"""Firewall rules: NAT out of a network, published ports in.

iptables, in chains of minict's own, so that minict never edits a chain
it does not own except to add one jump into each of its own:

    nat    PREROUTING  -m addrtype --dst-type LOCAL -j MINICT-DNAT   (from other hosts)
    nat    OUTPUT      -m addrtype --dst-type LOCAL -j MINICT-DNAT   (from this host)
    nat    POSTROUTING -j MINICT-POSTROUTING
    filter FORWARD     -j MINICT-FORWARD

Every rule carries a comment saying whose it is: `minict:net:<name>` for a
network's own rules (masquerade, forwarding), `minict:<container id>` for a
container's published ports. Taking a container down deletes exactly the
rules tagged with its id, and `minict cleanup` finds what a killed minict
left the same way.

Why iptables and not nftables' JSON (python3-nftables)? iptables is on
every Linux machine minict targets (on Debian 12 it is nftables underneath,
iptables-nft, so the rules coexist with nft's), each rule is one line a
student can paste into a shell to try, and --explain shows exactly that line.

Published ports from the host's own loopback (curl 127.0.0.1:8080): the
connection is DNATed to the container in OUTPUT, and leaves towards the
bridge with source 127.0.0.1, which the kernel drops unless the bridge has
route_localnet=1; its source is then masqueraded to the bridge's address.
route_localnet is set on the bridge only: set on all interfaces it lets
other machines on the network reach services bound to 127.0.0.1
(CVE-2020-8558).
"""

import shlex

from .config import Network
from .ports import PortMapping

DNAT = "MINICT-DNAT"
POSTROUTING = "MINICT-POSTROUTING"
FORWARD = "MINICT-FORWARD"

# (table, chain, the rule that jumps to it from the built-in chain)
JUMPS = [
    ("nat", DNAT, ["PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT]),
    ("nat", DNAT, ["OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT]),
    ("nat", POSTROUTING, ["POSTROUTING", "-j", POSTROUTING]),
    ("filter", FORWARD, ["FORWARD", "-j", FORWARD]),
]


def network_tag(network: Network) -> str:
    return f"minict:net:{network.name}"


def container_tag(container_id: str) -> str:
    return f"minict:{container_id}"


def _tagged(rule: list[str], tag: str) -> list[str]:
    return [*rule, "-m", "comment", "--comment", tag]


def network_rules(network: Network) -> list[tuple[str, list[str], str]]:
    """(table, rule, why) for a network: its traffic out is masqueraded (the
    containers' private addresses become the host's), traffic from the
    host's loopback to a published port is masqueraded to the bridge, and
    forwarding to and from the bridge is accepted."""
    tag = network_tag(network)
    return [
        ("nat", _tagged([POSTROUTING, "-s", network.subnet, "!", "-o", network.bridge,
                         "-j", "MASQUERADE"], tag),
         f"Outgoing traffic of network {network.name} leaves with the host's address (NAT)"),
        ("nat", _tagged([POSTROUTING, "-s", "127.0.0.0/8", "-o", network.bridge,
                         "-j", "MASQUERADE"], tag),
         "Connections from the host's loopback to a published port reach the container "
         "from the bridge's address"),
        ("filter", _tagged([FORWARD, "-o", network.bridge, "-j", "ACCEPT"], tag),
         f"Forward traffic to the containers of network {network.name}"),
        ("filter", _tagged([FORWARD, "-i", network.bridge, "-j", "ACCEPT"], tag),
         f"Forward traffic from the containers of network {network.name}"),
    ]


def publish_rules(container_id: str, address: str, mapping: PortMapping) -> list[tuple[str, list[str], str]]:
    """(table, rule, why) that publish one port of a container."""
    rule = [DNAT]
    if mapping.host_ip:
        rule += ["-d", mapping.host_ip]
    rule += ["-p", mapping.protocol, "--dport", str(mapping.host_port), "-j", "DNAT",
             "--to-destination", f"{address}:{mapping.container_port}"]
    return [("nat", _tagged(rule, container_tag(container_id)),
             f"Publish {mapping.text()}: connections to that host port go to the container at "
             f"{address}:{mapping.container_port}")]


def tags_in(listing: str) -> dict[str, list[list[str]]]:
    """`iptables -S CHAIN` output -> {tag: [rule words...]} for minict's tagged rules."""
    found: dict[str, list[list[str]]] = {}
    for line in listing.splitlines():
        words = shlex.split(line)
        if words[:1] != ["-A"] or "--comment" not in words:
            continue
        tag = words[words.index("--comment") + 1]
        if tag.startswith("minict:"):
            found.setdefault(tag, []).append(words[1:])
    return found
