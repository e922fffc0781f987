"""The `minict` command line: parse, call one library function, print.

No logic lives here. Each command family has its own module in this
package (images, build, registry, containers, cgroups, network); `cli` below is the group
they all hang from.

Errors: libraries raise minicontainer.errors.MinictError subclasses; main()
prints them as one line on stderr and exits with the class's code. click's
own usage errors are made one line too, with exit status 2.
"""

import os
import sys

import click

from ..config import Config
from ..errors import MinictError
from . import build, cgroups, containers, images, network, registry


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", envvar="MINICT_ROOT", metavar="DIR",
              help="Persistent state (images, containers). Default /var/lib/minict.")
@click.option("--state", envvar="MINICT_STATE", metavar="DIR",
              help="Runtime state (pids, mounts). Default /run/minict.")
@click.option("--explain", is_flag=True, default=None,
              help="Narrate each kernel-facing step on stderr (or MINICT_EXPLAIN=1).")
@click.option("--debug", is_flag=True, envvar="MINICT_DEBUG",
              help="Show a traceback instead of one-line errors.")
@click.version_option(package_name="minicontainer-hpcshim", prog_name="minict")
@click.pass_context
def cli(ctx, root, state, explain, debug):
    """minict: a small, readable container runtime."""
    ctx.obj = Config.from_env(root=root, state=state, explain=explain)
    if debug:
        os.environ["MINICT_DEBUG"] = "1"  # read by main() when an error arrives


for command in (images.images_cmd, images.image_group, images.rmi_cmd, images.load_cmd,
                images.import_cmd, images.save_cmd, images.tag_cmd, build.build_cmd,
                registry.pull_cmd, registry.push_cmd, registry.login_cmd, registry.logout_cmd,
                containers.run_cmd, containers.ps_cmd, containers.stop_cmd, containers.kill_cmd,
                containers.rm_cmd, containers.start_cmd, containers.exec_cmd, containers.logs_cmd,
                containers.inspect_cmd, containers.cleanup_cmd, cgroups.stats_cmd,
                cgroups.update_cmd, network.network_group, network.port_cmd):
    cli.add_command(command)


def main(argv=None):
    """Console-script entry point: run the CLI, turn MinictError into one line."""
    try:
        # Without standalone mode, click returns the code a command gave to
        # ctx.exit(code) instead of exiting; commands that just return give None.
        code = cli.main(args=argv, prog_name="minict", standalone_mode=False)
    except MinictError as exc:
        if os.environ.get("MINICT_DEBUG"):
            raise
        click.echo(f"minict: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("minict: aborted", err=True)
        sys.exit(130)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()            # a group given no command: its help is the answer
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        # One line, like every other error, naming where the usage is.
        where = exc.ctx.command_path if exc.ctx else "minict"
        click.echo(f"minict: {exc.format_message()} (see {where} --help)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("minict: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
