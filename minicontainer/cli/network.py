"""`minict network create|ls|inspect|rm` and `minict port`: parse, call, print."""

import json
from dataclasses import asdict

import click

from ..network import config as networks
from ..network import ipam
from ..runtime import networking, state
from .common import kernel_for, need_root, need_root_or_own_store
from .listing import print_rows


@click.group("network")
def network_group():
    """Manage networks (bridge, and networks of your own)."""


@network_group.command("create")
@click.option("--subnet", metavar="CIDR", help="e.g. 10.90.0.0/24 (default: the next free 10.89.N.0/24).")
@click.argument("name")
@click.pass_obj
def network_create_cmd(config, subnet, name):
    """Make a network: containers on it find each other by name."""
    need_root("network create")
    network = networks.create(config.root, name, subnet)
    click.echo(network.name)


@network_group.command("ls")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def network_ls_cmd(config, fmt):
    """List networks."""
    rows = [{"Name": n.name, "Subnet": n.subnet, "Gateway": n.gateway, "Bridge": n.bridge}
            for n in networks.listing(config.root)]
    print_rows(rows, [("NAME", "Name"), ("SUBNET", "Subnet"), ("GATEWAY", "Gateway"),
                      ("BRIDGE", "Bridge")], quiet=False, fmt=fmt)


@network_group.command("inspect")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def network_inspect_cmd(config, names):
    """Show networks and the containers on them, as JSON."""
    shown = []
    for name in names:
        network = networks.load(config.root, name)
        layout = state.Layout.of(config)
        containers = {container_id: {"Name": names_.split()[0], "IPv4Address": address}
                      for address, names_, container_id, _
                      in networking.hosts_entries(layout, config.root, network)}
        shown.append({**{k.capitalize(): v for k, v in asdict(network).items()},
                      "Containers": containers,
                      "Leases": len(ipam.holders(config.root, network))})
    click.echo(json.dumps(shown, indent=2))


@network_group.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def network_rm_cmd(config, names):
    """Remove networks no container uses any more."""
    need_root("network rm")
    for name in names:
        networking.remove_network(config, name, kernel_for(config))
        click.echo(name)


@click.command("port")
@click.argument("container")
@click.pass_obj
def port_cmd(config, container):
    """List a container's published ports (80/tcp -> 0.0.0.0:8080)."""
    need_root_or_own_store(config, "port")
    record = state.find(state.Layout.of(config), container)
    for line in networking.port_lines(record):
        click.echo(line)
