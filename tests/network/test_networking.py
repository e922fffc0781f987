"""Container networks for real, as root: the bridge, NAT, published ports,
user networks and names, --network container:, and what is left after
crashes.

The whole test session runs in a network namespace of its own (see
tests/conftest.py), which plays the host here. Other machines are more
namespaces, each held by a sleeping process and wired to it with a veth
pair (`Peer`): a client on 10.77.0.0/24, an upstream server on
10.66.0.0/24. Nothing touches the real machine's network.
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.root



class Peer:
    """Another machine: a network namespace of its own, wired to ours by a
    veth pair (`ours` here, `theirs` there)."""

    def __init__(self, name: str, ours: str, theirs: str):
        self.process = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        own = os.stat("/proc/self/ns/net").st_ino
        wait_for(lambda: os.stat(f"/proc/{self.process.pid}/ns/net").st_ino != own, 10,
                 "the peer's network namespace")
        self.address = theirs
        pid = str(self.process.pid)
        for command in (["ip", "link", "add", f"{name}0", "type", "veth", "peer", "name",
                         f"{name}1", "netns", pid],
                        ["ip", "addr", "add", f"{ours}/24", "dev", f"{name}0"],
                        ["ip", "link", "set", f"{name}0", "up"]):
            subprocess.run(command, check=True)
        for command in (["ip", "addr", "add", f"{theirs}/24", "dev", f"{name}1"],
                        ["ip", "link", "set", f"{name}1", "up"], ["ip", "link", "set", "lo", "up"]):
            self.run(*command, check=True)

    def run(self, *command, check=False, timeout=30, **kw):
        return subprocess.run(["nsenter", "-t", str(self.process.pid), "-n", *command], check=check,
                              capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, *command):
        return subprocess.Popen(["nsenter", "-t", str(self.process.pid), "-n", *command],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def close(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def client():
    peer = Peer("mtc", "10.77.0.1", "10.77.0.2")
    yield peer
    peer.close()


@pytest.fixture
def upstream():
    peer = Peer("mtu", "10.66.0.1", "10.66.0.2")
    yield peer
    peer.close()


@pytest.fixture
def www(tmp_path) -> Path:
    site = tmp_path / "www"
    site.mkdir()
    (site / "index.html").write_text("hello from the container\n")
    return site


# (Not busybox wget -T here: Debian's busybox-static crashes on -T; in the
# containers, `timeout 5 wget` does the same job.)
FETCH = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")
except OSError:
    pass
"""


def fetch(url: str, where=None) -> str:
    """What an HTTP GET of `url` answers, from the test's "host" or from the
    Peer `where`; "" on failure."""
    if where is not None:
        return where.run(sys.executable, "-c", FETCH, url).stdout
    return subprocess.run([sys.executable, "-c", FETCH, url], capture_output=True, text=True,
                          timeout=30).stdout


def serve(mt, www, *flags, name="web") -> str:
    """A busybox httpd in a detached container; returns its id."""
    return mt.out("run", "-d", "--name", name, "-v", f"{www}:/www", *flags, "busybox",
                  "httpd", "-f", "-p", "80", "-h", "/www").strip()


def vh_links() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex() if name.startswith("vh"))


def published() -> list[str]:
    """The rules that publish containers' ports (MINICT-DNAT's -A lines)."""
    listing = subprocess.run(["iptables", "-t", "nat", "-S", "MINICT-DNAT"], capture_output=True,
                             text=True).stdout
    return [line for line in listing.splitlines() if line.startswith("-A")]


def leases(mt) -> list[str]:
    return sorted(str(p.relative_to(mt.root)) for p in (mt.root / "networks").glob("*/leases/*"))


@pytest.fixture
def net_mt(fresh_mt):
    """minict with a root of its own (leases and records counted by the test),
    its containers removed afterwards."""
    yield fresh_mt
    for line in fresh_mt("ps", "-a", "-q").stdout.split():
        fresh_mt("rm", "-f", line)


# ---- the default bridge -------------------------------------------------------------------------

def test_a_container_gets_an_address_a_route_and_its_name_in_hosts(net_mt):
    out = net_mt.out("run", "--rm", "--name", "first", "busybox", "sh", "-c",
                     "ip -o -4 addr show eth0; ip route; cat /etc/hosts; ping -c1 -W2 10.88.0.1 "
                     ">/dev/null && echo GATEWAY")
    assert re.search(r"inet 10\.88\.0\.(\d+)/16", out)
    assert "default via 10.88.0.1 dev eth0" in out
    assert re.search(r"10\.88\.0\.\d+\tfirst \w{12}", out)
    assert out.rstrip().endswith("GATEWAY")
    assert vh_links() == [] and leases(net_mt) == []


def test_a_published_port_answers_on_loopback_on_the_bridge_and_to_another_host(net_mt, www, client):
    serve(net_mt, www, "-p", "8080:80", "-p", "80")
    wait_for(lambda: "hello" in fetch("http://127.0.0.1:8080/"), 10, "httpd to answer")
    assert fetch("http://10.88.0.1:8080/") == "hello from the container\n"
    assert fetch("http://10.77.0.1:8080/", client) == "hello from the container\n"
    lines = net_mt.out("port", "web").splitlines()
    assert lines[0] == "80/tcp -> 0.0.0.0:8080" and lines[1].startswith("80/tcp -> 0.0.0.0:")
    other = int(lines[1].rsplit(":", 1)[1])
    assert fetch(f"http://127.0.0.1:{other}/") == "hello from the container\n"
    info = __import__("json").loads(net_mt.out("inspect", "web"))[0]
    assert info["NetworkSettings"]["Networks"]["bridge"]["Gateway"] == "10.88.0.1"
    assert info["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"] == "8080"
    # route_localnet on the bridge only (CVE-2020-8558)
    assert Path("/proc/sys/net/ipv4/conf/minict0/route_localnet").read_text().strip() == "1"
    assert Path("/proc/sys/net/ipv4/conf/all/route_localnet").read_text().strip() == "0"
    net_mt.out("rm", "-f", "web")
    assert published() == [] and leases(net_mt) == []
    assert fetch("http://127.0.0.1:8080/") == ""


def test_a_host_ip_limits_where_a_port_is_published(net_mt, www, client):
    serve(net_mt, www, "-p", "127.0.0.1:8081:80")
    wait_for(lambda: "hello" in fetch("http://127.0.0.1:8081/"), 10, "httpd to answer")
    assert fetch("http://10.77.0.1:8081/", client) == ""


UPSTREAM_SERVER = """
import http.server, sys
class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
server = http.server.HTTPServer(("10.66.0.2", 9000), Echo)
print("listening", flush=True)
server.serve_forever()
"""


def test_outgoing_traffic_leaves_with_the_hosts_address(net_mt, upstream):
    server = upstream.popen(sys.executable, "-c", UPSTREAM_SERVER)
    try:
        assert server.stdout.readline() == "listening\n"
        out = net_mt.out("run", "--rm", "busybox", "timeout", "5", "wget", "-qO-",
                         "http://10.66.0.2:9000/")
        assert out == "10.66.0.1"            # masqueraded: the host's address on that link
    finally:
        server.kill()
        server.wait()


# ---- user networks, names, container: --------------------------------------------------------------

def test_containers_on_a_user_network_reach_each_other_by_name(net_mt, www):
    net_mt.out("network", "create", "lab")
    serve(net_mt, www, "--network", "lab")
    out = net_mt.out("run", "--rm", "--network", "lab", "--name", "browser", "busybox", "sh", "-c",
                     "ip -o -4 addr show eth0; grep web /etc/hosts; "
                     "for i in 1 2 3 4 5; do timeout 2 wget -qO- http://web/ && break; sleep 1; done")
    assert "inet 10.89.0." in out and "hello from the container" in out
    web_hosts = (net_mt.root / "containers").glob("*/hosts")
    assert any("browser" in p.read_text() for p in web_hosts) is False   # browser is gone again
    # on the default bridge there is no name to find, as with docker
    result = net_mt("run", "--rm", "busybox", "timeout", "2", "wget", "-qO-", "http://web/")
    assert result.returncode != 0
    listed = net_mt.out("network", "ls")
    assert re.search(r"lab\s+10\.89\.0\.0/24\s+10\.89\.0\.1\s+mct-lab", listed)
    refused = net_mt("network", "rm", "lab")
    assert refused.returncode == 61 and "in use by web" in refused.stderr
    net_mt.out("rm", "-f", "web")
    assert net_mt.out("network", "rm", "lab").strip() == "lab"
    assert "mct-lab" not in [name for _, name in socket.if_nameindex()]


def test_the_bundle_names_the_plugged_namespace_and_its_loopback_is_up(net_mt):
    """The engine makes and plugs the network namespace before the container's
    process exists; config.json names it by the fd the engine holds
    (/proc/OWNER/fd/N), and the runtime's init joins it by that path. The
    engine brings its loopback up: init does so only in a namespace it makes."""
    net_mt.out("run", "-d", "--name", "held", "busybox", "sleep", "60")
    config = json.loads(net_mt.out("inspect", "--bundle", "held"))[0]
    network = next(ns for ns in config["linux"]["namespaces"] if ns["type"] == "network")
    owner, _ = re.fullmatch(r"/proc/(\d+)/fd/(\d+)", network["path"]).groups()
    assert int(owner) != json.loads(net_mt.out("inspect", "held"))[0]["State"]["Pid"]
    out = net_mt.out("exec", "held", "sh", "-c", "ip -o link show lo; ping -c1 -W2 127.0.0.1 "
                                                 ">/dev/null && echo LOOPBACK")
    assert "LOOPBACK" in out and re.search(r"<LOOPBACK,UP", out), out


def test_network_container_shares_another_containers_stack(net_mt, www):
    serve(net_mt, www)
    out = net_mt.out("run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
                     "ip -o -4 addr show eth0; for i in 1 2 3 4 5; do "
                     "timeout 2 wget -qO- http://127.0.0.1:80/ && break; sleep 1; done")
    address = net_mt.out("exec", "web", "ip", "-o", "-4", "addr", "show", "eth0").split()[3]
    assert address in out and "hello from the container" in out


# ---- bad input -----------------------------------------------------------------------------------

def test_a_host_port_already_taken_is_one_line_and_leaves_nothing(net_mt):
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = net_mt("run", "--rm", "-p", f"{port}:80", "busybox", "true")
    assert result.returncode == 62 and len(result.stderr.splitlines()) == 1
    assert "already in use" in result.stderr
    assert leases(net_mt) == [] and vh_links() == [] and net_mt.out("ps", "-a", "-q") == ""


@pytest.mark.parametrize("spec", ["http", "80:99999", "1.2.3:80:80", "80/sctp"])
def test_bad_publish_specs_are_refused(net_mt, spec):
    result = net_mt("run", "--rm", "-p", spec, "busybox", "true")
    assert result.returncode == 27 and result.stderr.startswith("minict: invalid -p") or \
        "not between 1 and 65535" in result.stderr


def test_a_full_subnet_is_one_line_and_leaves_nothing(net_mt):
    net_mt.out("network", "create", "--subnet", "10.93.0.0/30", "tiny")   # room for one container
    net_mt.out("run", "-d", "--network", "tiny", "--name", "only", "busybox", "sleep", "60")
    result = net_mt("run", "--rm", "--network", "tiny", "busybox", "true")
    assert result.returncode == 63 and "has no free address left" in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert leases(net_mt) == ["networks/tiny/leases/10.93.0.2"]


# ---- nothing left behind ---------------------------------------------------------------------------

def test_fifty_runs_leave_no_veth_no_rule_and_no_lease(net_mt):
    for i in range(50):
        net_mt.out("run", "--rm", "-p", "80", "busybox", "true")
    assert vh_links() == [] and leases(net_mt) == []
    assert published() == []


def test_sigkill_during_network_setup_then_cleanup_leaves_nothing(net_mt):
    rng = random.Random(4)
    for i in range(12):
        owner = net_mt.popen("run", "--name", f"killed{i}", "-p", "80", "busybox", "sleep", "30")
        time.sleep(rng.uniform(0.02, 0.4))
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    out = net_mt.out("cleanup")
    assert out
    wait_for(lambda: vh_links() == [], 10, "the veths to go with their namespaces")
    assert leases(net_mt) == []
    assert published() == []


def test_stats_shows_network_io(net_mt, www):
    serve(net_mt, www, "-p", "8082:80")
    wait_for(lambda: "hello" in fetch("http://127.0.0.1:8082/"), 10, "httpd to answer")
    out = net_mt.out("stats", "--no-stream", "web")
    header, row = out.splitlines()
    assert "NET I/O" in header
    net_io = re.split(r"\s{3,}", row)[5]     # CONTAINER ID, NAME, CPU %, MEM, MEM %, NET I/O...
    assert net_io != "--" and not net_io.startswith("0B /")
