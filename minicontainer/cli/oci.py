"""`minict-oci`: minict's runtime half, with runc's command line.

An engine (podman, containerd, CRI-O) writes a bundle and runs its runtime
once per step: `create --bundle B ID`, `start ID`, `state ID`, `kill ID
SIG`, `delete ID`, `exec --process F ID`. This is that command line, so
`podman --runtime minict-oci` and `ctr run --runc-binary minict-oci` work;
minicontainer/oci does the work. Parse, call one function, print.

Errors are one line on stderr (and, with --log, a line in the log file in
--log-format, which is where conmon and containerd's shim look for them),
with the exit code of the error's class (minicontainer/errors.py).
"""

import json
import os
import sys
import time
from pathlib import Path

import click

from ..errors import BadArgument, MinictError, UnsupportedConfig
from ..syscalls import Kernel, Narrator
from ..oci import create as creation, defaults, exec as execution, lifecycle, state

VERSION = "minict-oci version 0.1\nspec: " + state.OCI_VERSION


class Globals:
    def __init__(self, root, log, log_format, debug, explain):
        self.root = Path(root)
        self.log, self.log_format = log, log_format
        fd = None
        if debug and log:
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.kernel = Kernel(Narrator(bool(debug or explain), fd))

    def write_log(self, level: str, message: str) -> None:
        if not self.log:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = (json.dumps({"level": level, "msg": message, "time": stamp})
                if self.log_format == "json" else f"{stamp} {level}: {message}")
        try:
            with open(self.log, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass


ACTIVE = []   # the Globals of this run, for main() to log an error into --log


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", metavar="DIR", help="Where the containers' state lives (default "
              "/run/minict-oci; for a user $XDG_RUNTIME_DIR/minict-oci).")
@click.option("--log", metavar="FILE", help="Errors (and, with --debug, the narration) go here.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--debug", is_flag=True, help="Narrate every kernel-facing step (into --log).")
@click.option("--explain", is_flag=True, envvar="MINICT_EXPLAIN",
              help="Narrate every kernel-facing step on stderr.")
@click.option("--systemd-cgroup", is_flag=True, help="Refused: no systemd cgroup driver.")
@click.option("--cgroup-manager", type=click.Choice(["cgroupfs", "disabled", "systemd"]),
              default="cgroupfs", help="crun's flag, which podman passes (systemd: refused).")
@click.option("--rootless", type=click.Choice(["auto", "true", "false"]), default="auto",
              help="Accepted for runc's callers (minict-oci makes no cgroup where it cannot).")
@click.version_option(version="0.1", message=VERSION)
@click.pass_context
def cli(ctx, root, log, log_format, debug, explain, systemd_cgroup, cgroup_manager, rootless):
    """minict-oci: an OCI runtime with runc's command line."""
    ctx.obj = Globals(root or state.default_root(), log, log_format, debug, explain)
    ACTIVE[:] = [ctx.obj]
    if systemd_cgroup or cgroup_manager == "systemd":
        raise UnsupportedConfig("--systemd-cgroup: minict-oci has no systemd cgroup driver",
                                "podman: --cgroup-manager=cgroupfs; containerd: "
                                "SystemdCgroup = false")


@cli.command("create")
@click.option("--bundle", "-b", default=".", metavar="DIR")
@click.option("--pid-file", metavar="FILE")
@click.option("--console-socket", metavar="SOCKET")
@click.option("--no-pivot", is_flag=True, help="Accepted; minict-oci always uses pivot_root.")
@click.option("--no-new-keyring", is_flag=True, help="Accepted: no keyring is ever made.")
@click.option("--preserve-fds", type=int, default=0)
@click.argument("container_id")
@click.pass_obj
def create_cmd(g, bundle, pid_file, console_socket, no_pivot, no_new_keyring, preserve_fds,
               container_id):
    """Make the container; it waits for `start`."""
    creation.create(g.kernel, g.root, container_id, bundle, pid_file=pid_file,
                    console_socket=console_socket, preserve_fds=preserve_fds)


@cli.command("start")
@click.argument("container_id")
@click.pass_obj
def start_cmd(g, container_id):
    """Run the command of a created container."""
    creation.start(g.kernel, g.root, container_id)


@cli.command("run")
@click.option("--bundle", "-b", default=".", metavar="DIR")
@click.option("--pid-file", metavar="FILE")
@click.option("--console-socket", metavar="SOCKET")
@click.option("--detach", "-d", is_flag=True)
@click.option("--no-pivot", is_flag=True)
@click.option("--no-new-keyring", is_flag=True)
@click.option("--preserve-fds", type=int, default=0)
@click.argument("container_id")
@click.pass_obj
def run_cmd(g, bundle, pid_file, console_socket, detach, no_pivot, no_new_keyring, preserve_fds,
            container_id):
    """create + start (+ wait and delete, without --detach)."""
    sys.exit(lifecycle.run(g.kernel, g.root, container_id, bundle, detach=detach,
                           pid_file=pid_file, console_socket=console_socket,
                           preserve_fds=preserve_fds))


@cli.command("state")
@click.argument("container_id")
@click.pass_obj
def state_cmd(g, container_id):
    """The runtime spec's state JSON."""
    click.echo(json.dumps(state.oci_state(g.root, state.load(g.root, container_id)), indent=2))


@cli.command("kill")
@click.option("--all", "-a", "every", is_flag=True, help="Every process of the container.")
@click.argument("container_id")
@click.argument("signal_name", default="TERM")
@click.pass_obj
def kill_cmd(g, every, container_id, signal_name):
    """Send a signal (TERM, SIGKILL, 9...) to the container."""
    lifecycle.kill(g.kernel, g.root, container_id, lifecycle.parse_signal(signal_name), every)


@cli.command("delete")
@click.option("--force", "-f", is_flag=True)
@click.argument("container_id")
@click.pass_obj
def delete_cmd(g, force, container_id):
    """Remove a stopped container (--force: kill it first)."""
    if force and not (g.root / container_id / "state.json").exists():
        return   # runc: delete --force of a container that is gone succeeds
    lifecycle.delete(g.kernel, g.root, container_id, force)


@cli.command("exec", context_settings={"ignore_unknown_options": True})
@click.option("--process", "-p", "process_file", metavar="FILE")
@click.option("--tty", "-t", is_flag=True)
@click.option("--detach", "-d", is_flag=True)
@click.option("--pid-file", metavar="FILE")
@click.option("--console-socket", metavar="SOCKET")
@click.option("--env", "-e", multiple=True)
@click.option("--cwd", metavar="DIR")
@click.option("--preserve-fds", type=int, default=0)
@click.argument("container_id")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def exec_cmd(g, process_file, tty, detach, pid_file, console_socket, env, cwd, preserve_fds,
             container_id, args):
    """Run another process in a running container."""
    if not process_file and not args:
        raise BadArgument("exec needs --process FILE or a command", "e.g. exec ID sh -c 'ps'")
    record = state.load(g.root, container_id)
    proc = execution.process_of(record, process_file, args, tty=tty, env=env, cwd=cwd)
    sys.exit(execution.exec_in(g.kernel, g.root, container_id, proc, detach=detach,
                               pid_file=pid_file, console_socket=console_socket))


@cli.command("ps")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.argument("container_id")
@click.argument("ps_args", nargs=-1)
@click.pass_obj
def ps_cmd(g, fmt, container_id, ps_args):
    """The container's processes (host pids)."""
    rows = lifecycle.ps_rows(g.root, container_id)
    if fmt == "json":
        click.echo(json.dumps([pid for pid, _ in rows]))
        return
    click.echo("PID\tCMD")
    for pid, command in rows:
        click.echo(f"{pid}\t{command}")


@cli.command("list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True)
@click.pass_obj
def list_cmd(g, fmt, quiet):
    """Every container in --root."""
    rows = lifecycle.list_rows(g.root)
    if quiet:
        for row in rows:
            click.echo(row["id"])
    elif fmt == "json":
        click.echo(json.dumps(rows))
    else:
        click.echo("ID\tPID\tSTATUS\tBUNDLE\tCREATED")
        for row in rows:
            click.echo(f"{row['id']}\t{row['pid']}\t{row['status']}\t{row['bundle']}\t"
                       f"{row['created']}")


@cli.command("spec")
@click.option("--bundle", "-b", default=".", metavar="DIR")
@click.option("--rootless", is_flag=True)
@click.pass_obj
def spec_cmd(g, bundle, rootless):
    """Write a starting config.json into the bundle (as `runc spec`)."""
    path = Path(bundle) / "config.json"
    if path.exists():
        raise BadArgument(f"{path} exists already", "remove it first, or give another --bundle")
    path.write_text(json.dumps(defaults.default_spec(rootless), indent=2) + "\n")


@cli.command("features")
def features_cmd():
    """What this runtime supports (runtime-spec features.md)."""
    click.echo(json.dumps(defaults.features(), indent=2))


@cli.command("pause")
@click.argument("container_id")
@click.pass_obj
def pause_cmd(g, container_id):
    """Freeze every process (cgroup v2 freezer)."""
    lifecycle.freeze(g.kernel, g.root, container_id, True)


@cli.command("resume")
@click.argument("container_id")
@click.pass_obj
def resume_cmd(g, container_id):
    """Thaw a paused container."""
    lifecycle.freeze(g.kernel, g.root, container_id, False)


@cli.command("update")
@click.option("--resources", "-r", "resources", metavar="FILE|-", required=True)
@click.argument("container_id")
@click.pass_obj
def update_cmd(g, resources, container_id):
    """New linux.resources limits for a running container."""
    text = sys.stdin.read() if resources == "-" else Path(resources).read_text()
    lifecycle.update(g.kernel, g.root, container_id, text)


def main(argv=None):
    """Console-script entry point: one line and the error's code on failure."""
    try:
        code = cli.main(args=argv, prog_name="minict-oci", standalone_mode=False)
    except MinictError as exc:
        if ACTIVE:
            ACTIVE[0].write_log("error", exc.one_line())
        click.echo(f"minict-oci: {exc.one_line()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        click.echo(f"minict-oci: {exc.format_message()} (see minict-oci --help)", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    sys.exit(code or 0)
