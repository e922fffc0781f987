"""--network slirp4netns: a network for a container without root.

Without root minict cannot plug a veth into the host's bridge (rootless.py).
slirp4netns (Debian's slirp4netns) gives the container's network namespace
a network anyway, as podman and Docker's rootless mode do: it makes a TAP
device, tap0, inside the namespace, and runs a whole TCP/IP stack (libslirp)
in an ordinary process of the user's, outside. A packet the container sends
to the world becomes a connect() or sendto() of that process, with the
user's own rights:

    container's network namespace              the host (the user's process)
    tap0 10.0.2.100/24, default via 10.0.2.2   slirp4netns: TCP/IP in user space
         --- Ethernet frames over tap0 --->    --- ordinary sockets ---> the world
    nameserver 10.0.2.3 (slirp's resolver)     asks the host's nameservers
    port 80 <--- `-p 8080:80` (add_hostfwd) -- listens on the host's port 8080

What the user gives up for not being root: speed (every packet crosses
into a user process) and the source address (the world sees the host's).
`--disable-host-loopback`: 10.0.2.2 does not reach the host's 127.0.0.1,
so a container cannot talk to services that trust loopback callers.

Its life: minict starts it once the container's process exists (its
network namespace does) and before that process is told "go", and holds
the write end of a pipe whose read end slirp4netns watches (--exit-fd):
when the owner of the container exits, because the container ended or
because the owner was killed, the kernel closes that end and slirp4netns
exits too. Nothing is left to clean up.
"""

import json
import os
import select
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .. import syscalls as sc
from ..errors import BadArgument, NetworkSetupFailed, PortInUse
from ..network.ports import PortMapping, claim

NAME = "slirp4netns"
ADDRESS, GATEWAY, NAMESERVER, PREFIXLEN = "10.0.2.100", "10.0.2.2", "10.0.2.3", 24
TAP = "tap0"
MTU = 65520          # slirp4netns' own advice: far faster than 1500 through a TAP
READY_TIMEOUT = 10   # seconds for slirp4netns to configure tap0
API_SOCKET = "slirp4netns.sock"   # in the container's directory: -p asks it to forward ports


# The slirp4netns processes this process (a container's owner) started, by
# container id: the owner holds each for its container's whole life.
_owned: dict[str, "UserNet"] = {}


@dataclass
class UserNet:
    """One container's slirp4netns: the ports it forwards, and once started
    its process and the pipe end that keeps it alive."""
    container_id: str
    ports: list[PortMapping] = field(default_factory=list)
    process: subprocess.Popen | None = None
    keep_alive: int | None = None        # write end of --exit-fd's pipe

    def to_dict(self) -> dict:
        """As runtime state records a network (networking.describe reads it)."""
        return {"name": NAME, "address": ADDRESS, "gateway": GATEWAY, "prefixlen": PREFIXLEN,
                "bridge": "", "veth": "", "ports": [p._asdict() for p in self.ports]}


def wanted(engine) -> bool:
    return engine.network == NAME


def program() -> str:
    found = shutil.which(NAME)
    if found is None:
        raise BadArgument(f"--network {NAME} needs the {NAME} program, which is not installed",
                          f"install it (Debian: apt install {NAME}), or use --network none")
    return found


def prepare(record) -> UserNet | None:
    """Before the container's process exists: check the program and the
    host ports (-p; PortInUse before anything is made)."""
    engine = record.engine
    if not wanted(engine):
        return None
    if os.geteuid() == 0:
        raise BadArgument(f"--network {NAME} is for minict without root",
                          "as root use the default bridge network")
    program()
    return UserNet(engine.id, [claim(mapping) for mapping in engine.ports])


def start(kernel: sc.Kernel, net: UserNet, pid: int, log_path: Path) -> None:
    """Start slirp4netns for the network namespace of `pid` (waiting for
    "go"), wait until tap0 is up, then forward the published ports."""
    ready_read, ready_write = os.pipe2(os.O_CLOEXEC)
    exit_read, exit_write = os.pipe2(os.O_CLOEXEC)
    # A socket's path may have at most 107 bytes, and the container's
    # directory alone can be longer: slirp4netns starts there and binds a
    # relative name; minict reaches it through its own fd of that directory.
    argv = [program(), "--configure", f"--mtu={MTU}", "--disable-host-loopback",
            f"--ready-fd={ready_write}", f"--exit-fd={exit_read}", f"--api-socket={API_SOCKET}",
            str(pid), TAP]
    kernel.explain(f"A user-mode network: slirp4netns joins the container's user and network "
                   f"namespaces, makes {TAP} ({ADDRESS}/{PREFIXLEN}, gateway {GATEWAY}, "
                   f"nameserver {NAMESERVER}) and carries its packets through sockets of yours",
                   " ".join(argv))
    with open(log_path, "ab") as log:
        try:
            net.process = subprocess.Popen(argv, pass_fds=(ready_write, exit_read),
                                           cwd=log_path.parent, stdin=subprocess.DEVNULL,
                                           stdout=log, stderr=log)
        finally:
            os.close(ready_write)
            os.close(exit_read)
    net.keep_alive = exit_write
    _owned[net.container_id] = net
    try:
        _wait_until_ready(net, ready_read, log_path)
        if net.ports:
            directory = os.open(log_path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                for mapping in net.ports:
                    _forward(kernel, f"/proc/self/fd/{directory}/{API_SOCKET}", mapping)
            finally:
                os.close(directory)
    except BaseException:
        stop(net)
        raise
    finally:
        os.close(ready_read)


def _wait_until_ready(net: UserNet, ready_read: int, log_path: Path) -> None:
    """slirp4netns writes "1" on --ready-fd once tap0 is configured."""
    readable, _, _ = select.select([ready_read], [], [], READY_TIMEOUT)
    if readable and os.read(ready_read, 1) == b"1":
        return
    last = (log_path.read_text(errors="replace").strip().splitlines() or ["no message"])[-1]
    raise NetworkSetupFailed(f"{NAME} did not bring up {TAP}: {last}",
                             f"see {log_path}, or use --network none")


def _forward(kernel: sc.Kernel, api: str, mapping: PortMapping) -> None:
    """-p HOST:CONTAINER: slirp4netns listens on the host's port and carries
    each connection to the container's (its API's add_hostfwd)."""
    request = {"execute": "add_hostfwd",
               "arguments": {"proto": mapping.protocol, "host_addr": mapping.host_ip or "0.0.0.0",
                             "host_port": mapping.host_port, "guest_port": mapping.container_port}}
    kernel.explain(f"Publish {mapping.text()}: slirp4netns listens on the host's port",
                   f"connect({api}); write({json.dumps(request)})")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(api)
        conn.sendall(json.dumps(request).encode())
        conn.shutdown(socket.SHUT_WR)
        reply = json.loads(conn.recv(65536) or b"{}")
    if "error" in reply or "return" not in reply:
        detail = (reply.get("error") or {}).get("desc", "no answer")
        raise PortInUse(f"-p {mapping.host_port}:{mapping.container_port}: slirp4netns cannot "
                        f"listen on it: {detail}", "choose another host port")


def stop_for(container_id: str) -> None:
    """The container has ended (supervisor.finish): end its slirp4netns now
    rather than when its owner exits, so that nothing of it outlives it."""
    net = _owned.get(container_id)
    if net is not None:
        stop(net)


def stop(net: UserNet) -> None:
    """Close the pipe end slirp4netns watches, and wait for it to exit."""
    _owned.pop(net.container_id, None)
    if net.keep_alive is not None:
        os.close(net.keep_alive)
        net.keep_alive = None
    if net.process is not None:
        try:
            net.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            net.process.kill()
            net.process.wait()
