"""Handing out addresses: one lease file per address, claimed atomically.

    ROOT/networks/<name>/leases/10.88.0.7    contains the container id

A lease is written whole to a temporary file first and then given its
address's name with link(2), which fails (EEXIST) when the name is taken:
so two minicts starting containers at once can never get the same address,
and a minict killed half-way leaves either no lease or a complete one,
naming its container (the same idea as CNI's host-local IPAM, without a
lock: the kernel's link(2) is the lock). The first address of the subnet is
the network's own, the gateway; the last is the broadcast address.

Leases of containers that are gone are found by `minict cleanup` through
the id inside them (release_all_but).
"""

import ipaddress
import os
from pathlib import Path

from baselib.files import atomic_write

from ..errors import AddressesExhausted
from .config import Network, directory


def leases(root: Path, network: Network) -> Path:
    return directory(root, network.name) / "leases"


def allocate(root: Path, network: Network, container_id: str) -> str:
    """A free address of `network` for `container_id` (AddressesExhausted when none is)."""
    where = leases(root, network)
    where.mkdir(parents=True, exist_ok=True)
    claim = where / f".claim-{container_id}"
    atomic_write(claim, container_id.encode(), durable=False)
    try:
        for address in ipaddress.ip_network(network.subnet).hosts():
            if str(address) == network.gateway:
                continue
            try:
                os.link(claim, where / str(address))
            except FileExistsError:
                continue   # someone else's
            return str(address)
    finally:
        claim.unlink(missing_ok=True)
    raise AddressesExhausted(f"network {network.name} ({network.subnet}) has no free address left",
                             "remove containers from it, or make a network with a larger --subnet")


def release(root: Path, network: Network, container_id: str) -> list[str]:
    """Give back every address `container_id` holds on `network`; returns them."""
    freed = []
    for lease in sorted(leases(root, network).glob("[0-9]*")):
        if _holder(lease) == container_id:
            lease.unlink(missing_ok=True)
            freed.append(lease.name)
    return freed


def holders(root: Path, network: Network) -> dict[str, str]:
    """address -> container id, for every lease of `network`."""
    return {lease.name: _holder(lease) for lease in sorted(leases(root, network).glob("[0-9]*"))}


def _holder(lease: Path) -> str:
    try:
        return lease.read_text().strip()
    except FileNotFoundError:
        return ""
