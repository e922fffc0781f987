"""/etc/hostname, /etc/hosts and /etc/resolv.conf for one container.

Written into the container's directory by minict and bind-mounted over the
image's copies, so the image stays untouched and each container can have
its own. Contents follow what docker writes for the same network mode.
"""

LOCALHOST = ("127.0.0.1\tlocalhost\n"
             "::1\tlocalhost ip6-localhost ip6-loopback\n"
             "fe00::0\tip6-localnet\n"
             "ff00::0\tip6-mcastprefix\n"
             "ff02::1\tip6-allnodes\n"
             "ff02::2\tip6-allrouters\n")


def hostname_file(spec) -> bytes:
    return f"{spec.hostname}\n".encode()


def hosts_file(spec, host_hosts: str = "/etc/hosts") -> bytes:
    if spec.network == "host":
        return _read(host_hosts) or LOCALHOST.encode()
    # No other interface than lo yet: the hostname resolves to a loopback
    # address, as on a machine without a network (Debian's 127.0.1.1 rule).
    return (LOCALHOST + f"127.0.1.1\t{spec.hostname}\n").encode()


def resolv_conf(spec, host_resolv: str = "/etc/resolv.conf") -> bytes:
    text = (_read(host_resolv) or b"").decode(errors="replace")
    if spec.network == "host":
        return text.encode()
    # In its own network namespace the container cannot reach a resolver
    # on the host's loopback (systemd-resolved's 127.0.0.53, dnsmasq...),
    # so those lines are dropped, as docker does.
    kept = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and _is_loopback(words[1]):
            kept.append(f"# {line}  (host loopback: unreachable from the container)")
        else:
            kept.append(line)
    return ("\n".join(kept) + "\n").encode() if kept else b""


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def files_for(spec) -> dict[str, bytes]:
    """The files a container directory starts with."""
    return {"hostname": hostname_file(spec), "hosts": hosts_file(spec),
            "resolv.conf": resolv_conf(spec)}
