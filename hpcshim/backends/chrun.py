"""Charliecloud ch-run: the Plan as -b binds and --set-env, with mount points prepared.

ch-run's rules (version 0.31, Debian's charliecloud-runtime) that shape this:

- It refuses a bind whose destination does not exist in the image ("can't
  mkdir: ... Read-only file system"), unless the image is mounted read-write
  (-w), which would let the workload change the image too. So hpcshim creates
  the missing mount points itself - empty directories and empty files, like
  the placeholders Charliecloud's own ch-fromhost leaves - in the image
  directory before exec, and then runs ch-run read-only. The steps are
  printed by --dry-run as the mkdir/touch commands they are. An image
  directory this user cannot write is an error that names what is missing.
- It bind-mounts the host's /dev whole: every GPU node is already there, so
  devices need no binds, and CUDA counts GPUs among all the ones this process
  can open (Plan.envIfHostDev). Nodes of a --host-root test tree are not
  bound: that would mean creating files in the host's /dev.
- Its binds are read-write (0.31 has no read-only bind option); the driver
  files are owned by root, so an unprivileged job cannot change them.
- The environment passes through from the host; `--unset-env='*'` clears it
  (hpcshim's --cleanenv), then `--set-env=K=V` adds, in command-line order.
  `--env-no-expand` keeps a `$` in a value literal.
- It needs $USER; hpcshim fills it in from the password database if unset.
"""

import os
import pwd

from ..errors import ImageNotPrepared, RuntimeUnsupported
from ..plan import Plan
from .command import Command, ExecRequest, PrepareStep, kept_host_env, ld_library_path


def render(exe: str, plan: Plan, request: ExecRequest) -> Command:
    image = request.image
    binds: list[tuple[str, str, bool]] = [(b.src, b.dst, os.path.isdir(b.src)) for b in request.binds]
    notes: list[str] = []
    if not plan.empty:
        for lib in plan.libraries:
            binds.append((lib.src, f"{plan.lib_dir}/{lib.name}", False))
        for lib in plan.libraries32:
            binds.append((lib.src, f"{plan.lib32_dir}/{lib.name}", False))
        for bind in plan.binds:
            binds.append((bind.src, bind.dst, os.path.isdir(bind.src)))
        if any(node.host_path != node.path for node in plan.devices):
            notes.append("device nodes of the --host-root tree are not bound: ch-run shows the "
                          "host's own /dev")

    prepare = _mount_points(image, binds) if binds else []
    argv = [exe, "--env-no-expand"]
    if request.cleanenv:
        argv.append("--unset-env=*")
    ch_environment = os.path.isfile(os.path.join(image, CH_ENVIRONMENT))
    if ch_environment:
        # The image's ENV as ch-image/ch-convert recorded it: a bare --set-env
        # reads /ch/environment inside the image (0.31 does so only when
        # asked). First, so that everything below wins over it.
        argv.append("--set-env")
    workdir = request.image_config.get("WorkingDir")
    if workdir:
        argv.append(f"--cd={workdir}")      # the image's WORKDIR, as docker and minict start in
    # The image's own Env first (PATH to its programs, ...), as docker gives it
    # and Charliecloud's ch-convert records it; the job's variables, the Plan's
    # and --env then win. Known only for images hpcshim read (an archive, oci:, minict:).
    env_set: dict[str, str] = dict(request.image_env)
    if request.cleanenv:
        env_set.update(kept_host_env(request.host_env))
    if not plan.empty:
        env_set.update(plan.env_for(host_dev=True))
    env_set.update(request.env)
    if not plan.empty and plan.ld_library_path:
        # ch-run passes the host's environment on, so its LD_LIBRARY_PATH is kept too
        host = "" if request.cleanenv else request.host_env.get("LD_LIBRARY_PATH", "")
        # The --set-env below replaces the image's value: read it, to keep it
        # after the injected directories (CUDA images list their own there).
        image_value = _ch_environment_value(image, "LD_LIBRARY_PATH") if ch_environment else ""
        env_set["LD_LIBRARY_PATH"] = ld_library_path(plan.ld_library_path, request, host, image_value)
    for src, dst, _is_dir in binds:
        argv.append(f"--bind={src}:{dst}")
    for key, value in env_set.items():
        argv.append(f"--set-env={key}={value}")
    argv += [image, "--", *container_command(request)]

    full_env = dict(request.host_env)
    extra_env = {}
    if not full_env.get("USER"):
        extra_env["USER"] = pwd.getpwuid(os.getuid()).pw_name  # ch-run refuses to start without it
        full_env.update(extra_env)
    return Command(argv=argv, env=full_env, extra_env=extra_env, prepare=prepare, notes=notes,
                   container_env=env_set, delivery=delivery(plan))


RUNSCRIPT = "/.singularity.d/runscript"
CH_ENVIRONMENT = "ch/environment"      # Charliecloud's record of the image's ENV (KEY=VALUE lines)


def _ch_environment_value(image: str, key: str) -> str:
    """One variable of the image's /ch/environment ("" when it has none)."""
    from ..requirements import directory_env  # a GPU job's only: the environment files' parsers
    return (directory_env(image) or {}).get(key, "")


def container_command(request: ExecRequest) -> list[str]:
    """The argv to start in the image: exec's CMD, the image's own command for
    run, /bin/sh for shell. ch-run has no notion of an image's command, so for
    `run` hpcshim looks it up: Apptainer's runscript, else the OCI ENTRYPOINT +
    CMD of the image config (request.image_config, known when hpcshim
    converted the image itself)."""
    if request.action == "exec":
        return list(request.command)
    if request.action == "shell":
        return ["/bin/sh"]
    if os.path.isfile(os.path.join(request.image, RUNSCRIPT.lstrip("/"))):
        return [RUNSCRIPT, *request.command]
    config = request.image_config or {}
    entrypoint = list(config.get("Entrypoint") or [])
    cmd = list(request.command) or list(config.get("Cmd") or [])
    if not entrypoint + cmd:
        raise RuntimeUnsupported(f"hpcshim run: {request.image} has no {RUNSCRIPT} and no known "
                                 "ENTRYPOINT or CMD", hint="use `hpcshim exec IMAGE CMD` and name the command")
    return entrypoint + cmd


def delivery(plan: Plan) -> list[str]:
    """What ch-run really does with each kind of Plan item."""
    if plan.empty:
        return ["ch-run: no GPU items"]
    shared = [n for n in plan.devices if n.host_path == n.path]
    tree = [n for n in plan.devices if n.host_path != n.path]
    lines = []
    if shared:
        lines.append(f"ch-run: {len(shared)} device node(s) present through the host's /dev, which "
                     "ch-run binds whole (every other GPU node of the host is there too)")
    if tree:
        lines.append(f"ch-run: {len(tree)} device node(s) of the --host-root tree NOT in the container "
                     "(ch-run shows the host's own /dev)")
    lines.append(f"ch-run: {len(plan.libraries) + len(plan.libraries32)} librar(ies) bound in "
                 f"{plan.lib_dir}" + (f" and {plan.lib32_dir}" if plan.libraries32 else "")
                 + "; LD_LIBRARY_PATH set with --set-env")
    if plan.binds:
        lines.append(f"ch-run: {len(plan.binds)} other bind(s) at their paths (read-write: ch-run has "
                     "no read-only bind)")
    lines.append(SHARING)
    return lines


SHARING = ("ch-run: the host's network, IPC namespace and /dev/shm (it binds the host's /dev), "
           "memlock as the caller's")


def _mount_points(image: str, binds: list[tuple[str, str, bool]]) -> list[PrepareStep]:
    """The mkdir/touch steps that make every bind destination exist in the image."""
    if not os.path.isdir(image):
        raise RuntimeUnsupported(f"ch-run image {image!r} is not a directory, and its bind "
                                 "destinations cannot be prepared",
                                 hint="unpack it first (ch-convert IMAGE DIR) and pass the directory")
    steps: list[PrepareStep] = []
    planned: set[str] = set()
    for _src, dst, is_dir in binds:
        target = os.path.join(image, dst.lstrip("/"))
        parent = os.path.dirname(target)
        if not os.path.lexists(parent) and parent not in planned:
            steps.append(PrepareStep("mkdir", parent))
            planned.add(parent)
        if not os.path.lexists(target) and target not in planned:
            steps.append(PrepareStep("mkdir" if is_dir else "touch", target))
            planned.add(target)
    if steps:
        blocked = _first_unwritable(image, steps)
        if blocked:
            missing = ", ".join("/" + os.path.relpath(s.path, image) for s in steps[:4])
            more = f" and {len(steps) - 4} more" if len(steps) > 4 else ""
            raise ImageNotPrepared(
                f"ch-run refuses binds to destinations missing in the image, and {blocked} is not "
                f"writable: missing {missing}{more}",
                hint="use an image directory you own (ch-convert IMAGE ~/img), or ask its owner to "
                     "create those paths")
    return steps


def _first_unwritable(image: str, steps: list[PrepareStep]) -> str | None:
    for step in steps:
        existing = os.path.dirname(step.path)
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        if not os.access(existing, os.W_OK):
            return existing
    return None
