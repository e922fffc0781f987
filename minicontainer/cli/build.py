"""`minict build`: an image from a Dockerfile (minicontainer/build/)."""

import os
import time
from pathlib import Path

import click

from ..build.builder import BuildOptions, Builder
from ..errors import BadArgument, NotRoot


@click.command("build")
@click.argument("context", type=click.Path(path_type=Path))
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME[:TAG]",
              help="Name the image (several -t give several names).")
@click.option("-f", "--file", "dockerfile", type=click.Path(path_type=Path), metavar="PATH",
              help="The Dockerfile (default: CONTEXT/Dockerfile).")
@click.option("--build-arg", "build_args", multiple=True, metavar="NAME=VALUE",
              help="A value for an ARG of the Dockerfile.")
@click.option("--no-cache", is_flag=True, help="Run every step again (the cache is still filled).")
@click.option("--target", metavar="STAGE", help="Stop after this stage (FROM ... AS STAGE).")
@click.option("--network", default="bridge", show_default=True, metavar="bridge|host|none",
              help="The network of RUN steps.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image id.")
@click.pass_context
def build_cmd(ctx, context, tags, dockerfile, build_args, no_cache, target, network, quiet):
    """Build an image from a Dockerfile in the CONTEXT directory."""
    if os.geteuid() != 0:
        raise NotRoot("minict build needs root (its RUN steps are containers)",
                      "run it as root: sudo minict build ...")
    if not context.is_dir():
        raise BadArgument(f"build context {context} is not a directory",
                          "give the directory holding the Dockerfile and the files it copies")
    if network not in ("bridge", "host", "none"):
        raise BadArgument(f"--network {network}: a build's RUN steps use bridge, host or none",
                          "e.g. --network host")
    args = {}
    for item in build_args:
        name, eq, value = item.partition("=")
        if not name:
            raise BadArgument(f"--build-arg {item!r}: expected NAME=VALUE", "e.g. --build-arg V=1")
        args[name] = value if eq else os.environ.get(name, "")   # docker: NAME alone takes $NAME
    options = BuildOptions(context=context, dockerfile=dockerfile, tags=tags, build_args=args,
                           no_cache=no_cache, target=target, network=network)
    started = time.monotonic()
    image = Builder(ctx.obj, options, out=(lambda line: None) if quiet else None).build()
    if quiet:
        click.echo(image.id)
        return
    click.echo(f"Built {image.id[7:19]} in {time.monotonic() - started:.1f}s")
    for tag in tags:
        click.echo(f"Tagged {tag}")
    click.echo(image.id)
