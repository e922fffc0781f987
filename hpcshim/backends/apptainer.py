"""Apptainer 1.x and Singularity 3.x: `exec` with the Plan as binds, libs and env.

What `apptainer exec --nv` does, made explicit and version-aware:

- Libraries go to /.singularity.d/libs. Files whose host name is already
  their soname go through the hidden `--containlibs` option (present in
  Singularity 3.x and Apptainer 1.x, the mechanism --nv uses internally); the
  others are bound file by file.
- LD_LIBRARY_PATH: the runtime adds /.singularity.d/libs to it only through
  the image's own /.singularity.d/env/99-base.sh. A plain root filesystem
  (an unpacked OCI image, ch-convert or minict output) has no such script,
  and the injected libraries were then invisible to the loader (issue 18,
  found on Singularity 3.4.2). So hpcshim sets LD_LIBRARY_PATH itself, like
  any other variable (--env, or SINGULARITYENV_ before 3.6): the libs
  directories first, then the user's --env value, then the image's own where
  hpcshim can read it. An image that does have 99-base.sh appends libs once
  more, which changes nothing.
- Device nodes: without --contain the runtime mounts the host's /dev, so
  nothing is needed (and CUDA counts GPUs among all the visible ones:
  Plan.envIfHostDev); with --contain /dev is minimal and each selected node
  is bound explicitly (CUDA then counts 0..n-1: Plan.env). A bind only
  appears in that minimal /dev when its source is under the host's /dev, and
  user binds are mounted nodev (seen on Singularity 3.4.2; Apptainer 1.x has
  the same code): nodes of a --host-root test tree are handed over but do not
  appear, and `-v` says so (delivery()).
- Environment: `--env K=V` exists from Singularity 3.6 and in every
  Apptainer; older Singularity 3.x takes SINGULARITYENV_K=V variables
  instead. Under --cleanenv the runtime drops the host's variables, including
  the Slurm/PMIx ones an MPI launch needs: those are handed over as
  APPTAINERENV_/SINGULARITYENV_ variables, which survive --cleanenv in all
  versions.
- Images (`docker://...`, `*.sif`, sandbox directories) pass through untouched; archives,
  OCI layouts and minict images arrive here already made into URIs (hpcshim.images).

The version comes from `<runtime> --version` ("apptainer version 1.2.5",
"singularity-ce version 3.11.4", "singularity version 3.5.3"). Apptainer
also installs a `singularity` link; its output says apptainer, and that wins.
"""

import re

from ..errors import RuntimeNotFound, RuntimeUnsupported
from ..plan import Plan
from . import Command, ExecRequest, kept_host_env, ld_library_path

LIBS_DIR = "/.singularity.d/libs"
LIBS32_DIR = "/.singularity.d/libs32"
_VERSION_RE = re.compile(r"^(apptainer|singularity(?:-ce)?|singularitypro)\s+version\s+v?(\d+)\.(\d+)", re.I)


def detect_version(exe: str) -> tuple[str, tuple[int, int]]:
    """("apptainer" | "singularity", (major, minor)) from `exe --version`."""
    import subprocess
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise RuntimeNotFound(f"cannot run {exe} --version: {exc.strerror}",
                              hint="check that the runtime is installed and executable") from exc
    text = (out.stdout or out.stderr).strip()
    match = _VERSION_RE.match(text)
    if not match:
        raise RuntimeUnsupported(f"{exe} --version printed {text[:80]!r}, not an Apptainer/Singularity version",
                                 hint="pass --runtime with the runtime you mean")
    flavour = "apptainer" if match.group(1).lower() == "apptainer" else "singularity"
    version = (int(match.group(2)), int(match.group(3)))
    if flavour == "singularity" and version < (3, 0):
        raise RuntimeUnsupported(f"Singularity {version[0]}.{version[1]} is too old (no --containlibs)",
                                 hint="use Singularity 3.x or Apptainer")
    return flavour, version


def has_env_flag(flavour: str, version: tuple[int, int]) -> bool:
    return flavour == "apptainer" or version >= (3, 6)


def render(exe: str, plan: Plan, request: ExecRequest,
           flavour_version: tuple[str, tuple[int, int]] | None = None) -> Command:
    flavour, version = flavour_version or detect_version(exe)
    prefix = "APPTAINERENV_" if flavour == "apptainer" else "SINGULARITYENV_"
    argv = [exe, request.action]    # exec, run (the runscript gets the args) or shell
    extra_env: dict[str, str] = {}
    notes: list[str] = []
    if request.cleanenv:
        argv.append("--cleanenv")
    if request.contain:
        argv.append("--contain")

    binds: list[str] = []
    for bind in request.binds:
        binds.append(_bind_spec(bind.src, bind.dst, bind.ro))
    if not plan.empty:
        for node in plan.devices:
            # Without --contain the host's /dev is there already; a node from a
            # --host-root tree (host_path != path) still has to be bound.
            if request.contain or node.host_path != node.path:
                binds.append(_bind_spec(node.host_path, node.path, False))
        containlibs = []
        for lib in plan.libraries:
            if lib.link and lib.link.rsplit("/", 1)[-1] == lib.name and "," not in lib.link:
                containlibs.append(lib.link)
            else:
                binds.append(_bind_spec(lib.src, f"{LIBS_DIR}/{lib.name}", True))
        for lib in plan.libraries32:
            binds.append(_bind_spec(lib.src, f"{LIBS32_DIR}/{lib.name}", True))
        for bind in plan.binds:
            binds.append(_bind_spec(bind.src, bind.dst, bind.ro))
        if containlibs:
            argv.append("--containlibs=" + ",".join(containlibs))
    for spec in binds:
        argv += ["--bind", spec]

    env = plan.env_for(host_dev=not request.contain) if not plan.empty else {}
    env.update(request.env)
    if plan.libraries or plan.libraries32:
        lib_dirs = [LIBS_DIR] + ([LIBS32_DIR] if plan.libraries32 else [])
        env["LD_LIBRARY_PATH"] = ld_library_path(lib_dirs, request)
    if has_env_flag(flavour, version):
        for key, value in env.items():
            argv += ["--env", f"{key}={value}"]
    else:
        if env:
            notes.append(f"Singularity {version[0]}.{version[1]} has no --env: using {prefix}* variables")
        for key, value in env.items():
            extra_env[prefix + key] = value
    if request.cleanenv:
        for key, value in kept_host_env(request.host_env).items():
            if key not in env:
                extra_env[prefix + key] = value
    argv += [request.image, *request.command]
    full_env = dict(request.host_env)
    full_env.update(extra_env)
    return Command(argv=argv, env=full_env, extra_env=extra_env, notes=notes, container_env=env,
                   delivery=delivery(plan, request, flavour, version))


def delivery(plan: Plan, request: ExecRequest, flavour: str, version: tuple[int, int]) -> list[str]:
    """What this runtime version really does with each kind of Plan item."""
    name = f"{'Apptainer' if flavour == 'apptainer' else 'Singularity'} {version[0]}.{version[1]}"
    if plan.empty:
        return [f"{name}: no GPU items"]
    lines = []
    under_dev = [n for n in plan.devices if n.host_path.startswith("/dev/")]
    elsewhere = [n for n in plan.devices if not n.host_path.startswith("/dev/")]
    if request.contain and under_dev:
        lines.append(f"{name}: {len(under_dev)} device node(s) bound into the minimal /dev (--contain): "
                     + ", ".join(n.path for n in under_dev))
    elif under_dev:
        lines.append(f"{name}: {len(under_dev)} device node(s) present through the host's /dev, "
                     "which the runtime mounts whole (not bound)")
    if elsewhere:
        lines.append(f"{name}: {len(elsewhere)} device node(s) of the --host-root tree NOT in the "
                     f"container: {name} creates a bind target in /dev only for sources under the "
                     "host's /dev, and mounts user binds nodev: "
                     + ", ".join(n.path for n in elsewhere))
    libs = f"{len(plan.libraries)} librar{'y' if len(plan.libraries) == 1 else 'ies'} in {LIBS_DIR}"
    if plan.libraries32:
        libs += f", {len(plan.libraries32)} 32-bit in {LIBS32_DIR}"
    how = "--env" if has_env_flag(flavour, version) else ("SINGULARITYENV_" if flavour == "singularity"
                                                          else "APPTAINERENV_")
    lines.append(f"{name}: {libs}; LD_LIBRARY_PATH set by hpcshim through {how} (images without "
                 "/.singularity.d/env get no other)")
    if plan.binds:
        lines.append(f"{name}: {len(plan.binds)} other bind(s) (binaries, sockets, firmware, ICD files) "
                     "at their paths")
    if request.contain:
        lines.append(f"{name}: --contain: a /dev/shm of the container's own (ranks of a node do not "
                     "share it); the host's network and memlock")
    else:
        lines.append(f"{name}: the host's network, IPC namespace and /dev/shm (the host's /dev), "
                     "memlock as the caller's")
    return lines


def _bind_spec(src: str, dst: str, ro: bool) -> str:
    spec = src if src == dst else f"{src}:{dst}"
    if ro:
        spec = f"{src}:{dst}:ro"
    return spec
