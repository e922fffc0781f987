"""The `minict` command line: parse, call one library function, print.

No logic lives here. Each command family has its own module in this package
and is imported only when that command runs (LazyGroup), so `minict run`
does not pay for the registry client's imports, and `minict images` does not
pay for pyroute2's.

Errors: libraries raise minicontainer.errors.MinictError subclasses; main()
prints them as one line on stderr and exits with the class's code.
"""

import importlib
import os
import sys

import click

from ..config import Config
from ..errors import MinictError

# command name -> (module, attribute). Add a command by adding a line here.
LAZY_COMMANDS = {
    # images (issue: image store)
    "images": ("minicontainer.cli.images", "images_cmd"),
    "image": ("minicontainer.cli.images", "image_group"),
    "rmi": ("minicontainer.cli.images", "rmi_cmd"),
    "load": ("minicontainer.cli.images", "load_cmd"),
    "import": ("minicontainer.cli.images", "import_cmd"),
    "pull": ("minicontainer.cli.registry", "pull_cmd"),
    "login": ("minicontainer.cli.registry", "login_cmd"),
    "logout": ("minicontainer.cli.registry", "logout_cmd"),
    # containers (issue 3: run and the lifecycle)
    "run": ("minicontainer.cli.containers", "run_cmd"),
    "ps": ("minicontainer.cli.containers", "ps_cmd"),
    "stop": ("minicontainer.cli.containers", "stop_cmd"),
    "kill": ("minicontainer.cli.containers", "kill_cmd"),
    "rm": ("minicontainer.cli.containers", "rm_cmd"),
    "start": ("minicontainer.cli.containers", "start_cmd"),
    "exec": ("minicontainer.cli.containers", "exec_cmd"),
    "logs": ("minicontainer.cli.containers", "logs_cmd"),
    "inspect": ("minicontainer.cli.containers", "inspect_cmd"),
    "cleanup": ("minicontainer.cli.containers", "cleanup_cmd"),
    # cgroups (issue 4)
    "stats": ("minicontainer.cli.cgroups", "stats_cmd"),
    "update": ("minicontainer.cli.cgroups", "update_cmd"),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module_name, attr = self.lazy_commands[name]
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("minicontainer"):
                    return None  # that command family is not written yet
                raise
            return getattr(module, attr, None)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy_commands=LAZY_COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"]})
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


def lazy(name: str, module: str, attr: str) -> None:
    """Register a lazily imported command (for command families in other modules)."""
    LAZY_COMMANDS[name] = (module, attr)
    cli.lazy_commands[name] = (module, attr)
