"""`minict pull`, `minict push`, `minict login`, `minict logout`: parse, call, print."""

import sys

import click

from ..errors import BadArgument
from ..image.pull import pull
from ..image.push import push
from ..image.reference import parse
from ..image.registry import RegistryClient
from ..image.registry.credentials import Credentials, auth_file, remove, save
from ..image.registry.endpoint import normalize_server
from ..image.store import Store


@click.command("pull")
@click.argument("ref")
@click.option("--platform", metavar="OS/ARCH[/VARIANT]",
              help="Pick this platform from a multi-platform image (default: this machine's).")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Allow plain HTTP to this registry (repeatable; also "
                   "MINICT_INSECURE_REGISTRIES). Loopback registries are always allowed.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image name.")
@click.pass_obj
def pull_cmd(config, ref, platform, insecure, quiet):
    """Pull an image from a registry, e.g. `minict pull alpine:3.19`."""
    # Status lines and bars go to stdout, as docker's do; stderr carries
    # only the one-line error, if there is one.
    pull(Store(config.root), ref, platform, insecure=insecure,
         out=None if quiet else sys.stdout)
    click.echo(str(parse(ref)))


@click.command("login")
@click.argument("server", required=False, default="docker.io")
@click.option("-u", "--username", help="Username (asked for when on a terminal).")
@click.option("-p", "--password", help="Password (visible to other users in ps: "
                                       "prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Allow plain HTTP to this registry (repeatable).")
def login_cmd(server, username, password, password_stdin, insecure):
    """Check credentials against a registry, then store them (mode 0600)."""
    registry = normalize_server(server)
    if password and password_stdin:
        raise BadArgument("--password and --password-stdin both given", "use one of them")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not username:
            raise BadArgument("--password-stdin needs --username", "add -u USER")
    elif password:
        click.echo("WARNING: a password on the command line is visible to other users; "
                   "use --password-stdin", err=True)
    interactive = sys.stdin.isatty()
    if not username:
        if not interactive:
            raise BadArgument("no username given", "add -u USER")
        username = click.prompt("Username")
    if not password:
        if not interactive:
            raise BadArgument("no password given", "add --password-stdin and pipe it in")
        password = click.prompt("Password", hide_input=True)
    if not username or not password:
        raise BadArgument("empty username or password", "give both")
    credentials = Credentials(username, password)
    with RegistryClient(registry, insecure=insecure, credentials=credentials) as client:
        needed = client.check_login()
    path = save(registry, username, password)
    if not needed:
        click.echo(f"Note: {registry} does not ask for authentication; credentials saved anyway",
                   err=True)
    click.echo(f"Login Succeeded (credentials for {registry} stored in {path})")


@click.command("logout")
@click.argument("server", required=False, default="docker.io")
def logout_cmd(server):
    """Forget the credentials stored for a registry."""
    registry = normalize_server(server)
    if remove(registry):
        click.echo(f"Removing login credentials for {registry} from {auth_file()}")
    else:
        click.echo(f"Not logged in to {registry}")


@click.command("push")
@click.argument("ref")
@click.option("--insecure-registry", "insecure", multiple=True, metavar="HOST[:PORT]",
              help="Allow plain HTTP to this registry (repeatable; also "
                   "MINICT_INSECURE_REGISTRIES). Loopback registries are always allowed.")
@click.pass_obj
def push_cmd(config, ref, insecure):
    """Push an image to the registry its name starts with,
    e.g. `minict push localhost:5000/team/app:1.0`."""
    # A line per blob and the digest go to stdout, as docker's do.
    push(Store(config.root), ref, insecure=insecure, out=sys.stdout)
