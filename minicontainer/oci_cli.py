"""`minict-oci`: minict's runtime half, with runc's command line.

An engine (podman, containerd, CRI-O) writes a bundle and runs its runtime
once per step: `create --bundle B ID`, `start ID`, `state ID`, `kill ID
SIG`, `delete ID`, `exec --process F ID`. This is that command line, so
`podman --runtime minict-oci` and `ctr run --runc-binary minict-oci` work;
minicontainer/oci does the work. Parse, call one function, print.

Why argparse here, and not click as minict's CLI (minicontainer/cli/)?
An engine starts its runtime three times for every container (create,
start, delete), and importing click costs more than runc's whole run
(bench/start): the standard library's parser starts in a fraction of it.

Each command imports only the part of minicontainer/oci it uses (dispatch):
podman runs create, start and delete for every container, and a Python
program's start-up is mostly its imports. `state`, `start`, `kill` and
`delete` (oci/lifecycle.py) never load what only `create` needs (init,
mounts, seccomp, cgroup limits: oci/create.py).

Errors are one line on stderr (and, with --log, a line in the log file in
--log-format, which is where conmon and containerd's shim look for them),
with the exit code of the error's class (minicontainer/errors.py).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .errors import BadArgument, MinictError, UnsupportedConfig
from .oci import lifecycle, state
from .runtime.command import parse_signal
from .syscalls import JsonNarrator, Kernel, Narrator

VERSION = "minict-oci version 0.1\nspec: " + state.OCI_VERSION


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """A usage error is one line too (exit 2, as click's and runc's)."""
        sys.stderr.write(f"minict-oci: {message} (see {self.prog} --help)\n")
        sys.exit(2)


# Each command's arguments, as (flags, add_argument's options).
BUNDLE = (["--bundle", "-b"], {"default": ".", "metavar": "DIR"})
PID_FILE = (["--pid-file"], {"metavar": "FILE"})
CONSOLE = (["--console-socket"], {"metavar": "SOCKET"})
PRESERVE = (["--preserve-fds"], {"type": int, "default": 0})
ACCEPTED = [(["--no-pivot"], {"action": "store_true", "help": "accepted; always pivot_root"}),
            (["--no-new-keyring"], {"action": "store_true", "help": "accepted"})]
CONTAINER = (["id"], {"metavar": "ID"})
FORMAT = (["--format", "-f"], {"choices": ["table", "json"], "default": "table"})

COMMANDS = {   # name: (what it does, its arguments)
    "create": ("make the container; it waits for `start`",
               [BUNDLE, PID_FILE, CONSOLE, PRESERVE, *ACCEPTED, CONTAINER]),
    "start": ("run the command of a created container", [CONTAINER]),
    "run": ("create + start (+ wait and delete, without --detach)",
            [BUNDLE, PID_FILE, CONSOLE, PRESERVE, (["--detach", "-d"], {"action": "store_true"}),
             *ACCEPTED, CONTAINER]),
    "state": ("the runtime spec's state JSON", [CONTAINER]),
    "kill": ("send a signal (TERM, SIGKILL, 9...)",
             [(["--all", "-a"], {"action": "store_true", "dest": "every"}), CONTAINER,
              (["signal"], {"nargs": "?", "default": "TERM"})]),
    "delete": ("remove a stopped container (--force: kill it first)",
               [(["--force", "-f"], {"action": "store_true"}), CONTAINER]),
    "exec": ("run another process in a running container",
             [(["--process", "-p"], {"metavar": "FILE"}),
              (["--tty", "-t"], {"action": "store_true"}),
              (["--detach", "-d"], {"action": "store_true"}), PID_FILE, CONSOLE,
              (["--env", "-e"], {"action": "append", "default": []}), (["--cwd"], {}), PRESERVE,
              (["--user", "-u"], {"metavar": "UID[:GID]"}),
              (["--additional-gids", "-g"], {"action": "append", "type": int, "default": []}),
              (["--cap", "-c"], {"action": "append", "default": []}),
              (["--no-new-privs"], {"action": "store_true"}),
              (["--ignore-paused"], {"action": "store_true", "help": "accepted"}),
              *[([flag], {"help": "refused: not supported"})
                for flag in ("--apparmor", "--process-label", "--cgroup")],
              CONTAINER, (["args"], {"nargs": argparse.REMAINDER})]),
    "ps": ("the container's processes (host pids): ps -ef's lines, or ps ID PS-OPTIONS...",
           [FORMAT, CONTAINER, (["ps_args"], {"nargs": argparse.REMAINDER})]),
    "list": ("every container in --root", [FORMAT, (["--quiet", "-q"], {"action": "store_true"})]),
    "spec": ("write a starting config.json (as `runc spec`)",
             [BUNDLE, (["--rootless"], {"action": "store_true"})]),
    "features": ("what this runtime supports (runtime-spec features.md)", []),
    "pause": ("freeze every process (cgroup v2 freezer)", [CONTAINER]),
    "resume": ("thaw a paused container", [CONTAINER]),
    "update": ("new linux.resources limits for a running container",
               [(["--resources", "-r"], {"metavar": "FILE|-", "required": True}), CONTAINER]),
}


def parser() -> Parser:
    """The global flags and the command's name; what follows the name is the
    command's own (command_parser). One parser per command, made only for
    the command that runs: making all fourteen would cost every call about
    5 ms (argparse looks up its translations for each), a fifth of runc's
    whole run."""
    top = Parser(prog="minict-oci", description="An OCI runtime with runc's command line.",
                 formatter_class=argparse.RawDescriptionHelpFormatter,
                 epilog="commands (minict-oci COMMAND --help for each):\n" + "\n".join(
                     f"  {name:10s}{text}" for name, (text, _) in COMMANDS.items()))
    top.add_argument("--version", action="version", version=VERSION)
    top.add_argument("--root", metavar="DIR", help="where the containers' state lives (default "
                     "/run/minict-oci; for a user $XDG_RUNTIME_DIR/minict-oci)")
    top.add_argument("--log", metavar="FILE", help="errors (and, with --debug, the narration)")
    top.add_argument("--log-format", choices=["text", "json"], default="text")
    top.add_argument("--debug", action="store_true", help="narrate every step (into --log)")
    top.add_argument("--explain", action="store_true", default=bool(os.environ.get(
        "MINICT_EXPLAIN")), help="narrate every kernel-facing step on stderr")
    top.add_argument("--systemd-cgroup", action="store_true", help="refused: no systemd driver")
    top.add_argument("--cgroup-manager", choices=["cgroupfs", "disabled", "systemd"],
                     default="cgroupfs", help="crun's flag, which podman passes")
    top.add_argument("--rootless", choices=["auto", "true", "false"], default="auto",
                     help="accepted for runc's callers")
    top.add_argument("command", choices=COMMANDS, metavar="COMMAND")
    top.add_argument("arguments", nargs=argparse.REMAINDER, metavar="ARGUMENTS",
                     help=argparse.SUPPRESS)
    return top


def command_parser(name: str) -> Parser:
    text, arguments = COMMANDS[name]
    sub = Parser(prog=f"minict-oci {name}", description=text)
    for flags, options in arguments:
        sub.add_argument(*flags, **options)
    return sub


def parse(argv=None) -> argparse.Namespace:
    """The global flags, then the command's arguments (which win a name both
    have: spec's --rootless)."""
    args = parser().parse_args(argv)
    own = command_parser(args.command).parse_args(args.arguments)
    return argparse.Namespace(**(vars(args) | vars(own)))


class Session:
    """The global flags, the narrating kernel, and the --log file."""

    def __init__(self, args):
        self.root = Path(args.root) if args.root else state.default_root()
        self.log, self.log_format = args.log, args.log_format
        fd, narrator = None, Narrator
        if args.debug and args.log:
            fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            narrator = JsonNarrator if args.log_format == "json" else Narrator
        self.kernel = Kernel(narrator(bool(args.debug or args.explain), fd))

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


def dispatch(args, s: Session) -> int:
    """One library call per command; returns the exit code. A command that
    needs more than oci/lifecycle.py and oci/state.py imports it here."""
    k, root, name = s.kernel, s.root, args.command
    if name == "create":
        from .oci import create as creation   # (per command: see the docstring)
        creation.create(k, root, args.id, args.bundle, pid_file=args.pid_file,
                        console_socket=args.console_socket, preserve_fds=args.preserve_fds)
    elif name == "start":
        lifecycle.start(k, root, args.id)
    elif name == "run":
        from .oci import create as creation   # (per command)
        return creation.run(k, root, args.id, args.bundle, detach=args.detach,
                            pid_file=args.pid_file, console_socket=args.console_socket,
                            preserve_fds=args.preserve_fds)
    elif name == "state":
        print(json.dumps(state.oci_state(root, state.load(root, args.id)), indent=2))
    elif name == "kill":
        lifecycle.kill(k, root, args.id, parse_signal(args.signal), args.every)
    elif name == "delete":
        if not (args.force and not (root / args.id / "state.json").exists()):
            lifecycle.delete(k, root, args.id, args.force)   # runc: --force of none succeeds
    elif name == "exec":
        from .oci import exec as execution   # (per command)
        if not args.process and not args.args:
            raise BadArgument("exec needs --process FILE or a command", "e.g. exec ID sh -c ps")
        for flag in ("apparmor", "process_label", "cgroup"):
            if getattr(args, flag):
                raise UnsupportedConfig(f"exec --{flag.replace('_', '-')} is not supported by "
                                        f"minict-oci", f"drop --{flag.replace('_', '-')}")
        proc = execution.process_of(state.load(root, args.id), args.process, args.args,
                                    tty=args.tty, env=args.env, cwd=args.cwd, user=args.user,
                                    additional_gids=args.additional_gids, caps=args.cap,
                                    no_new_privs=args.no_new_privs)
        return execution.exec_in(k, root, args.id, proc, detach=args.detach,
                                 pid_file=args.pid_file, console_socket=args.console_socket,
                                 preserve_fds=args.preserve_fds)
    elif name == "ps":
        ps_args = args.ps_args[1:] if args.ps_args[:1] == ["--"] else args.ps_args
        print(json.dumps(lifecycle.ps_pids(root, args.id)) if args.format == "json" else
              lifecycle.ps_table(root, args.id, ps_args))
    elif name == "list":
        print_list(lifecycle.list_rows(root), args.format, args.quiet)
    elif name == "spec":
        from .oci import defaults   # (per command)
        path = Path(args.bundle) / "config.json"
        if path.exists():
            raise BadArgument(f"{path} exists already", "remove it first, or give another --bundle")
        path.write_text(json.dumps(defaults.default_spec(args.rootless), indent=2) + "\n")
    elif name == "features":
        from .oci import defaults   # (per command)
        print(json.dumps(defaults.features(), indent=2))
    elif name in ("pause", "resume"):
        from .oci import cgroup as cgroups   # (per command)
        cgroups.freeze(k, root, args.id, name == "pause")
    elif name == "update":
        from .oci import cgroup as cgroups   # (per command)
        text = sys.stdin.read() if args.resources == "-" else Path(args.resources).read_text()
        cgroups.update(k, root, args.id, text)
    return 0


def print_list(rows, fmt: str, quiet: bool) -> None:
    if quiet:
        print("\n".join(row["id"] for row in rows) if rows else "", end="\n" if rows else "")
    elif fmt == "json":
        print(json.dumps(rows))
    else:
        print("ID\tPID\tSTATUS\tBUNDLE\tCREATED")
        for row in rows:
            print(f"{row['id']}\t{row['pid']}\t{row['status']}\t{row['bundle']}\t{row['created']}")


def main(argv=None):
    """Console-script entry point: one line and the error's code on failure."""
    args = parse(argv)
    session = None
    try:
        if args.systemd_cgroup or args.cgroup_manager == "systemd":
            raise UnsupportedConfig("--systemd-cgroup: minict-oci has no systemd cgroup driver",
                                    "podman: --cgroup-manager=cgroupfs; containerd: "
                                    "SystemdCgroup = false")
        session = Session(args)
        sys.exit(dispatch(args, session))
    except MinictError as exc:
        if session is not None:
            session.write_log("error", exc.one_line())
        sys.stderr.write(f"minict-oci: {exc.one_line()}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
