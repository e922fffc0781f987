"""Networks, addresses, ports and firewall rules, without a kernel (unit)."""

import socket
import threading

import pytest

from minicontainer.errors import AddressesExhausted, BadArgument, NetworkInUse, NetworkNotFound, PortInUse
from minicontainer.network import config as networks
from minicontainer.network import firewall, ipam
from minicontainer.network.ports import PortMapping, claim, exposed, parse

pytestmark = pytest.mark.unit


# ---- networks -----------------------------------------------------------------------------------

def test_bridge_is_made_on_first_use_and_user_networks_get_their_own_subnet(tmp_path):
    bridge = networks.load(tmp_path, "bridge")
    assert (bridge.subnet, bridge.gateway, bridge.bridge) == ("10.88.0.0/16", "10.88.0.1", "minict0")
    lab = networks.create(tmp_path, "lab")
    other = networks.create(tmp_path, "other")
    assert (lab.subnet, lab.gateway, lab.bridge) == ("10.89.0.0/24", "10.89.0.1", "mct-lab")
    assert other.subnet == "10.89.1.0/24"
    assert [n.name for n in networks.listing(tmp_path)] == ["bridge", "lab", "other"]
    assert networks.load(tmp_path, "lab") == lab
    assert not bridge.names_peers and lab.names_peers
    long = networks.create(tmp_path, "a-very-long-network-name")
    assert len(long.bridge) <= 15                     # a Linux interface name's limit


@pytest.mark.parametrize("name, subnet, words", [
    ("none", None, "invalid network name"),
    ("bad name", None, "invalid network name"),
    ("bridge", None, "already exists"),
    ("x", "10.88.1.0/24", "overlaps 10.88.0.0/16"),
    ("x", "10.90.0.0/31", "/30 or larger"),
    ("x", "not-a-subnet", "--subnet not-a-subnet"),
    ("x", "fd00::/64", "IPv4"),
])
def test_bad_networks_are_refused(tmp_path, name, subnet, words):
    networks.load(tmp_path, "bridge")
    with pytest.raises(BadArgument, match=words):
        networks.create(tmp_path, name, subnet)


def test_removing_a_network(tmp_path):
    networks.create(tmp_path, "lab")
    with pytest.raises(NetworkInUse, match="in use by web"):
        networks.remove(tmp_path, "lab", ["web"])
    networks.remove(tmp_path, "lab", [])
    with pytest.raises(NetworkNotFound, match="no such network: lab"):
        networks.load(tmp_path, "lab")
    with pytest.raises(BadArgument, match="cannot be removed"):
        networks.remove(tmp_path, "bridge", [])


# ---- addresses ----------------------------------------------------------------------------------

def test_addresses_skip_the_gateway_and_run_out_cleanly(tmp_path):
    tiny = networks.create(tmp_path, "tiny", "10.91.0.0/29")      # .1 gateway, .2-.6 for containers
    got = [ipam.allocate(tmp_path, tiny, f"c{i}") for i in range(5)]
    assert got == [f"10.91.0.{i}" for i in range(2, 7)]
    with pytest.raises(AddressesExhausted, match="no free address left"):
        ipam.allocate(tmp_path, tiny, "c5")
    assert ipam.release(tmp_path, tiny, "c2") == ["10.91.0.4"]
    assert ipam.allocate(tmp_path, tiny, "c6") == "10.91.0.4"      # freed, handed out again
    assert ipam.holders(tmp_path, tiny)["10.91.0.4"] == "c6"
    assert [p.name for p in ipam.leases(tmp_path, tiny).iterdir() if p.name.startswith(".")] == []


def test_concurrent_allocations_never_share_an_address(tmp_path):
    network = networks.create(tmp_path, "busy", "10.92.0.0/24")
    got, errors = [], []

    def take(i):
        try:
            got.append(ipam.allocate(tmp_path, network, f"container-{i}"))
        except Exception as exc:   # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(got) == len(set(got)) == 40
    assert sorted(ipam.holders(tmp_path, network).values()) == sorted(f"container-{i}" for i in range(40))


# ---- ports ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, mapping", [
    ("8080:80", PortMapping(80, "tcp", 8080, "")),
    ("127.0.0.1:8080:80", PortMapping(80, "tcp", 8080, "127.0.0.1")),
    ("80", PortMapping(80, "tcp", 0, "")),
    ("5353:53/udp", PortMapping(53, "udp", 5353, "")),
    ("127.0.0.1::80", PortMapping(80, "tcp", 0, "127.0.0.1")),
])
def test_publish_specs(text, mapping):
    assert parse(text) == mapping


@pytest.mark.parametrize("text", ["", "http", "80:", ":80:", "80:80:80:80", "0:80", "80:70000",
                                  "999.1.1.1:80:80", "80/sctp"])
def test_bad_publish_specs(text):
    with pytest.raises(BadArgument):
        parse(text)


def test_exposed_ports_of_an_image():
    assert exposed({"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080": {}}}) == [
        PortMapping(53, "udp"), PortMapping(80, "tcp"), PortMapping(8080, "tcp")]
    assert exposed({}) == []


def test_a_host_port_in_use_is_refused_and_a_free_one_is_chosen():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=f"127.0.0.1:{taken}/tcp is already in use"):
            claim(PortMapping(80, "tcp", taken, "127.0.0.1"))
    chosen = claim(PortMapping(80))
    assert chosen.host_port > 0 and chosen.container_port == 80
    with pytest.raises(BadArgument, match="is not an address of this host"):
        claim(PortMapping(80, "tcp", 0, "192.0.2.7"))


# ---- firewall rules --------------------------------------------------------------------------------

def test_rules_are_tagged_and_read_back_by_tag(tmp_path):
    lab = networks.create(tmp_path, "lab")
    rules = firewall.network_rules(lab)
    assert ("nat", [firewall.POSTROUTING, "-s", "10.89.0.0/24", "!", "-o", "mct-lab", "-j",
                    "MASQUERADE", "-m", "comment", "--comment", "minict:net:lab"]) == rules[0][:2]
    [(table, rule, _)] = firewall.publish_rules("c" * 64, "10.89.0.2", PortMapping(80, "tcp", 8080,
                                                                                    "127.0.0.1"))
    assert table == "nat" and rule[:3] == [firewall.DNAT, "-d", "127.0.0.1"]
    assert rule[rule.index("--to-destination") + 1] == "10.89.0.2:80"
    listing = ('-N MINICT-DNAT\n'
               '-A MINICT-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "minict:' + "c" * 64 +
               '" -j DNAT --to-destination 10.89.0.2:80\n'
               '-A MINICT-DNAT -p tcp -m comment --comment "someone else" -j ACCEPT\n')
    found = firewall.tags_in(listing)
    assert list(found) == ["minict:" + "c" * 64]
    assert found["minict:" + "c" * 64][0][:3] == ["MINICT-DNAT", "-p", "tcp"]
