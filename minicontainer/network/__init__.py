"""Container networking: a bridge per network, a veth pair per container,
an address from a small IPAM, NAT out and published ports in.

One module per job:

    config.py    networks: `bridge` (the default, minict0) and the ones
                 `minict network create` makes; stored under ROOT/networks/
    ipam.py      addresses handed out, one lease file per address, never twice
    ports.py     `-p [IP:]HOST:CTR[/proto]`, `-p CTR`, `-P`
    firewall.py  iptables rules in minict's own chains, each tagged with the
                 container or network it belongs to

This package describes networks and rules as data; the plumbing of one
container (bridge, veth, address, route, rules, and taking it all down
again) is minicontainer/runtime/networking.py's, through
minicontainer.syscalls.Kernel (netlink through pyroute2, iptables,
sysctls), so --explain narrates each step. Nothing here imports
minicontainer.runtime.
"""
