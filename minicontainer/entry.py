"""The `minict` console script's front door: `minict run` without click.

Starting a container is the one command whose speed people measure
(bench/start compares it with runc), and importing click alone costs more
than runc takes to start a container. So the `minict` script enters here:
a plain `minict [--root/--state/--explain/--debug] run [OPTIONS] IMAGE
[COMMAND...]` is parsed by the small table below and run directly;
anything else (other commands, --help, an option this parser does not
know, a malformed line) goes to the full click CLI, which also produces
the usage errors. Both paths call the same `run_command`, and a test
checks that the table below matches the click command option for option.

(It lives outside minicontainer/cli/ because importing anything in that
package first runs its __init__, which imports click.)
"""

import gc
import os
import sys

# option spelling -> (parameter name, kind): kind is "flag", "value" or "multiple"
RUN_OPTIONS = {
    "-i": ("interactive", "flag"), "--interactive": ("interactive", "flag"),
    "-t": ("tty", "flag"), "--tty": ("tty", "flag"),
    "-d": ("detach", "flag"), "--detach": ("detach", "flag"),
    "--rm": ("auto_remove", "flag"),
    "--name": ("name", "value"),
    "-e": ("env", "multiple"), "--env": ("env", "multiple"),
    "--env-file": ("env_file", "multiple"),
    "-w": ("workdir", "value"), "--workdir": ("workdir", "value"),
    "-u": ("user", "value"), "--user": ("user", "value"),
    "--hostname": ("hostname", "value"),
    "-v": ("volume", "multiple"), "--volume": ("volume", "multiple"),
    "--tmpfs": ("tmpfs", "multiple"),
    "--read-only": ("read_only", "flag"),
    "--entrypoint": ("entrypoint", "value"),
    "--cap-add": ("cap_add", "multiple"), "--cap-drop": ("cap_drop", "multiple"),
    "--privileged": ("privileged", "flag"),
    "--security-opt": ("security_opt", "multiple"),
    "--net": ("network", "value"), "--network": ("network", "value"),
    "--init": ("init", "flag"),
    # resource limits (cgroups; the same spellings as cli/cgroups.py's limit_options)
    "-m": ("memory", "value"), "--memory": ("memory", "value"),
    "--memory-swap": ("memory_swap", "value"),
    "--memory-reservation": ("memory_reservation", "value"),
    "--pids-limit": ("pids_limit", "value"), "--cpus": ("cpus", "value"),
    "-c": ("cpu_shares", "value"), "--cpu-shares": ("cpu_shares", "value"),
    "--cpu-weight": ("cpu_weight", "value"), "--cpuset-cpus": ("cpuset_cpus", "value"),
    "--device-read-bps": ("device_read_bps", "multiple"),
    "--device-write-bps": ("device_write_bps", "multiple"),
    "--gpu": ("gpu", "value"), "--gpu-plan": ("gpu_plan", "value"),
    "--device": ("device", "multiple"),
}
RUN_DEFAULTS = {"network": "default"}
# Options whose value must be attached with "=" (`--gpu=auto`); alone they
# mean the value given here, so `--gpu IMAGE` never takes IMAGE as its value.
BARE_VALUES = {"--gpu": "any"}
GLOBAL_OPTIONS = {"--root": ("root", "value"), "--state": ("state", "value"),
                  "--explain": ("explain", "flag"), "--debug": ("debug", "flag")}


def parse_run(argv: list[str]) -> dict | None:
    """{"global": {...}, "run": {...}, "image": str, "command": [...]} for a
    plain `run` command line, or None to let click handle it."""
    glob: dict = {}
    rest = _take_options(argv, GLOBAL_OPTIONS, glob)
    if rest is None or not rest or rest[0] != "run":
        return None
    flags: dict = {}
    rest = _take_options(rest[1:], RUN_OPTIONS, flags)
    if not rest:
        return None   # no IMAGE: click prints the usage error
    return {"global": glob, "run": flags, "image": rest[0], "command": rest[1:]}


def _take_options(argv, table, into) -> list[str] | None:
    """Consume leading options of `table` from argv; return what follows
    them, or None if something is not understood."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[i + 1:]
        if not arg.startswith("-") or arg == "-":
            return argv[i:]
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in table:
            dest, kind = table[name]
            if name in BARE_VALUES and not eq:
                into[dest] = BARE_VALUES[name]
                i += 1
                continue
            if kind == "flag":
                if eq:
                    return None
                into[dest] = True
                i += 1
                continue
            if eq:
                value = inline
                i += 1
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 2
            else:
                return None
            if kind == "multiple":
                into.setdefault(dest, []).append(value)
            else:
                into[dest] = value
            continue
        if not arg.startswith("--") and len(arg) > 2:
            # Bundled short options, as click allows: -it, -dit, -eNAME=value.
            expanded = _expand_short(arg, table)
            if expanded is None:
                return None
            argv = argv[:i] + expanded + argv[i + 1:]
            continue
        return None
    return []


def _expand_short(arg: str, table) -> list[str] | None:
    out = []
    for pos, letter in enumerate(arg[1:], start=1):
        option = "-" + letter
        if option not in table:
            return None
        if table[option][1] == "flag":
            out.append(option)
            continue
        remainder = arg[pos + 1:]
        return out + [option] + ([remainder] if remainder else [])
    return out


def attach_bare_values(argv: list[str]) -> list[str]:
    """argv (the words after `run`) with each BARE_VALUES option that stands
    alone before IMAGE written with its value attached (`--gpu` ->
    `--gpu=any`), for click, which would otherwise take IMAGE as the value."""
    out = list(argv)
    i = 0
    while i < len(out):
        arg = out[i]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break                                   # IMAGE: options end here
        if arg in BARE_VALUES:
            out[i] = f"{arg}={BARE_VALUES[arg]}"
        elif _takes_next_word(arg):
            i += 1                                  # skip that option's value
        i += 1
    return out


def _takes_next_word(arg: str) -> bool:
    """Whether option word `arg` takes the following word as its value."""
    if arg.startswith("--"):
        return "=" not in arg and RUN_OPTIONS.get(arg, ("", "flag"))[1] != "flag"
    letters = arg[1:]
    for pos, letter in enumerate(letters):        # -e VALUE, -it, -ie VALUE, -eVALUE
        kind = RUN_OPTIONS.get("-" + letter, ("", None))[1]
        if kind != "flag":
            return kind is not None and pos == len(letters) - 1
    return False


def run_command(config, image: str, command, flags: dict) -> int | None:
    """The body of `minict run`, shared by click and the fast path.
    Returns the container's exit code, or None when it was detached (the
    id has been printed)."""
    if os.geteuid() != 0:
        from .errors import NotRoot
        raise NotRoot("minict run needs root (namespaces and mounts)",
                      "run it as root: sudo minict run ...")
    from .runtime import lifecycle
    from .spec import build_spec
    from .syscalls import Kernel, Narrator
    flags = {**RUN_DEFAULTS, **flags}
    from .runtime.resources import limits_from_flags
    # --memory, --cpus...: a bad value (BadArgument) or a host that cannot
    # enforce it (CgroupUnavailable) stops the run here, before anything exists.
    limits = limits_from_flags(flags)
    kernel = Kernel(Narrator(config.explain))
    gpu_mode, gpu_plan_file = flags.pop("gpu", None), flags.pop("gpu_plan", None)
    gpu = None
    if gpu_mode is not None or gpu_plan_file is not None:   # hpcshim's Plan: runtime/gpu.py
        from .runtime import gpu as gpu_plans
        plan = gpu_plans.plan_for_flags(gpu_mode, gpu_plan_file)
        if plan is not None:
            gpu = gpu_plans.injection_from(plan)
            gpu_plans.narrate(kernel, plan, gpu_plan_file or "found on this host", gpu)
            flags["env"] = [*gpu.env, *flags.get("env", ())]   # the user's -e comes later and wins
    img = resolve_image(config, image)
    spec = build_spec(img, image_ref=image, command=tuple(command),
                      env_files=tuple(flags.pop("env_file", ())), volumes=tuple(flags.pop("volume", ())),
                      binds=gpu.binds if gpu is not None else (),
                      devices=gpu.devices if gpu is not None else (),
                      limits=limits,
                      **{k: (tuple(v) if isinstance(v, list) else v) for k, v in flags.items()})
    if gpu is not None:
        spec.env = gpu_plans.with_library_path(spec.env, gpu.ld_library_path)
    if not gc.isenabled():
        # main() switched the collector off for the start-up (see there).
        # What exists now (modules, classes, functions) lives as long as
        # this process: freeze it, so that no collection ever scans it
        # again (in the container's process after fork neither), and let
        # the collector look after what comes next.
        gc.freeze()
        gc.enable()
    code, container_id = lifecycle.run(config, spec, kernel)
    if code is None:
        print(container_id, flush=True)
    return code


def resolve_image(config, ref: str):
    """The image from the store, pulled first if missing (as docker run does)."""
    from .errors import ImageNotFound, MinictError
    from .store import Store
    store = Store(config.root)
    try:
        return store.resolve(ref)
    except ImageNotFound as missing:
        from .reference import parse
        parse(ref)   # a malformed name is that error (BadReference), not a reason to pull
        try:
            from .pull import pull
        except ImportError:
            raise ImageNotFound(missing.message, "load or import it first with minict load or "
                                                 "minict import; pulling is not available") from None
        print(f"Unable to find image '{ref}' locally", file=sys.stderr, flush=True)
        try:
            return pull(store, ref, platform=None)
        except MinictError as failed:
            # Keep the pull's own error class (and exit code), but say why we pulled.
            raise type(failed)(f"image {ref} is not in the store, and pulling it failed: "
                               f"{failed.message}", failed.hint) from None


def main(argv=None):
    """Console-script entry point."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parsed = parse_run(argv)
    if parsed is None:
        from .cli import main as click_main   # everything else: the full CLI
        return click_main(argv)
    # Importing the runtime makes tens of thousands of objects, none of them
    # garbage, and the cyclic garbage collector would scan them over and
    # over while they are made (3-5 ms of every `minict run`, bench/start).
    # So it is off until run_command has imported what it needs.
    gc.disable()
    from .config import Config
    from .errors import MinictError
    glob = parsed["global"]
    if glob.get("debug"):
        os.environ["MINICT_DEBUG"] = "1"
    config = Config.from_env(root=glob.get("root"), state=glob.get("state"),
                             explain=True if glob.get("explain") else None)
    try:
        code = run_command(config, parsed["image"], parsed["command"], parsed["run"])
    except MinictError as exc:
        if os.environ.get("MINICT_DEBUG"):
            raise
        print(f"minict: {exc.one_line()}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("minict: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    # The container has ended (or, with -d, runs on under its supervisor)
    # and its record is written. All that is left is Python's own
    # tear-down, which frees every module and object one by one (3-5 ms,
    # bench/start) just before the kernel frees the whole process anyway.
    # So flush what we printed and leave straight away.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
