"""Apptainer 1.x and Singularity 3.x: `exec` with the Plan as binds, libs and variables.

What `apptainer exec --nv` does, made explicit and version-aware. What each
rule below rests on was seen on a real Apptainer 1.1.9 (tests/hpcshim/
test_apptainer_real.py) or, for Singularity, on 3.4.2 (issue 18):

- Libraries go to /.singularity.d/libs. Files whose host name is already
  their soname go through the hidden `--containlibs` option (present in
  Singularity 3.x and Apptainer 1.x, the mechanism --nv uses internally); the
  others are bound file by file.
- LD_LIBRARY_PATH: the runtime adds /.singularity.d/libs to it only through
  the image's own /.singularity.d/env/99-base.sh. A plain root filesystem
  (an unpacked OCI image, ch-convert or minict output) has no such script,
  and the injected libraries were then invisible to the loader (issue 18,
  found on Singularity 3.4.2). So hpcshim sets LD_LIBRARY_PATH itself, like
  any other variable: the libs directories first, then the user's --env
  value, then the image's own where hpcshim can read it. (Apptainer appends
  /.singularity.d/libs once more, which changes nothing.)
- Device nodes. Without --contain the runtime mounts the host's /dev whole,
  so every GPU node is there and none is bound: a bind of a /dev node would
  even be remounted nodev and could no longer be opened. CUDA then counts
  GPUs among all the visible ones (Plan.envIfHostDev). With --contain /dev is
  minimal and each selected node is bound (the runtime puts a bind whose
  source is under the host's /dev into that /dev, parent directories and
  all, without nodev); CUDA then counts 0..n-1 (Plan.env). Nodes from
  elsewhere (a --host-root test tree) can never be devices in the container,
  because user binds are mounted nodev; what happens to their binds differs:
  Singularity 3.4 skips a bind whose destination is missing, Apptainer 1.x
  refuses the whole run ("destination /dev/nvidiactl doesn't exist in
  container", exit 255). So for Apptainer such nodes are not handed over at
  all, and `-v`/doctor say so (delivery()).
- Variables travel as APPTAINERENV_K (SINGULARITYENV_K) in the runtime's
  environment, never as `--env K=V`: the runtime parses --env as a CSV list
  of pairs, so a value with ',' and '=' is cut apart and '"' at its ends is
  dropped. --env itself becomes APPTAINERENV_K inside Apptainer, so the
  rules are the same. Those rules: the runtime evaluates the value in its
  shell when the container starts ($VAR, ${VAR}, $(cmd) and backticks are
  expanded, \\$ is a literal $). The user's --env values get exactly that.
  Values hpcshim passes on (the Plan's, and under --cleanenv the job's
  Slurm/PMIx/MPI variables, which --cleanenv would drop) must arrive byte for
  byte, so they are escaped (literal()). The host variables that hpcshim
  overrides are left out of the runtime's environment: Apptainer would
  otherwise warn on every run that it will not forward them.
- Images (`docker://...`, `*.sif`, sandbox directories) pass through untouched; archives,
  OCI layouts and minict images arrive here already made into URIs (hpcshim.images).

The version comes from `<runtime> --version` ("apptainer version 1.2.5",
"singularity-ce version 3.11.4", "singularity version 3.5.3"). Apptainer
also installs a `singularity` link; its output says apptainer, and that wins.
The answer is cached per executable (path, size, mtime: hpcshim/cache.py).
"""

import os
import re

from .. import cache
from ..errors import RuntimeNotFound, RuntimeUnsupported
from ..plan import Plan
from .command import Command, ExecRequest, kept_host_env, ld_library_path

LIBS_DIR = "/.singularity.d/libs"
LIBS32_DIR = "/.singularity.d/libs32"
_VERSION_RE = re.compile(r"^(apptainer|singularity(?:-ce)?|singularitypro)\s+version\s+v?(\d+)\.(\d+)", re.I)


def detect_version(exe: str, env: dict[str, str] | None = None) -> tuple[str, tuple[int, int]]:
    """("apptainer" | "singularity", (major, minor)) from `exe --version`, cached
    in hpcshim's cache (env: where it is) until the executable changes."""
    real = os.path.realpath(exe)
    directory = cache.cache_dir(env if env is not None else dict(os.environ))
    key = {"runtimeVersion": real}
    cached = cache.load(directory, key, kind="runtime")
    if cached is None:
        cached = {"text": _version_text(exe)}
        cache.store(directory, key, {real}, cached, kind="runtime")
    return parse_version(exe, cached["text"])


def _version_text(exe: str) -> str:
    import subprocess  # only when the cache has no answer
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise RuntimeNotFound(f"cannot run {exe} --version: {exc.strerror}",
                              hint="check that the runtime is installed and executable") from exc
    return (out.stdout or out.stderr).strip()


def parse_version(exe: str, text: str) -> tuple[str, tuple[int, int]]:
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


def env_prefix(flavour: str) -> str:
    """How a variable for the container is named in the runtime's environment."""
    return "APPTAINERENV_" if flavour == "apptainer" else "SINGULARITYENV_"


def evaluates_env(flavour: str, version: tuple[int, int]) -> bool:
    """Whether the runtime shell-evaluates APPTAINERENV_/SINGULARITYENV_ values:
    every Apptainer, and Singularity from 3.6 (its Go shell interpreter, which
    Apptainer inherited). Before 3.6 hpcshim passes values unchanged, as it always did."""
    return flavour == "apptainer" or version >= (3, 6)


_SPECIAL_IN_DOUBLE_QUOTES = '\\$`"'


def literal(value: str) -> str:
    """value written so that the runtime's evaluation gives it back byte for byte.

    The runtime writes `export K="<value>"` (with '"' escaped) and runs it in
    its embedded shell (mvdan.cc/sh). So '$' and '`' get a backslash, and so
    does '\\'. One more step, for a bug of that shell (mvdan/sh#1106, in
    Apptainer 1.1): inside double quotes it drops every backslash that is
    followed by another special character, so `\\\\\\$` gives `$`, not `\\$`.
    A backslash it must keep is therefore ended with an empty expansion
    `${?:+}` (always empty) whenever a special character follows it; a
    correct shell gives the same result.
    """
    out = []
    for i, char in enumerate(value):
        if char == "\\":
            out.append("\\\\")
            if i + 1 < len(value) and value[i + 1] in _SPECIAL_IN_DOUBLE_QUOTES:
                out.append("${?:+}")
        elif char in "$`":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def render(exe: str, plan: Plan, request: ExecRequest,
           flavour_version: tuple[str, tuple[int, int]]) -> Command:
    """The command; `flavour_version` is detect_version's answer (backends.find_runtime)."""
    flavour, version = flavour_version
    prefix = env_prefix(flavour)
    argv = [exe, request.action]    # exec, run (the runscript gets the args) or shell
    if request.cleanenv:
        argv.append("--cleanenv")
    if request.contain:
        argv.append("--contain")

    binds = [_bind_spec(b.src, b.dst, b.ro) for b in request.binds]
    if not plan.empty:
        binds += [_bind_spec(n.host_path, n.path, False) for n in _bound_nodes(plan, request, flavour)]
        containlibs = []
        for lib in plan.libraries:
            if lib.link and lib.link.rsplit("/", 1)[-1] == lib.name and "," not in lib.link:
                containlibs.append(lib.link)
            else:
                binds.append(_bind_spec(lib.src, f"{LIBS_DIR}/{lib.name}", True))
        binds += [_bind_spec(lib.src, f"{LIBS32_DIR}/{lib.name}", True) for lib in plan.libraries32]
        binds += [_bind_spec(b.src, b.dst, b.ro) for b in plan.binds]
        if containlibs:
            argv.append("--containlibs=" + ",".join(containlibs))
    for spec in binds:
        argv += ["--bind", spec]
    argv += [request.image, *request.command]

    # What the workload gets (container_env, for -v), and how each value is written
    # for the runtime: the user's --env as given, everything else literally.
    as_is = (lambda v: v)
    passed_on = literal if evaluates_env(flavour, version) else as_is
    container_env: dict[str, str] = {}
    written: dict[str, str] = {}

    def give(key: str, value: str, write) -> None:
        container_env[key] = value
        written[key] = write(value)

    if request.cleanenv:
        for key, value in kept_host_env(request.host_env).items():
            give(key, value, passed_on)
    if not plan.empty:
        for key, value in plan.env_for(host_dev=not request.contain).items():
            give(key, value, passed_on)
    for key, value in request.env.items():
        give(key, value, as_is)
    if plan.libraries or plan.libraries32:
        lib_dirs = [LIBS_DIR] + ([LIBS32_DIR] if plan.libraries32 else [])
        # the user's --env part decides how it is read, as if they had written it all
        give("LD_LIBRARY_PATH", ld_library_path(lib_dirs, request), as_is)

    extra_env = {prefix + key: value for key, value in written.items()}
    # The host's own copies of what the container gets from hpcshim: Apptainer
    # would warn that it does not forward them (it forwards host variables only
    # without --cleanenv), and that a SINGULARITYENV_/APPTAINERENV_ copy of the
    # user's is overridden.
    unset = []
    for key in written:
        copies = ([] if request.cleanenv else [key]) + ["APPTAINERENV_" + key, "SINGULARITYENV_" + key]
        unset += [name for name in copies if name in request.host_env and name not in extra_env]
    full_env = {k: v for k, v in request.host_env.items() if k not in unset}
    full_env.update(extra_env)
    return Command(argv=argv, env=full_env, extra_env=extra_env, unset_env=unset,
                   container_env=container_env, delivery=delivery(plan, request, flavour, version))


def _bound_nodes(plan: Plan, request: ExecRequest, flavour: str) -> list:
    """The device nodes handed to the runtime as binds (see the module docstring)."""
    if flavour == "apptainer":
        # Only real nodes, only into the minimal /dev of --contain; a node of a
        # --host-root tree would make Apptainer 1.x refuse the whole run.
        return [n for n in plan.devices if request.contain and _under_dev(n) and n.host_path == n.path]
    # Singularity: as before (it skips a tree node's bind whose destination is missing)
    return [n for n in plan.devices if request.contain or n.host_path != n.path]


def _under_dev(node) -> bool:
    return node.host_path.startswith("/dev/")


def delivery(plan: Plan, request: ExecRequest, flavour: str, version: tuple[int, int]) -> list[str]:
    """What this runtime version really does with each kind of Plan item."""
    name = f"{'Apptainer' if flavour == 'apptainer' else 'Singularity'} {version[0]}.{version[1]}"
    if plan.empty:
        return [f"{name}: no GPU items"]
    lines = []
    under_dev = [n for n in plan.devices if _under_dev(n)]
    elsewhere = [n for n in plan.devices if not _under_dev(n)]
    if request.contain and under_dev:
        lines.append(f"{name}: {len(under_dev)} device node(s) bound into the minimal /dev (--contain): "
                     + ", ".join(n.path for n in under_dev))
    elif under_dev:
        lines.append(f"{name}: {len(under_dev)} device node(s) present through the host's /dev, "
                     "which the runtime mounts whole (not bound: a bind there would be nodev)")
    if elsewhere and flavour == "apptainer":
        lines.append(f"{name}: {len(elsewhere)} device node(s) of the --host-root tree NOT in the "
                     f"container, and not handed over: {name} refuses the whole run when a bind's "
                     "destination is missing under /dev, and mounts user binds nodev: "
                     + ", ".join(n.path for n in elsewhere))
    elif elsewhere:
        lines.append(f"{name}: {len(elsewhere)} device node(s) of the --host-root tree NOT in the "
                     f"container: {name} creates a bind target in /dev only for sources under the "
                     "host's /dev, and mounts user binds nodev: "
                     + ", ".join(n.path for n in elsewhere))
    libs = f"{len(plan.libraries)} librar{'y' if len(plan.libraries) == 1 else 'ies'} in {LIBS_DIR}"
    if plan.libraries32:
        libs += f", {len(plan.libraries32)} 32-bit in {LIBS32_DIR}"
    prefix = env_prefix(flavour)
    lines.append(f"{name}: {libs}; LD_LIBRARY_PATH set by hpcshim through {prefix} (images without "
                 "/.singularity.d/env get no other)")
    if plan.binds:
        lines.append(f"{name}: {len(plan.binds)} other bind(s) (binaries, sockets, firmware, ICD files) "
                     "at their paths")
    if evaluates_env(flavour, version):
        lines.append(f"{name}: variables as {prefix}*, which it shell-evaluates: hpcshim's own and the "
                     "job's kept ones escaped (they arrive byte for byte), --env values as given")
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
