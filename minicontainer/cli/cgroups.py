"""cgroup commands: `minict stats` and `minict update`, and the resource flags.

`limit_options` is the set of docker-style resource flags; `minict run`
decorates itself with it too, so both commands accept the same ones, and
both turn them into a Limits with runtime.resources.limits_from_flags.
"""

import click

from ..cgroups.report import stats_table
from ..runtime.resources import limits_from_flags, stats_targets, update
from ..syscalls import Narrator


def limit_options(command):
    """Add docker's resource flags to a click command (values stay strings)."""
    options = [
        click.option("--memory", "-m", metavar="SIZE", help="Memory limit (memory.max), e.g. 64m."),
        click.option("--memory-swap", metavar="SIZE",
                     help="Memory plus swap (docker semantics); -1 for unlimited swap."),
        click.option("--memory-reservation", metavar="SIZE",
                     help="Soft floor protected from reclaim (memory.low)."),
        click.option("--pids-limit", metavar="N", help="Most processes (pids.max); -1 unlimited."),
        click.option("--cpus", metavar="N", help="CPU time in CPUs (cpu.max), e.g. 0.5."),
        click.option("--cpu-shares", "-c", metavar="N",
                     help="Relative CPU share 2..262144 (converted to cpu.weight)."),
        click.option("--cpu-weight", metavar="N", help="cgroup v2 cpu.weight 1..10000."),
        click.option("--cpuset-cpus", metavar="LIST", help="CPUs allowed, e.g. 0-1,3."),
        click.option("--device-read-bps", metavar="DEV:RATE", multiple=True,
                     help="Read rate limit for a block device (io.max), e.g. /dev/sda:1mb."),
        click.option("--device-write-bps", metavar="DEV:RATE", multiple=True,
                     help="Write rate limit for a block device (io.max)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _explain(config):
    """The project's narration (syscalls.Narrator), so --explain reads the same everywhere."""
    return Narrator(True).say if config.explain else None


@click.command("stats")
@click.option("--no-stream", is_flag=True, help="Print one table and exit.")
@click.argument("containers", nargs=-1)
@click.pass_obj
def stats_cmd(config, no_stream, containers):
    """Show CPU, memory, block I/O and pids of running containers (from their cgroups)."""
    targets = stats_targets(config, containers)
    if no_stream:
        click.echo(stats_table(targets))
        return
    while True:  # Ctrl-C ends it (main() prints "interrupted")
        table = stats_table(targets)
        click.echo("\x1b[2J\x1b[H" + table)  # clear the screen, like docker stats


@click.command("update")
@limit_options
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def update_cmd(config, containers, **flags):
    """Change the resource limits of running containers (and keep them in their records)."""
    limits = limits_from_flags(flags, updating=True)
    if limits is None:
        raise click.UsageError("give at least one limit to change, e.g. --memory 128m")
    for name in update(config, containers, limits, _explain(config)):
        click.echo(name)
