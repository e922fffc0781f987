"""/etc/hostname, /etc/hosts and /etc/resolv.conf for one container.

Written into the container's directory by minict and bind-mounted over the
image's copies, so the image stays untouched and each container can have
its own. Contents follow what docker writes for the same network mode.
"""

from . import usernet

LOCALHOST = ("127.0.0.1\tlocalhost\n"
             "::1\tlocalhost ip6-localhost ip6-loopback\n"
             "fe00::0\tip6-localnet\n"
             "ff00::0\tip6-mcastprefix\n"
             "ff02::1\tip6-allnodes\n"
             "ff02::2\tip6-allrouters\n")


def hostname_file(hostname: str) -> bytes:
    return f"{hostname}\n".encode()


def hosts_file(engine, hostname: str, host_hosts: str = "/etc/hosts") -> bytes:
    """What /etc/hosts starts as. On a network, runtime/networking.py writes
    it again once the container has its address (networked_hosts)."""
    if engine.network == "host":
        own = (_read(host_hosts) or LOCALHOST.encode()).decode(errors="replace")
        return (own + extra_host_lines(engine.extra_hosts, HOST_ITSELF)).encode()
    # No interface but lo (yet): the hostname resolves to a loopback
    # address, as on a machine without a network (Debian's 127.0.1.1 rule).
    return (LOCALHOST + extra_host_lines(engine.extra_hosts, None)
            + f"127.0.1.1\t{hostname}\n").encode()


# --add-host NAME:host-gateway: the address at which the container reaches
# the host: its network's gateway (the bridge's address), or the host's own
# loopback when it shares the host's network.
HOST_ITSELF = "127.0.0.1"


def extra_host_lines(extra_hosts, gateway: str | None) -> str:
    """--add-host NAME:IP items as hosts lines (host-gateway -> `gateway`)."""
    lines = []
    for item in extra_hosts:
        name, _, address = item.partition(":")
        if address == "host-gateway":
            address = gateway or HOST_ITSELF
        lines.append(f"{address}\t{name}\n")
    return "".join(lines)


def networked_hosts(entries, extra_hosts=(), gateway: str | None = None) -> bytes:
    """/etc/hosts of a container on a network: localhost, its --add-host
    lines, then one line per (address, names) of the containers that share
    the network (itself included)."""
    return (LOCALHOST + extra_host_lines(extra_hosts, gateway)
            + "".join(f"{address}\t{names}\n" for address, names in entries)).encode()


SYSTEMD_RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"


def resolv_conf(engine, host_resolv: str = "/etc/resolv.conf",
                resolved_upstream: str = SYSTEMD_RESOLVED_UPSTREAM) -> bytes:
    """The host's resolv.conf, as the container can use it.

    In its own network namespace the container cannot reach a resolver on
    the host's loopback (systemd-resolved's 127.0.0.53, dnsmasq...): those
    lines are kept as comments saying so. When nothing else is left and the
    host runs systemd-resolved, its upstream servers are used instead (as
    docker does); otherwise the container has no nameserver, and --dns
    gives it one. --dns replaces the host's servers altogether.
    """
    text = (_read(host_resolv) or b"").decode(errors="replace")
    if engine.network == "host":
        return text.encode()
    if engine.network == usernet.NAME and not engine.dns:
        # slirp4netns answers at 10.0.2.3 and asks the host's own resolver,
        # loopback ones included (its queries are the user's sockets).
        kept = [f"# {line}" if line.startswith("nameserver") else line
                for line in text.splitlines()]
        return ("\n".join(kept + [f"nameserver {usernet.NAMESERVER}"]) + "\n").encode()
    kept, servers = [], []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            if _is_loopback(words[1]):
                kept.append(f"# {line}  (host loopback: unreachable from the container)")
                continue
            servers.append(words[1])
        kept.append(line)
    if engine.dns:
        kept = [f"# {line}" if line.startswith("nameserver") else line for line in kept]
        kept += [f"nameserver {server}" for server in engine.dns]
    elif not servers:
        upstream = (_read(resolved_upstream) or b"").decode(errors="replace")
        found = [line for line in upstream.splitlines() if line.startswith("nameserver")
                 and not _is_loopback(line.split()[1] if len(line.split()) > 1 else "")]
        if found:
            kept += ["# the host's systemd-resolved forwards to these:"] + found
        else:
            kept.append("# no nameserver the container can reach: give one with --dns")
    return ("\n".join(kept) + "\n").encode() if kept else b""


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def files_for(engine, hostname: str) -> dict[str, bytes]:
    """The files a container directory starts with (`engine`: its
    EngineRecord: network, --add-host, --dns)."""
    return {"hostname": hostname_file(hostname), "hosts": hosts_file(engine, hostname),
            "resolv.conf": resolv_conf(engine)}
