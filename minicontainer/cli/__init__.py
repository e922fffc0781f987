"""The `minict` command line: parse, call one library function, print.

No logic lives here. Each command family has its own module in this
package (images, build, registry, containers, cgroups, network); `cli` below is the group
they all hang from. A command's module is imported when that command runs
(click's documented lazy loading of subcommands: LazyGroup), so `minict run`
loads the runtime and not the registry client, and `minict images` not the
runtime.

Errors: libraries raise minicontainer.errors.MinictError subclasses; main()
prints them as one line on stderr and exits with the class's code. click's
own usage errors are made one line too, with exit status 2.
"""

import importlib
import os
import sys

import click

from ..config import Config
from ..errors import MinictError

# command name -> (module of this package, the click command in it)
COMMANDS = {
    "images": ("images", "images_cmd"), "image": ("images", "image_group"), "rmi": ("images", "rmi_cmd"),
    "load": ("images", "load_cmd"), "import": ("images", "import_cmd"), "save": ("images", "save_cmd"),
    "tag": ("images", "tag_cmd"), "build": ("build", "build_cmd"),
    "pull": ("registry", "pull_cmd"), "push": ("registry", "push_cmd"), "login": ("registry", "login_cmd"),
    "logout": ("registry", "logout_cmd"),
    "run": ("containers", "run_cmd"), "ps": ("containers", "ps_cmd"), "stop": ("containers", "stop_cmd"),
    "kill": ("containers", "kill_cmd"), "rm": ("containers", "rm_cmd"), "start": ("containers", "start_cmd"),
    "exec": ("containers", "exec_cmd"), "logs": ("containers", "logs_cmd"),
    "inspect": ("containers", "inspect_cmd"), "cleanup": ("containers", "cleanup_cmd"),
    "stats": ("cgroups", "stats_cmd"), "update": ("cgroups", "update_cmd"),
    "network": ("network", "network_group"), "port": ("network", "port_cmd"),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when asked for (click's docs,
    "Lazily Loading Subcommands")."""

    def list_commands(self, ctx):
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx, name):
        if name in self.commands or name not in COMMANDS:   # (one added with add_command)
            return self.commands.get(name)
        module, attribute = COMMANDS[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
