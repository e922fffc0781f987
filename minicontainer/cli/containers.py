"""`minict run`, `ps`, `stop`, `kill`, `rm`, `exec`, `logs`, `inspect`,
`start` and `cleanup`: parse, call one runtime function, print.

Exit codes: `run`, `start` and `exec` exit with the command's own status
(128+N when it was killed by signal N), or docker's 125/126/127 when
minict failed / the command cannot be executed / is not found. Bad input
detected before anything is created keeps its own code (errors.py).
"""

import json
import sys

import click

from ..runtime import lifecycle
from ..runtime.exec import exec_in
from ..runtime.recovery import recover
from ..runtime.request import RunRequest
from ..runtime.run import run_image
from ..runtime.command import parse_signal
from .cgroups import limit_options
from .common import kernel_for, need_root_or_own_store
from .listing import print_rows, shorten


def _exit_with(code: int) -> None:
    """Exit with the container's status. (click, run with standalone_mode=False
    as minict's main() does, returns ctx.exit()'s code instead of exiting.)"""
    sys.stdout.flush()
    sys.exit(code)


# ---- run ----------------------------------------------------------------------------------

class RunCommand(click.Command):
    """click's command, except that `--gpu` standing alone means `--gpu=any`.

    click gives an option with an optional value the next word as its
    value, so `minict run --gpu busybox nvidia-smi` would read `busybox` as
    the GPU mode. Like hpcshim's `--gpu`, a mode must be attached with `=`;
    so before click parses, a bare `--gpu` among the options gets `=any`.
    Which words are options is read from this command's own parameters.
    """

    def parse_args(self, ctx, args):
        takes_value = {name for param in self.params if isinstance(param, click.Option)
                       and not param.is_flag for name in param.opts}
        words, i = list(args), 0
        while i < len(words):
            word = words[i]
            if word == "--" or not word.startswith("-") or word == "-":
                break                                    # IMAGE: options end here
            if word == "--gpu":
                words[i] = "--gpu=any"
            elif _takes_next_word(word, takes_value):
                i += 1                                   # skip this option's value
            i += 1
        return super().parse_args(ctx, words)


def _takes_next_word(word: str, takes_value: set[str]) -> bool:
    """Does option word `word` take the word after it as its value? (`-e`,
    `--name`, and a bundle of short options that ends in one: `-ie`; not
    `--name=x` or `-eNAME=x`, whose value is attached.)"""
    if word.startswith("--"):
        return word in takes_value
    for position, letter in enumerate(word[1:], start=1):
        if f"-{letter}" in takes_value:
            return position == len(word) - 1
    return False


@click.command("run", cls=RunCommand, context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and attached.")
@click.option("-t", "--tty", is_flag=True, help="Give the container a pseudo-terminal.")
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the container id.")
@click.option("--rm", "auto_remove", is_flag=True, help="Remove the container when it exits.")
@click.option("--name", metavar="NAME", help="Name the container (default: a generated name).")
@click.option("-e", "--env", multiple=True, metavar="NAME[=VALUE]", help="Set an environment variable.")
@click.option("--env-file", multiple=True, metavar="FILE", help="Read NAME=VALUE lines from FILE.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the container.")
@click.option("-u", "--user", metavar="USER[:GROUP]", help="Name or uid[:gid] from the image.")
@click.option("--hostname", metavar="NAME", help="Container hostname (default: its short id).")
@click.option("-v", "--volume", multiple=True, metavar="HOST:CTR[:ro]", help="Bind-mount a host path.")
@click.option("--tmpfs", multiple=True, metavar="PATH[:OPTS]", help="Mount a tmpfs at PATH.")
@click.option("--read-only", is_flag=True, help="Mount the container's root read-only.")
@click.option("--entrypoint", metavar="CMD", help="Replace the image's entrypoint.")
@click.option("--cap-add", multiple=True, metavar="CAP", help="Add a capability (or ALL).")
@click.option("--cap-drop", multiple=True, metavar="CAP", help="Drop a capability (or ALL).")
@click.option("--privileged", is_flag=True,
              help="All capabilities, no masked paths, /sys writable, no seccomp filter.")
@click.option("--security-opt", "security_opt", multiple=True, metavar="seccomp=unconfined",
              help="Load no seccomp filter (the default filter refuses calls such as keyctl, "
                   "unshare, mount: see runtime/syscall_filter.py).")
@click.option("--net", "--network", "network", default="bridge", show_default=True,
              metavar="NETWORK",
              help="bridge (the default network), none (loopback only), host, "
                   "container:NAME (share its network), or a network of `minict network create`.")
@click.option("-p", "--publish", multiple=True, metavar="[IP:]HOST:CTR[/proto]",
              help="Publish a container port on the host, e.g. -p 8080:80 (-p 80: a free host port).")
@click.option("-P", "--publish-all", is_flag=True,
              help="Publish every port of the image's ExposedPorts, each on a free host port.")
@click.option("--init", is_flag=True, help="Run a tiny reaper as PID 1 that forwards signals.")
@click.option("--device", multiple=True, metavar="HOST[:CTR][:rwm]",
              help="Give the container a device of this host: the node is made in its /dev and "
                   "the device controller allows it (r read, w write, m mknod; default rwm).")
@click.option("--gpu", metavar="[=MODE]",
              help="Give the container this host's GPUs (hpcshim's discovery). Alone: any vendor, "
                   "or fail; =auto: if there are any; =nvidia, =rocm; =none.")
@click.option("--gpus", metavar="all|N|device=0,2",
              help="docker's spelling of --gpu=nvidia: all (the job's GPUs, or every one), the "
                   "first N, or these host GPUs.")
@click.option("--mount", multiple=True, metavar="type=bind|tmpfs|volume,...",
              help="docker's long form of -v/--tmpfs: type=bind,source=/h,target=/c[,readonly]; "
                   "type=tmpfs,target=/c[,tmpfs-size=64m]; type=volume,source=NAME,target=/c.")
@click.option("--ipc", default="private", show_default=True,
              metavar="private|shareable|host|container:NAME",
              help="IPC namespace and /dev/shm: the container's own, one others may join, "
                   "the host's, or another container's.")
@click.option("--shm-size", metavar="SIZE", help="Size of the container's own /dev/shm (default 64m).")
@click.option("--pid", default="private", show_default=True, metavar="private|host",
              help="host: share the host's PID namespace (see and signal its processes).")
@click.option("--ulimit", multiple=True, metavar="NAME=SOFT[:HARD]",
              help="A resource limit, e.g. --ulimit nofile=1024:4096, --ulimit memlock=-1 (-1: unlimited).")
@click.option("--add-host", multiple=True, metavar="NAME:IP",
              help="Add a line to /etc/hosts (IP may be host-gateway: the host, from the container).")
@click.option("--dns", multiple=True, metavar="IP", help="Use this nameserver (replaces the host's).")
@click.option("-l", "--label", multiple=True, metavar="KEY=VALUE", help="Set metadata on the container.")
@click.option("--gpu-plan", metavar="FILE",
              help="Inject the GPUs of an hpcshim Plan (JSON; `hpcshim exec --runtime minict` "
                   "passes /dev/fd/N).")
@limit_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run_cmd(config, image, command, **options):
    """Run COMMAND in a new container from IMAGE."""
    # Without root the default network differs (runtime/rootless.py)
    source = click.get_current_context().get_parameter_source("network")
    options["network_given"] = source != click.core.ParameterSource.DEFAULT
    code, container_id = run_image(config, RunRequest.from_flags(image, command, options))
    if code is None:
        click.echo(container_id)   # detached: it runs on
    else:
        _exit_with(code)


# ---- the rest of the lifecycle ------------------------------------------------------------

@click.command("ps")
@click.option("-a", "--all", "all_containers", is_flag=True, help="Show stopped containers too.")
@click.option("-q", "--quiet", is_flag=True, help="Only print container ids.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              help="json: one JSON object per line, as docker ps --format json.")
@click.pass_obj
def ps_cmd(config, all_containers, quiet, fmt):
    """List containers."""
    need_root_or_own_store(config, "ps")
    rows = lifecycle.listing(config, all_containers)
    print_rows(rows, [("CONTAINER ID", "ID"), ("IMAGE", "Image"),
                      ("COMMAND", lambda row: f'"{shorten(row["Command"], 20)}"'),
                      ("STATUS", "Status"), ("NAMES", "Names")], quiet=quiet, fmt=fmt)


@click.command("stop")
@click.option("-t", "--time", "timeout", type=float, default=10, show_default=True,
              help="Seconds to wait before killing it.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop_cmd(config, timeout, containers):
    """Stop running containers (their stop signal, then SIGKILL)."""
    need_root_or_own_store(config, "stop")
    for ref in containers:
        lifecycle.stop(config, ref, timeout, kernel_for(config))
        click.echo(ref)


@click.command("kill")
@click.option("-s", "--signal", "sig", default="KILL", show_default=True, help="Signal to send.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill_cmd(config, sig, containers):
    """Send a signal to running containers."""
    need_root_or_own_store(config, "kill")
    number = parse_signal(sig)
    for ref in containers:
        lifecycle.kill(config, ref, number, kernel_for(config))
        click.echo(ref)


@click.command("rm")
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm_cmd(config, force, containers):
    """Remove containers."""
    need_root_or_own_store(config, "rm")
    for ref in containers:
        lifecycle.remove(config, ref, force)
        click.echo(ref)


@click.command("start")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def start_cmd(config, containers):
    """Start stopped containers (detached)."""
    need_root_or_own_store(config, "start")
    for ref in containers:
        lifecycle.start(config, ref, kernel_for(config))
        click.echo(ref)


@click.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-i", "--interactive", is_flag=True, help="Keep stdin open and attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-terminal.")
@click.option("-e", "--env", multiple=True, metavar="NAME[=VALUE]", help="Set an environment variable.")
@click.option("-u", "--user", metavar="USER[:GROUP]", help="Run as this user of the container.")
@click.option("-w", "--workdir", metavar="DIR", help="Working directory inside the container.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_cmd(config, container, command, tty, interactive, env, user, workdir):
    """Run COMMAND in a running container."""
    need_root_or_own_store(config, "exec")
    code = exec_in(config, kernel_for(config), container, list(command), tty=tty,
                   interactive=interactive, env=env, user=user, workdir=workdir)
    _exit_with(code)


@click.command("logs")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the container stops.")
@click.argument("container")
@click.pass_obj
def logs_cmd(config, follow, container):
    """Print the output of a detached container."""
    need_root_or_own_store(config, "logs")
    sys.stdout.flush()
    lifecycle.logs(config, container, 1, follow)


@click.command("inspect")
@click.option("--bundle", is_flag=True,
              help="Show each container as an OCI bundle's config.json (what an engine hands "
                   "a runtime such as minict-oci or runc).")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def inspect_cmd(config, bundle, containers):
    """Show what minict knows about containers, as JSON."""
    need_root_or_own_store(config, "inspect")
    show = lifecycle.bundle_config if bundle else lifecycle.inspect
    click.echo(json.dumps([show(config, ref) for ref in containers], indent=2))


@click.command("cleanup")
@click.pass_obj
def cleanup_cmd(config):
    """Clean up after crashes: kill orphans, record lost exits, remove leftovers.

    Safe to run at any time: it only touches containers whose minict
    process has died."""
    need_root_or_own_store(config, "cleanup")
    done = recover(config)
    for line in done:
        click.echo(line)
    if not done:
        click.echo("nothing to clean up")
