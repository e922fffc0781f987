"""`hpcshim exec|run|shell`: from what the user asked to the runtime's execve.

prepare() plans, in order, and changes nothing but hpcshim's own cache:

    the runtime    backends.find_runtime      on PATH; Apptainer's version (cached)
    the image      images.prepare_image       what this runtime takes (an unpack, a
                                              conversion: into hpcshim's cache)
    the request    ExecRequest                built once, with what the image says
    the GPUs       build.build_plan           (none asked: an empty Plan; the
                                              discovery code is not even imported)
    the image's    requirements.check         NVIDIA_REQUIRE_CUDA against the driver
    needs                                     (NVIDIA only): a known mismatch is refused,
                                              with --gpu=auto a warning
    the command    backends.render            argv and environment; minict gets the
                                              Plan in an in-memory file, /dev/fd/N

start() then makes the mount points ch-run needs and execs the runtime: the
workload's exit status is hpcshim's. The CLI (cli.py) only parses and prints.
"""

import os

from .backends import Command, ExecRequest, backend, find_runtime, render
from .errors import ImageNotPrepared, RuntimeNotFound, UnmetImageRequirement
from .images import prepare_image
from .plan import Bind, Plan


class ExecOptions:
    """What `hpcshim exec|run|shell` was asked, parsed. (Plain classes here, not
    dataclasses: those import `inspect`, 5 ms that every job step would pay.)"""

    def __init__(self, action: str, image: str, command: list[str], runtime: str = "auto",
                 binds: list[Bind] | None = None, env: dict[str, str] | None = None,
                 cleanenv: bool = False, contain: bool = False, gpu: str = "none",
                 devices: list[str] | None = None, compat32: bool = False, gpu_bind: str = "none",
                 host_root: str = "/", dry_run: bool = False):
        self.action = action                    # exec | run | shell
        self.image = image
        self.command = list(command)
        self.runtime = runtime                  # auto | apptainer | singularity | ch-run | minict
        self.binds = list(binds or [])          # -B
        self.env = dict(env or {})              # --env
        self.cleanenv = cleanenv
        self.contain = contain
        self.gpu = gpu                          # any | auto | nvidia | rocm | none (cli.GPU_FLAGS)
        self.devices = list(devices or [])      # --device vendor.com/class=NAME
        self.compat32 = compat32
        self.gpu_bind = gpu_bind                # none | local-rank
        self.host_root = host_root
        self.dry_run = dry_run


class Prepared:
    """A command ready to exec, and what -v and --dry-run print about it."""

    def __init__(self, command: Command, plan: Plan, notes: list[str], plan_fd: int | None = None,
                 warnings: list[str] | None = None):
        self.command = command
        self.plan = plan
        self.notes = notes              # the image's, the runtime's, the Plan's pitfalls
        self.plan_fd = plan_fd          # minict: the in-memory file holding the Plan
        self.warnings = list(warnings or [])    # printed even without -v


def prepare(options: ExecOptions, env: dict[str, str]) -> Prepared:
    runtime = find_runtime(options.runtime, env)
    image = prepare_image(runtime.name, options.image, env, dry_run=options.dry_run)
    request = ExecRequest(image=image.image, command=options.command, binds=options.binds,
                          env=options.env, cleanenv=options.cleanenv, contain=options.contain,
                          host_env=env, action=options.action, tty=os.isatty(0),
                          image_config=image.config, image_env=image.env)
    plan = _plan(options, env)
    checked, warnings = _check_requirements(options, image, plan)
    plan_fd = plan_path = None
    if runtime.name == "minict":
        plan_fd = memfd_with(backend("minict").plan_for_minict(plan, request).to_json())
        plan_path = f"/dev/fd/{plan_fd}"
    command = render(runtime, plan, request, plan_path)
    notes = image.notes + checked + [f"note: {note}" for note in command.notes + plan.pitfalls]
    return Prepared(command, plan, notes, plan_fd, warnings)


def _plan(options: ExecOptions, env: dict[str, str]) -> Plan:
    if options.gpu == "none" and not options.devices:
        return Plan()      # no discovery at all (and none of its imports)
    from .build import GpuRequest, build_plan  # GPU discovery: only when a GPU is asked for
    return build_plan(GpuRequest(mode=options.gpu, root=options.host_root, env=env,
                                 compat32=options.compat32, cdi_devices=options.devices,
                                 gpu_bind=options.gpu_bind))


def _check_requirements(options: ExecOptions, image, plan: Plan) -> tuple[list[str], list[str]]:
    """(-v lines, warnings) from the image's NVIDIA_REQUIRE_* against the driver.
    A known mismatch is refused, except with --gpu=auto, which warns and runs;
    "cannot tell" warns. Only with an NVIDIA plan: the variables speak of CUDA."""
    if plan.vendor != "nvidia":
        return [], []
    from . import requirements  # only for a job with an NVIDIA GPU (the driver table, the parser)
    if image.config or image.env:
        image_env, source = image.env, "the image config"
    elif os.path.isdir(options.image):
        image_env = requirements.directory_env(options.image)
        source = f"{options.image} has neither /{requirements.CH_ENVIRONMENT} nor /{requirements.APPTAINER_ENVIRONMENT}"
    else:
        image_env, source = None, "a SIF file or registry image: its environment is read by the runtime"
    verdict = requirements.check(options.image, image_env, plan, options.env, source, options.host_root)
    if verdict.status == "mismatch" and options.gpu != "auto":
        raise UnmetImageRequirement(verdict.summary(), hint="run it where the driver is new enough, or use an image "
                                    "built for this driver; --gpu=auto warns and runs anyway, "
                                    "--env NVIDIA_DISABLE_REQUIRE=1 skips the check")
    lines = [f"requirements: {line}" for line in verdict.lines + [verdict.conclusion() if verdict.lines
                                                                  else verdict.summary()]]
    if verdict.status == "mismatch":
        return lines, [f"warning: {verdict.summary()} (running anyway: --gpu=auto)"]
    if verdict.status == "unknown":
        return lines, [f"warning: {verdict.summary()} (running anyway)"]
    return lines, []


def start(prepared: Prepared):
    """Make the mount points the command needs, then become the runtime. Never returns."""
    command = prepared.command
    for step in command.prepare:
        try:
            step.apply()
        except OSError as exc:
            raise ImageNotPrepared(f"cannot create mount point {step.path}: {exc.strerror}",
                                   hint="use an image directory you own") from exc
    if prepared.plan_fd is not None:
        os.set_inheritable(prepared.plan_fd, True)
    try:
        os.execve(command.argv[0], command.argv, command.env)
    except OSError as exc:
        raise RuntimeNotFound(f"cannot run {command.argv[0]}: {exc.strerror}",
                              hint="check the runtime's installation") from exc


def memfd_with(text: str) -> int:
    """An anonymous in-memory file holding text, positioned at 0, inheritable by exec."""
    fd = os.memfd_create("hpcshim-gpu-plan", 0)  # no MFD_CLOEXEC: the runtime inherits it
    os.write(fd, text.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
