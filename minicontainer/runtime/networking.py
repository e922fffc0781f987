"""A container's network, from the runtime's side: when it is made and unmade.

The pieces are minicontainer.network's; this module decides when each runs:

    when                          what                                     called from
    the owner, before the fork    prepare: an address lease, ports claimed launch.py
    the owner, before the fork    new_namespace, then attach: bridge, veth launch.py
                                  into it, eth0, route, rules (as podman
                                  has netavark plug a namespace it made
                                  before it runs the runtime)
    the fork                      the child is born in that namespace (or  launch.py
                                  the one it joins, or a new empty one)
    the container ends            detach: rules, lease, veth; peers' hosts supervisor.finish,
                                                                           lifecycle.remove
    `minict cleanup`              remove_orphans: leases, rules, veths     recovery.py

The container's end of the veth is made directly inside its network
namespace, and the kernel deletes a namespace's devices with it: when the
container's last process exits, its veth pair is gone. What must be taken
down by hand is what lives outside: the address lease and the firewall
rules, both tagged with the container's id, so that `minict cleanup` finds
exactly what a killed minict left.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import syscalls as sc
from ..errors import ContainerStateError, NetworkSetupFailed
from ..network import config as networks
from ..network import firewall, ipam
from ..network.config import Network
from ..network.ports import PortMapping, claim
from . import etcfiles, joining, state


@dataclass
class Attachment:
    """One container on one network: its address, its veth, its ports."""
    network: Network
    container_id: str
    address: str
    ports: list[PortMapping] = field(default_factory=list)   # host ports chosen

    @property
    def veth(self) -> str:
        """The host's end of the pair (an interface name has at most 15 characters)."""
        return f"vh{self.container_id[:12]}"

    def to_dict(self) -> dict:
        return {"name": self.network.name, "address": self.address,
                "gateway": self.network.gateway, "prefixlen": self.network.prefixlen,
                "bridge": self.network.bridge, "veth": self.veth,
                "ports": [p._asdict() for p in self.ports]}


def root_of(record) -> Path:
    return record.layout.containers.parent


def own_namespace(engine) -> bool:
    """Does the container (its EngineRecord) get a network namespace of its
    own (bridge, none, a user network), rather than the host's or another
    container's?"""
    return engine.network != "host" and not engine.network.startswith("container:")


def is_attached(engine) -> bool:
    """Is it on a network of minict's (a bridge), not just loopback?"""
    return own_namespace(engine) and engine.network not in ("none", "default", "slirp4netns")


def joined_namespace(kernel, record) -> int | None:
    """--network container:NAME: an fd of that container's network namespace
    (to be born in it), or None for any other mode."""
    if not record.engine.network.startswith("container:"):
        return None
    flag = f"--network {record.engine.network}"
    pid, _ = joining.running_pid(record, flag)
    return kernel.open_namespace(pid, "net", f"{flag}: hold that container's network namespace")


def prepare(record) -> Attachment | None:
    """Before the container's process exists: take an address and check its
    host ports (PortInUse, AddressesExhausted: nothing made yet)."""
    engine = record.engine
    if not is_attached(engine):
        return None
    network = networks.load(root_of(record), engine.network)
    ports = [claim(mapping) for mapping in engine.ports]
    address = ipam.allocate(root_of(record), network, engine.id)
    return Attachment(network, engine.id, address, ports)


def new_namespace(kernel: sc.Kernel) -> int:
    """A network namespace for the container, made before its process is:
    the owner steps into a new one, holds it by an fd, and steps back. (The
    container's first process is then born in it; the namespace lives as
    long as the fd or a process in it.)"""
    own = kernel.open_namespace("self", "net", "Hold minict's own network namespace, to come back")
    try:
        kernel.unshare(sc.CLONE_NEWNET, "A new network namespace for the container, made "
                                        "before its process, to plug it in first")
        try:
            return kernel.open_namespace("self", "net", "Hold the new namespace by an fd")
        finally:
            kernel.setns(own, sc.CLONE_NEWNET, "Back in the host's network namespace",
                         what="open(\"/proc/self/ns/net\")")
    finally:
        os.close(own)


def attach(kernel: sc.Kernel, attachment: Attachment, netns: int) -> None:
    """Plug the container's network namespace (held by the fd `netns`, made
    by new_namespace; its process not born yet) into its network."""
    network = attachment.network
    try:
        ensure_network(kernel, network)
        own = kernel.open_namespace("self", "net", "Hold our own network namespace, to come back")
        try:
            kernel.create_veth(attachment.veth, "eth0", netns, f"fd {netns}",
                               "A virtual cable: one end on the host, the other, eth0, made "
                               "directly in the container's network namespace")
            kernel.set_link_up(attachment.veth, f"Plug the host's end into {network.bridge}",
                               master=network.bridge)
            kernel.setns(netns, sc.CLONE_NEWNET, "Step into the container's network namespace "
                                                 "to set up its end", what=f"fd {netns}")
            try:
                kernel.set_link_up("lo", "Bring up its loopback (a new namespace's starts down)")
                kernel.add_address("eth0", attachment.address, network.prefixlen,
                                   f"The container's address on network {network.name}")
                kernel.set_link_up("eth0", "Bring the container's eth0 up")
                kernel.add_default_route(network.gateway, "Everything not on the network goes "
                                                          "through the bridge (the host)")
            finally:
                kernel.setns(own, sc.CLONE_NEWNET, "Back in the host's network namespace",
                             what="open(\"/proc/self/ns/net\")")
        finally:
            os.close(own)
        for mapping in attachment.ports:
            for table, rule, why in firewall.publish_rules(attachment.container_id,
                                                           attachment.address, mapping):
                kernel.firewall(table, "-A", rule, why)
    except OSError as exc:
        raise NetworkSetupFailed(f"cannot connect the container to network {network.name}: {exc}",
                                 "run as root with iptables installed; --network none runs "
                                 "without a network") from None


def ensure_network(kernel: sc.Kernel, network: Network) -> None:
    """The network's bridge, its address, forwarding, and its firewall rules,
    made if missing (once per network: later containers find them there)."""
    if not sc.link_exists(network.bridge):
        kernel.create_bridge(network.bridge, f"A bridge for network {network.name}: a switch "
                                             "that every container's veth plugs into")
        kernel.add_address(network.bridge, network.gateway, network.prefixlen,
                           "The bridge's own address: the containers' gateway")
        kernel.set_link_up(network.bridge, f"Bring {network.bridge} up")
        kernel.write_sysctl(f"net.ipv4.conf.{network.bridge}.route_localnet", "1",
                            "Let the host's own loopback reach published ports, on this bridge "
                            "only (set on all interfaces it exposes 127.0.0.1: CVE-2020-8558)")
    if _read_sysctl("net.ipv4.ip_forward") != "1":
        kernel.write_sysctl("net.ipv4.ip_forward", "1", "Let the host route between its "
                                                        "interfaces and the bridge")
    _ensure_chains(kernel)
    present = firewall.tags_in(sc.iptables_rules("nat", firewall.POSTROUTING)
                               + sc.iptables_rules("filter", firewall.FORWARD))
    if firewall.network_tag(network) not in present:
        for table, rule, why in firewall.network_rules(network):
            kernel.firewall(table, "-A", rule, why)


def _ensure_chains(kernel: sc.Kernel) -> None:
    """minict's own chains, and the one jump into each from the built-in ones."""
    for table, chain, jump in firewall.JUMPS:
        listing = sc.iptables_rules(table, chain)
        if not listing:
            kernel.firewall(table, "-N", [chain], f"A chain of minict's own in the {table} table")
        built_in = sc.iptables_rules(table, jump[0])
        if f"-A {' '.join(jump)}" not in built_in:
            kernel.firewall(table, "-A", jump, f"Send {jump[0]} traffic through {chain}")


def _read_sysctl(name: str) -> str:
    try:
        with open(f"/proc/sys/{name.replace('.', '/')}") as f:
            return f.read().strip()
    except OSError:
        return ""


def detach(kernel: sc.Kernel, record) -> None:
    """The container has ended (or never started): its published ports,
    its address and, should it still be there, its veth go; containers that
    found it by name no longer do. Safe to call twice."""
    engine = record.engine
    if not is_attached(engine):
        return
    unpublish(kernel, engine.id)
    root = root_of(record)
    try:
        network = networks.load(root, engine.network)
    except Exception:   # the network is gone: nothing left of it to give back
        return
    ipam.release(root, network, engine.id)
    veth = Attachment(network, engine.id, "").veth
    if sc.link_exists(veth):
        try:
            kernel.delete_link(veth, "Remove the container's veth (the host's end)")
        except OSError:
            pass   # it went with the container's namespace meanwhile
    if network.names_peers:
        write_peer_hosts(record.layout, root, network)


def unpublish(kernel: sc.Kernel, container_id: str) -> None:
    """Delete every firewall rule tagged with the container's id."""
    tag = firewall.container_tag(container_id)
    for rule in firewall.tags_in(sc.iptables_rules("nat", firewall.DNAT)).get(tag, []):
        try:
            kernel.firewall("nat", "-D", rule, "The container's port is published no more")
        except OSError:
            pass   # deleted by someone else meanwhile


# ---- /etc/hosts: finding peers by name ---------------------------------------------------

def hosts_entries(layout, root: Path, network: Network) -> list[tuple[str, str, str, list]]:
    """(address, names, container id, its --add-host items) of the containers
    on `network`."""
    entries = []
    for address, container_id in ipam.holders(root, network).items():
        try:
            record = state.load_record(layout, layout.containers / container_id)
        except ContainerStateError:
            continue   # a damaged record: its peers' files go on without it
        if record is None:
            continue
        names = " ".join(dict.fromkeys(n for n in (record.name, record.config.get("hostname"),
                                                   container_id[:12]) if n))
        entries.append((address, names, container_id, record.engine.extra_hosts))
    return entries


def write_peer_hosts(layout, root: Path, network: Network) -> None:
    """Rewrite the /etc/hosts of every container on `network`, so that each
    finds every other by name (docker's user networks; the legacy --link
    way, without a DNS server). The files are bind-mounted into the
    containers, so each is rewritten in place: the same inode, new lines."""
    entries = hosts_entries(layout, root, network)
    lines = [(address, names) for address, names, _, _ in entries]
    for _, _, container_id, extra_hosts in entries:
        path = layout.containers / container_id / "hosts"
        try:
            with open(path, "r+b") as f:
                f.truncate(0)
                f.write(etcfiles.networked_hosts(lines, extra_hosts, network.gateway))
        except FileNotFoundError:
            pass   # being removed


def hosts_for(record, attachment: Attachment | None) -> None:
    """Write the container's /etc/hosts now that its address is known
    (before "go": the child bind-mounts it), and tell its peers."""
    if attachment is None:
        return
    network = attachment.network
    if network.names_peers:
        write_peer_hosts(record.layout, root_of(record), network)
    else:
        names = f"{record.name} {record.config['hostname']}"
        (record.dir / "hosts").write_bytes(etcfiles.networked_hosts(
            [(attachment.address, names)], record.engine.extra_hosts, network.gateway))


# ---- minict cleanup ----------------------------------------------------------------------------

def remove_orphans(kernel: sc.Kernel, layout, owned: set[str]) -> list[str]:
    """Leases and published ports of containers nobody looks after any more
    (`owned`: the ids whose owner is alive). Rules of ids this root does not
    know are removed only when their container's veth is gone, so a live
    container of another minict root keeps its ports. Returns what was done."""
    root = layout.containers.parent
    done = []
    for network in networks.listing(root, with_default=False):
        for address, container_id in ipam.holders(root, network).items():
            if container_id not in owned:
                ipam.release(root, network, container_id)
                done.append(f"released address {address} of container {container_id[:12]} "
                            f"on network {network.name}")
    known = {p.name for p in layout.containers.iterdir()} if layout.containers.is_dir() else set()
    for tag in firewall.tags_in(sc.iptables_rules("nat", firewall.DNAT)):
        container_id = tag.removeprefix("minict:")
        alive = sc.link_exists(f"vh{container_id[:12]}")
        if container_id in owned or (container_id not in known and alive):
            continue
        unpublish(kernel, container_id)
        done.append(f"removed the published ports of container {container_id[:12]}")
    return done


def remove_network(config, name: str, kernel: sc.Kernel) -> None:
    """`minict network rm`: refused while containers use it; then its
    firewall rules, its bridge and its record go."""
    layout = state.Layout.of(config)
    network = networks.load(config.root, name)
    in_use = [r.name for r in state.list_records(layout) if r.engine.network == name]
    networks.remove(config.root, name, in_use)
    tag = firewall.network_tag(network)
    for table, chain in (("nat", firewall.POSTROUTING), ("filter", firewall.FORWARD)):
        for rule in firewall.tags_in(sc.iptables_rules(table, chain)).get(tag, []):
            kernel.firewall(table, "-D", rule, f"Network {name} is gone: so is its rule")
    if sc.link_exists(network.bridge):
        kernel.delete_link(network.bridge, f"Remove the bridge of network {name}")


def port_lines(record) -> list[str]:
    """`minict port C`: 80/tcp -> 0.0.0.0:8080, one line per published port."""
    runtime = state.read_json(record.runtime_file) or {}
    ports = (runtime.get("network") or {}).get("ports") or []
    return [PortMapping(**p).text() for p in ports]


def port_bindings(ports) -> dict:
    """docker's {"80/tcp": [{"HostIp": ..., "HostPort": ...}, ...]} (HostPort "" until chosen)."""
    bindings: dict[str, list] = {}
    for p in ports:
        bindings.setdefault(f"{p.container_port}/{p.protocol}", []).append(
            {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port or "")})
    return bindings


def describe(runtime_network: dict | None) -> dict:
    """inspect's NetworkSettings."""
    if not runtime_network:
        return {}
    network = runtime_network
    return {"Networks": {network["name"]: {
                "IPAddress": network["address"], "Gateway": network["gateway"],
                "IPPrefixLen": network["prefixlen"], "Bridge": network["bridge"],
                "HostVeth": network["veth"]}},
            "Ports": port_bindings(PortMapping(**p) for p in network.get("ports", []))}
