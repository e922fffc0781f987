"""The `hpcshim` command line: parse, call one library function, print.

    hpcshim exec [--gpu[=auto|nvidia|rocm|none]] [--nv] [--rocm] [--runtime R]
                 [-B SRC[:DST[:ro]]] [--env K=V] [--cleanenv] [--contain]
                 [--compat32] [--device vendor.com/class=NAME]
                 [--gpu-bind=none|local-rank] [--dry-run] [-v]
                 IMAGE CMD [ARGS...]
    hpcshim run   [same options] IMAGE [ARGS...]   the image's runscript / ENTRYPOINT+CMD
    hpcshim shell [same options] IMAGE             /bin/sh in the image
    hpcshim doctor [--json] [--compat32] [IMAGE]   IMAGE: can it run here (NVIDIA_REQUIRE_CUDA)?
    hpcshim cdi generate [--output FILE]
    hpcshim pull [--runtime R] [--docker-login] REF [DEST]

Why argparse and not click (which minict uses): `hpcshim exec` runs in front
of every job step, and importing click costs ~30 ms, as much as the whole
overhead budget (bench/shim). argparse is in the standard library and loads
in a few milliseconds.

`--gpu` alone means "a GPU, any vendor, or fail"; the value must be attached
with `=` (`--gpu=auto`), so `--gpu IMAGE` never swallows the image. Options
end at IMAGE, as in `apptainer exec`: everything after it is the command.

Errors: libraries raise hpcshim.errors.HpcshimError subclasses; main() prints
`hpcshim: <message> (<hint>)` on stderr and exits with the class's code.
Usage errors exit 2. `exec` replaces itself with the runtime (execve), so the
workload's exit status is hpcshim's.
"""

import argparse
import os
import sys

from . import __version__, launch
from .errors import BadArgument, HpcshimError
from .launch import ExecOptions
from .plan import Bind

GPU_FLAGS = {"--gpu": "any", "--gpu=auto": "auto", "--gpu=nvidia": "nvidia",
             "--gpu=rocm": "rocm", "--gpu=none": "none", "--nv": "nvidia", "--rocm": "rocm"}


class Parser(argparse.ArgumentParser):
    """argparse with hpcshim's one-line error format."""

    def error(self, message):
        if "--gpu" in message and "explicit argument" in message:
            message = "--gpu takes auto, nvidia, rocm or none (e.g. --gpu=auto)"
        self.exit(2, f"hpcshim: {message} (see `{self.prog} --help`)\n")


def build_parser(only: str | None = None) -> Parser:
    """The whole command line; with `only`, the options of that command alone
    (the others are listed, empty): argparse spends about a millisecond per
    dozen options, and `hpcshim exec` runs in front of every job step."""
    parser = Parser(prog="hpcshim", allow_abbrev=False,
                    description="GPU-aware launcher for Apptainer, Singularity, ch-run and minict.")
    parser.add_argument("-V", "--version", action="version", version=f"hpcshim {__version__}")
    parser.add_argument("--host-root", metavar="DIR", default=os.environ.get("HPCSHIM_HOST_ROOT", "/"),
                        help="read the host's driver files under DIR (testing; default / or $HPCSHIM_HOST_ROOT)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name, (helptext, description, add_options) in COMMANDS.items():
        sub = commands.add_parser(name, allow_abbrev=False, help=helptext, description=description)
        if only in (None, name):
            add_options(sub)
    return parser


def command_named(argv: list[str]) -> str | None:
    """The command argv names (its first word that is not an option or --host-root's
    value), or None; found before parsing, so that build_parser needs only its options."""
    words = iter(argv)
    for word in words:
        if word == "--host-root":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _exec_options(sub) -> None:
    _container_options(sub)
    sub.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    sub.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD [ARGS...]")


def _run_options(sub) -> None:
    _container_options(sub)
    sub.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)
    sub.add_argument("cmd", nargs=argparse.REMAINDER, metavar="ARGS")


def _shell_options(sub) -> None:
    _container_options(sub)
    sub.add_argument("image", metavar="IMAGE", help=IMAGE_HELP)


def _doctor_options(sub) -> None:
    sub.add_argument("--json", action="store_true", help="print the Plan as JSON")
    sub.add_argument("--compat32", action="store_true", help="include 32-bit driver libraries")
    sub.add_argument("image", metavar="IMAGE", nargs="?",
                     help="also compare what IMAGE needs (NVIDIA_REQUIRE_CUDA) with this node's driver; "
                          + IMAGE_HELP)


def _cdi_options(sub) -> None:
    cdi_commands = sub.add_subparsers(dest="cdi_command", metavar="CDI_COMMAND", parser_class=Parser)
    cdi_commands.required = True
    generate = cdi_commands.add_parser("generate", allow_abbrev=False,
                                       help="write a CDI spec for this host's GPUs")
    generate.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")


def _pull_options(sub) -> None:
    sub.add_argument("--runtime", default="auto",
                     choices=["auto", "apptainer", "singularity", "ch-run", "minict"],
                     help="the runtime that will run the image (auto: the first on PATH, as exec)")
    sub.add_argument("--docker-login", action="store_true",
                     help="ask for the registry's username and password on the terminal")
    sub.add_argument("ref", metavar="REF", help="NAME[:TAG] or docker://NAME[:TAG], e.g. "
                     "nvcr.io/nvidia/pytorch:22.03-py3")
    sub.add_argument("dest", metavar="DEST", nargs="?",
                     help="Apptainer/Singularity: the SIF file; minict: a name for the image")


# name: (help in the command list, description, what adds its options)
COMMANDS = {
    "exec": ("run a command in a container with the job's GPUs",
             "Run CMD in IMAGE with the GPUs this job owns injected.", _exec_options),
    "run": ("run the image's runscript/entrypoint",
            "Run IMAGE's own command (Apptainer's runscript, or the OCI ENTRYPOINT+CMD; ARGS replace "
            "CMD) with the job's GPUs.", _run_options),
    "shell": ("an interactive shell in the image", "Start /bin/sh in IMAGE with the job's GPUs.",
              _shell_options),
    "doctor": ("show what would be injected and why", None, _doctor_options),
    "cdi": ("Container Device Interface specs", None, _cdi_options),
    "pull": ("fetch an image from a registry for the runtime",
             "Pull REF from its registry into what the runtime runs: a SIF file (Apptainer, "
             "Singularity), a tree in hpcshim's cache (ch-run), minict's store (minict). Credentials: "
             "--docker-login, APPTAINER_DOCKER_USERNAME/_PASSWORD, SINGULARITY_DOCKER_USERNAME/_PASSWORD, "
             "or `minict login`.", _pull_options),
}


IMAGE_HELP = ("a directory, a SIF file, oci-archive:FILE[:NAME], docker-archive:FILE[:NAME], an archive "
              "FILE.tar, oci:DIR[:NAME], minict:NAME[:TAG], or what the runtime takes (docker://...)")


def _container_options(sub) -> None:
    """The options exec, run and shell share."""
    gpu = sub.add_argument_group("GPU")
    for flag, mode in GPU_FLAGS.items():
        helps = {"--gpu": "inject this job's GPUs (any vendor); no GPU is an error",
                 "--gpu=auto": "inject GPUs if the host has any, else run without",
                 "--gpu=nvidia": "NVIDIA only (error without an NVIDIA driver)",
                 "--gpu=rocm": "AMD ROCm only", "--gpu=none": "no GPU injection (the default)",
                 "--nv": "same as --gpu=nvidia (Apptainer's flag)", "--rocm": "same as --gpu=rocm"}
        gpu.add_argument(flag, dest="gpu", action="store_const", const=mode, help=helps[flag])
    gpu.add_argument("--compat32", action="store_true", help="also inject 32-bit driver libraries")
    gpu.add_argument("--device", action="append", default=[], metavar="KIND=NAME",
                     help="a CDI device, e.g. nvidia.com/gpu=0 (repeatable)")
    gpu.add_argument("--gpu-bind", default="none", choices=["none", "local-rank"],
                     help="local-rank: Slurm task SLURM_LOCALID of the N on this node gets its own "
                          "1/N of the job's GPUs (they must divide evenly)")
    sub.add_argument("--runtime", default="auto",
                     choices=["auto", "apptainer", "singularity", "ch-run", "minict"],
                     help="container runtime (auto: the first on PATH in this order)")
    sub.add_argument("-B", "--bind", action="append", default=[], metavar="SRC[:DST[:ro]]",
                     help="bind mount (comma-separated lists allowed, as in Apptainer)")
    sub.add_argument("--env", action="append", default=[], metavar="K=V", help="set a variable in the container")
    sub.add_argument("-e", "--cleanenv", action="store_true", help="do not pass the host environment "
                     "(the job's GPU, Slurm, PMIx and MPI variables are kept)")
    sub.add_argument("-c", "--contain", action="store_true", help="minimal /dev and no host home (Apptainer)")
    sub.add_argument("--dry-run", action="store_true", help="print the exact command and run nothing")
    sub.add_argument("-v", "--verbose", action="store_true", help="print what was injected and why, then run")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(command_named(argv)).parse_args(argv)
    try:
        if args.command in ("exec", "run", "shell"):
            return _exec(args)
        if args.command == "pull":
            return _pull(args)
        if args.command == "doctor":
            return _doctor(args)
        return _cdi_generate(args)
    except HpcshimError as exc:
        print(f"hpcshim: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def parse_binds(values: list[str]) -> list[Bind]:
    binds = []
    for value in values:
        for item in value.split(","):
            parts = item.split(":")
            if not item or not parts[0] or len(parts) > 3 or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
                raise BadArgument(f"--bind {item!r} is not SRC[:DST[:ro|rw]]",
                                  hint="for example -B /scratch:/data:ro")
            src = parts[0]
            dst = parts[1] if len(parts) > 1 and parts[1] else src
            if not src.startswith("/") or not dst.startswith("/"):
                raise BadArgument(f"--bind {item!r}: paths must be absolute", hint="write -B /abs/src:/abs/dst")
            if not os.path.exists(src):
                raise BadArgument(f"--bind {item!r}: {src} does not exist on the host",
                                  hint="create it or fix the path")
            binds.append(Bind(src=src, dst=dst, ro=len(parts) == 3 and parts[2] == "ro", kind="user"))
    return binds


def parse_env(values: list[str]) -> dict[str, str]:
    """--env K=V (also K=V,K2=V2 as Apptainer accepts; a comma not followed by KEY= stays in the value)."""
    env: dict[str, str] = {}
    for value in values:
        pieces: list[str] = []
        for piece in value.split(","):
            if pieces and not _looks_like_assignment(piece):
                pieces[-1] += "," + piece
            else:
                pieces.append(piece)
        for piece in pieces:
            key, sep, val = piece.partition("=")
            if not sep or not key or not (key[0].isalpha() or key[0] == "_") or \
                    not all(c.isalnum() or c == "_" for c in key):
                raise BadArgument(f"--env {piece!r} is not NAME=VALUE",
                                  hint="for example --env OMP_NUM_THREADS=4")
            env[key] = val
    return env


def _looks_like_assignment(piece: str) -> bool:
    key, sep, _ = piece.partition("=")
    return bool(sep and key) and (key[0].isalpha() or key[0] == "_") and all(c.isalnum() or c == "_" for c in key)


def _exec(args) -> int:
    command = list(getattr(args, "cmd", []))
    if args.command == "exec" and not command:
        raise BadArgument("no command given after the image", hint="hpcshim exec IMAGE CMD [ARGS...]")
    options = ExecOptions(action=args.command, image=args.image, command=command, runtime=args.runtime,
                          binds=parse_binds(args.bind), env=parse_env(args.env), cleanenv=args.cleanenv,
                          contain=args.contain, gpu=args.gpu or "none", devices=args.device,
                          compat32=args.compat32, gpu_bind=args.gpu_bind, host_root=args.host_root,
                          dry_run=args.dry_run)
    prepared = launch.prepare(options, dict(os.environ))
    for line in prepared.warnings:         # the image may not run on this driver: said even without -v
        print(f"hpcshim: {line}", file=sys.stderr)
    if args.verbose or args.dry_run:
        for line in prepared.notes:
            print(f"hpcshim: {line}", file=sys.stderr)
    if args.verbose:
        from .doctor import summary_lines  # only -v prints it (doctor reads every runtime on PATH)
        for line in summary_lines(prepared.plan, prepared.command.container_env, prepared.command.delivery):
            print(f"hpcshim: {line}", file=sys.stderr)
    if args.dry_run:
        print(prepared.command.display())
        return 0
    launch.start(prepared)      # becomes the runtime
    return 0  # not reached


def _doctor(args) -> int:
    # `exec` runs in front of every job step: it loads GPU discovery only when a
    # GPU is asked for (launch._plan), and never doctor's or cdi's code.
    from .doctor import doctor_output  # doctor's code only for doctor (see above)
    sys.stdout.write(doctor_output(args.host_root, args.json, args.compat32, dict(os.environ), args.image))
    return 0


def _pull(args) -> int:
    from .pull import pull  # pull's code only for pull (see _doctor)
    result = pull(args.runtime, args.ref, args.dest, args.docker_login, dict(os.environ))
    if result:
        print(result)
    return 0


def _cdi_generate(args) -> int:
    from .cdi import generate_for_host  # cdi's code only for cdi (see _doctor)
    text, gpus = generate_for_host(args.host_root, dict(os.environ), args.output)
    if not args.output:
        sys.stdout.write(text)
    else:
        print(f"hpcshim: wrote {args.output} ({gpus} GPU(s) + all)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
