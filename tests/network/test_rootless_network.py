"""--network slirp4netns: a rootless container's network (runtime/usernet.py), for real.

As `nobody`, with Debian's slirp4netns. The test process's own network
namespace (tests/conftest.py) holds a web server on 192.0.2.1, the
address loopback has there; the container reaches it through slirp4netns,
whose connections are nobody's ordinary sockets.
"""

import http.server
import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.images import busybox_image
from tests.helpers.rootless import (as_nobody, container_dirs, minict_processes, nobody_store,
                                    popen_as_nobody)

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody with setpriv: needs root"),
    pytest.mark.skipif(shutil.which("slirp4netns") is None,
                       reason="needs slirp4netns (scripts/setup.sh installs it)"),
]

HOST_ADDRESS = "192.0.2.1"


@pytest.fixture(scope="module")
def userland(busybox_rootfs):
    with nobody_store({"busybox:latest": busybox_image(busybox_rootfs)}) as (base, env):
        yield base, env


@pytest.fixture
def web_server():
    """A web server of the host's, on 192.0.2.1 (not loopback)."""
    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    try:
        server = http.server.HTTPServer((HOST_ADDRESS, 0), Quiet)
    except OSError as exc:
        pytest.fail(f"{HOST_ADDRESS} should be on loopback in the tests' network namespace: {exc}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_default_network_without_root_reaches_the_host(userland, web_server):
    base, env = userland
    result = as_nobody(env, "--explain", "run", "--rm", "busybox", "sh", "-c",
                       "ip -4 -o addr show tap0; ip route | grep ^default; grep ^nameserver "
                       f"/etc/resolv.conf; wget -qO- http://{HOST_ADDRESS}:{web_server}/")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "inet 10.0.2.100/24" in lines[0]
    assert lines[1].startswith("default via 10.0.2.2 dev tap0")
    assert lines[2:] == ["nameserver 10.0.2.3", "hello from the host"]
    assert "--network slirp4netns" in result.stderr and "slirp4netns --configure" in result.stderr
    assert minict_processes(base) == []        # slirp4netns ended with the container


def test_host_loopback_stays_out_of_reach(userland):
    """--disable-host-loopback: 10.0.2.2 is not the host's 127.0.0.1."""
    base, env = userland
    with listening("127.0.0.1") as port:
        result = as_nobody(env, "run", "--rm", "busybox", "sh", "-c",
                           f"nc -w 2 10.0.2.2 {port} </dev/null; echo rc=$?")
    assert result.returncode == 0, result.stderr
    assert "rc=0" not in result.stdout


def test_a_published_port_reaches_the_container(userland):
    base, env = userland
    with socket.socket() as probe:                    # a free host port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = as_nobody(env, "run", "-d", "--name", "web", "-p", f"{port}:8000", "busybox", "sh", "-c",
                    "mkdir /www && echo served-inside > /www/index.html && "
                    "exec httpd -f -p 8000 -h /www")
    assert run.returncode == 0, run.stderr
    try:
        body = _get(port)
        assert body.endswith(b"served-inside\n")
        shown = as_nobody(env, "port", "web")
        assert shown.stdout.strip() == f"8000/tcp -> 0.0.0.0:{port}"
    finally:
        removed = as_nobody(env, "rm", "-f", "web")
    assert removed.returncode == 0, removed.stderr
    _wait_until(lambda: minict_processes(base) == [])
    with socket.socket() as again:                    # nothing listens on it any more
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)   # (TIME_WAIT is fine)
        again.bind(("0.0.0.0", port))
        again.listen()


def test_a_taken_port_is_one_line_and_nothing_is_left(userland):
    base, env = userland
    with listening("0.0.0.0") as port:
        result = as_nobody(env, "run", "--rm", "-p", f"{port}:80", "busybox", "true")
    assert result.returncode == 62, result.stderr       # PortInUse
    assert result.stderr.count("\n") == 1 and str(port) in result.stderr
    assert container_dirs(base) == [] and minict_processes(base) == []


def test_without_slirp4netns_the_default_is_loopback_only(userland, tmp_path):
    base, env = userland
    no_slirp = dict(env, PATH=str(tmp_path))          # a PATH where slirp4netns is not
    tmp_path.chmod(0o755)
    result = as_nobody(no_slirp, "--explain", "run", "--rm", "busybox", "ip", "-o", "link")
    assert result.returncode == 0, result.stderr
    assert "tap0" not in result.stdout and "lo" in result.stdout
    assert "slirp4netns is not installed" in result.stderr
    asked = as_nobody(no_slirp, "run", "--rm", "--network", "slirp4netns", "busybox", "true")
    assert asked.returncode == 27 and asked.stderr.count("\n") == 1
    assert "apt install slirp4netns" in asked.stderr


def test_a_killed_owner_takes_slirp4netns_with_it(userland):
    base, env = userland
    owner = popen_as_nobody(env, "run", "--rm", "busybox", "sleep", "60")
    try:
        _wait_until(lambda: any("slirp4netns" in p for p in minict_processes(base)))
    finally:
        owner.kill()
        owner.wait()
    _wait_until(lambda: not any("slirp4netns" in p for p in minict_processes(base)))
    as_nobody(env, "rm", "-f", *_names(env))


@contextmanager
def listening(address: str):
    """A TCP port of the host's that something listens on, meanwhile."""
    with socket.socket() as listener:
        listener.bind((address, 0))
        listener.listen()
        yield listener.getsockname()[1]


def _names(env) -> list[str]:
    return as_nobody(env, "ps", "-aq").stdout.split()


def _get(port: int) -> bytes:
    """GET / from 127.0.0.1:port, trying for a while (httpd starts in the container)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                data = b""
                while chunk := conn.recv(4096):
                    data += chunk
            if data:
                return data
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing answered on 127.0.0.1:{port}")
        time.sleep(0.2)


def _wait_until(condition, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_container_dirs_are_gone_at_the_end(userland):
    base, _ = userland
    assert container_dirs(base) == [] and not list(Path(base, "root", "containers").glob(".rm-*"))
