"""GPUs for `minict run`: hpcshim's Plan turned into binds, device nodes and env.

Two ways in, one way through:

- `minict run --gpu-plan FILE` reads a Plan that hpcshim wrote (FILE is
  often `/dev/fd/N`: `hpcshim exec --runtime minict` hands it over in an
  inherited memory file, so nothing is left on disk);
- `minict run --gpu[=auto|nvidia|rocm|none]` builds the Plan here, with
  hpcshim's own selection and discovery (HPCSHIM_HOST_ROOT moves the host
  root, as for `hpcshim`, so tests can use a fake driver tree).

Either way `injection_from(plan)` turns it into what create.container_from takes.
The contract for each field is the module docstring of hpcshim.plan; what
minict does with them:

- devices: mknod(2) in the container's own /dev tmpfs (minict runs as root,
  so it has CAP_MKNOD). Only the listed nodes exist there, so the GPUs that
  were not selected cannot even be opened, and the Plan's `env` (indices
  counted among the selected GPUs) is the right one, not `envIfHostDev`.
  Without root (rootless.py) the user namespace refuses mknod: each node's
  `hostPath` is bound instead, onto an empty file at its path in that same
  /dev (the Plan allows either), so still only the listed nodes are there.
  Opening one is then the kernel's own check of the caller against the
  host's node (there is no device cgroup without root), and a node the
  caller may not open is refused here, before anything is made.
- binds: bind mounts, read-only when asked; the runtime creates a missing
  destination in the container's upper layer, never in the image.
- libraries / libraries32: each file bound read-only at libDir/name (name
  is the soname, the name the dynamic loader asks for).
- ldLibraryPath: put in front of the container's LD_LIBRARY_PATH, keeping
  the image's (or -e's) value after it, so the loader finds the host's
  driver libraries first and the image's own libraries still after them.
- env: set in the container, like -e options given before the user's own:
  the image's values lose, an explicit -e wins.

hpcshim is imported here, and only when a GPU flag is given: it is a
program of its own with its own dependencies, and it never imports
minicontainer.
"""

import os
import stat
from collections import namedtuple

from hpcshim.build import GpuRequest, build_plan
from hpcshim.errors import HpcshimError
from hpcshim.errors import NoGpu as ShimNoGpu
from hpcshim.plan import Plan

from ..errors import BadArgument, BadGpuPlan, GpuDiscoveryFailed, NoGpu
from . import rootless
from .docker_flags import gpus_environment
from .flags import Bind, DeviceNode, valid_env_key

GPU_MODES = ("auto", "nvidia", "rocm", "none")
BARE_GPU = "any"      # `--gpu` alone: a GPU of any vendor, or fail (hpcshim's meaning)
PLAN_HINT = "write one with `hpcshim doctor --json > plan.json`, or let minict find the GPUs with --gpu"


class GpuInjection(namedtuple("GpuInjection", ["binds", "devices", "env", "ld_library_path"])):
    """What a Plan adds to a container: binds (flags.Bind), devices
    (flags.DeviceNode), env ("NAME=value" items) and the directories to put
    in front of LD_LIBRARY_PATH."""
    __slots__ = ()

    def with_library_path(self, env: list[str]) -> list[str]:
        """`env` with this injection's library directories first on LD_LIBRARY_PATH."""
        return with_library_path(env, self.ld_library_path)


# ---- getting a Plan -----------------------------------------------------------------------

def plan_for_flags(gpu: str | None, gpu_plan: str | None, env=None, gpus: str | None = None):
    """The hpcshim Plan that `--gpu[=MODE]` / `--gpus WHICH` / `--gpu-plan FILE`
    ask for, or None when none asks for anything (no flag, or --gpu=none)."""
    env = os.environ if env is None else env
    if gpus is not None:
        # docker's --gpus: NVIDIA's, and which ones is the flag's to say
        # (docker_flags.gpus_environment), not the job's variables.
        if gpu is not None or gpu_plan is not None:
            raise BadArgument("--gpus and --gpu/--gpu-plan both say which GPUs to use",
                              "give one: --gpus is docker's spelling of --gpu=nvidia")
        return discover_plan("nvidia", gpus_environment(gpus, env), flag=f"--gpus {gpus}")
    if gpu is not None and gpu not in GPU_MODES + (BARE_GPU,):
        raise BadArgument(f"--gpu={gpu} is not a GPU mode",
                          "use --gpu alone, or --gpu=auto, --gpu=nvidia, --gpu=rocm or --gpu=none")
    if gpu_plan is not None and gpu not in (None, "none"):
        raise BadArgument("--gpu and --gpu-plan both say which GPUs to use",
                          "give one: --gpu-plan FILE when hpcshim made the plan, --gpu otherwise")
    if gpu_plan is not None:
        return read_plan(gpu_plan)
    if gpu in (None, "none"):
        return None
    return discover_plan(gpu, env)


def read_plan(path: str):
    """Parse the Plan JSON at `path` (a file, or /dev/fd/N from hpcshim)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise BadGpuPlan(f"--gpu-plan {path}: cannot read it: {exc.strerror}", PLAN_HINT) from None
    except UnicodeDecodeError:
        raise BadGpuPlan(f"--gpu-plan {path}: not a text file", PLAN_HINT) from None
    try:
        return Plan.from_json(text)
    except HpcshimError as exc:
        raise BadGpuPlan(f"--gpu-plan {path}: {exc.message}", exc.hint) from None


def discover_plan(mode: str, env, flag: str = "--gpu"):
    """hpcshim's selection and discovery, in this process: the same Plan
    `hpcshim exec --gpu[=MODE]` would hand to a runtime. (`flag`: the
    minict flag that asked, for the error messages.)"""
    request = GpuRequest(mode=mode, root=env.get("HPCSHIM_HOST_ROOT") or "/", env=dict(env))
    try:
        return build_plan(request)
    except ShimNoGpu as exc:
        message = exc.message if flag == "--gpu" else exc.message.replace(f"--gpu={mode}", flag, 1)
        raise NoGpu(message.replace("--gpu", "minict run --gpu", 1), exc.hint) from None
    except HpcshimError as exc:
        raise GpuDiscoveryFailed(f"{flag}: {exc.message}", exc.hint) from None


# ---- Plan -> binds, devices, env --------------------------------------------------------------

def injection_from(plan) -> GpuInjection:
    """Check the Plan against this host and turn it into spec items.

    Everything is checked here, before the container exists, so a Plan
    that names a missing file fails with one line and leaves nothing
    behind (the runtime would only notice half-way through its mounts).
    """
    binds = [Bind(_host_path(b.src, "bind"), _container_path(b.dst, "bind"), bool(b.ro))
             for b in plan.binds]
    if rootless.active():
        devices = []
        binds += [_device_bind(d) for d in plan.devices]
    else:
        devices = [_device(d) for d in plan.devices]
    for directory, libraries in ((plan.lib_dir, plan.libraries), (plan.lib32_dir, plan.libraries32)):
        for lib in libraries:
            if not lib.name or "/" in lib.name or lib.name in (".", ".."):
                raise BadGpuPlan(f"the GPU plan names library {lib.name!r}: not a file name",
                                 "a library's name is its soname, e.g. libcuda.so.1")
            source = _host_path(lib.src, "library")
            if not os.path.isfile(source):
                raise BadGpuPlan(f"the GPU plan's library {source} is not a regular file",
                                 "regenerate the plan with `hpcshim doctor --json`")
            # Read-only: a container must not be able to rewrite the host's driver.
            binds.append(Bind(source, _container_path(f"{directory}/{lib.name}", "library"), True))
    env = []
    for key, value in plan.env.items():
        if not valid_env_key(key):
            raise BadGpuPlan(f"the GPU plan sets an invalid variable name {key!r}", PLAN_HINT)
        env.append(f"{key}={value}")
    ld_path = [_container_path(d, "ldLibraryPath") for d in plan.ld_library_path]
    return GpuInjection(binds=binds, devices=devices, env=env, ld_library_path=ld_path)


def _device(node) -> DeviceNode:
    path = _container_path(node.path, "device")
    if not path.startswith("/dev/"):
        raise BadGpuPlan(f"the GPU plan's device {node.path} is not under /dev",
                         "device nodes are made in the container's /dev")
    if node.type not in ("c", "b") or not 0 <= node.mode <= 0o7777 or node.major < 0 or node.minor < 0:
        raise BadGpuPlan(f"the GPU plan's device {node.path} has type {node.type!r}, "
                         f"major {node.major}, minor {node.minor}, mode {node.mode:#o}",
                         "type is c or b, mode the permission bits (e.g. 438 for 0o666)")
    return DeviceNode(path=path, type=node.type, major=node.major, minor=node.minor, mode=node.mode)


def _device_bind(node) -> Bind:
    """Without root: the host's node `node.host_path`, bound at its path in
    the container's /dev (no mknod in a user namespace). Checked first: it
    must be the node the Plan describes, and one the caller may open."""
    wanted = _device(node)
    source = _host_path(node.host_path, "device")
    _check_same_node(source, wanted)
    _check_caller_may_open(source, wanted)
    # Not read-only: a read-only mount does not stop writes to a device, and
    # the node's own permissions are what count.
    return Bind(source, wanted.path, False)


def _check_same_node(source: str, wanted: DeviceNode) -> None:
    """The host node is of the Plan's type and numbers (else the Plan is stale:
    the driver was reloaded and its dynamic majors changed, or it is another host's)."""
    st = os.stat(source)
    if stat.S_ISCHR(st.st_mode):
        found = f"c {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    elif stat.S_ISBLK(st.st_mode):
        found = f"b {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    else:
        found = "not a device node"
    expected = f"{wanted.type} {wanted.major}:{wanted.minor}"
    if found != expected:
        raise BadGpuPlan(f"the GPU plan's device {wanted.path} is {expected}, but its host node "
                         f"{source} is {found}",
                         "regenerate the plan on this host (`hpcshim doctor --json`)")


def _check_caller_may_open(source: str, wanted: DeviceNode) -> None:
    """Refuse, in one line, a node the caller cannot open on the host.

    ch-run binds the host's whole /dev and lets open() fail inside the job,
    where CUDA reports it as "no CUDA-capable device", far from the cause.
    access(2) asks the kernel the same question open() will: the caller's
    uid and groups against the node's owner and mode (minict is not setuid,
    so its real ids are the ones open() uses). Write access is asked only
    when the Plan's mode gives some (nvidia-caps nodes are read-only).
    A device cgroup on the host (Slurm's) is not seen by access(2): a node
    it denies is still bound, and fails at open() as it would outside."""
    needed = os.R_OK | (os.W_OK if wanted.mode & 0o222 else 0)
    if os.access(source, needed):
        return
    st = os.stat(source)
    how = "read and write" if needed & os.W_OK else "read"
    raise BadGpuPlan(f"the GPU plan's device {wanted.path}: uid {os.getuid()} may not {how} "
                     f"the host's {source} (mode {stat.S_IMODE(st.st_mode):04o}, owner "
                     f"{st.st_uid}:{st.st_gid})",
                     "ask the administrator for access (often a group such as video or "
                     "render), or run minict as root")


def _host_path(path: str, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadGpuPlan(f"the GPU plan's {what} source {path!r} is not an absolute path", PLAN_HINT)
    if not os.path.exists(path):
        raise BadGpuPlan(f"the GPU plan's {what} source {path} does not exist on this host",
                         "make the plan on the host that runs the container (`hpcshim doctor --json`)")
    return path


def _container_path(path: str, what: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or os.path.normpath(path) == "/":
        raise BadGpuPlan(f"the GPU plan's {what} path {path!r} is not an absolute path below /",
                         PLAN_HINT)
    # Normalised so that two spellings of one place count as one mount point;
    # symlinks in the image are resolved safely later (rootfs.open_mountpoint).
    return os.path.normpath(path)


def with_library_path(env: list[str], directories: list[str]) -> list[str]:
    """`env` ("NAME=value" items) with `directories` put in front of
    LD_LIBRARY_PATH, whatever value the image or -e gave it kept after them."""
    if not directories:
        return list(env)
    front = ":".join(directories)
    out, found = [], False
    for item in env:
        key, _, value = item.partition("=")
        if key == "LD_LIBRARY_PATH":
            found = True
            item = f"LD_LIBRARY_PATH={front}:{value}" if value else f"LD_LIBRARY_PATH={front}"
        out.append(item)
    if not found:
        out.append(f"LD_LIBRARY_PATH={front}")
    return out


# ---- --explain ------------------------------------------------------------------------------

def narrate(kernel, plan, source: str, injection: GpuInjection) -> None:
    """Say what the Plan asks for, before the runtime's own mknod/mount lines."""
    if plan.vendor is None:
        kernel.explain(f"GPU plan ({source}): no GPU to inject; it brings "
                       f"{len(injection.binds)} bind(s) and {len(injection.env)} variable(s)")
    else:
        vendor = {"nvidia": "NVIDIA", "rocm": "AMD ROCm"}.get(plan.vendor, plan.vendor)
        driver = f" driver {plan.driver_version}" if plan.driver_version else ""
        gpus = ", ".join(str(g.index) for g in plan.gpus) or "none"
        kernel.explain(f"GPU plan ({source}): {vendor}{driver}, host GPU(s) {gpus}")
        libraries = len(plan.libraries) + len(plan.libraries32)
        how = "binds of the host's nodes, no mknod without root" if rootless.active() else "mknod"
        kernel.explain(f"It asks for {len(plan.devices)} device node(s) in the container's own "
                       f"/dev ({how}; no other GPU is reachable), {libraries} driver librar"
                       f"{'y' if libraries == 1 else 'ies'} bound read-only under {plan.lib_dir}"
                       f"{' and ' + plan.lib32_dir if plan.libraries32 else ''}, and "
                       f"{len(plan.binds)} other bind(s) (tools, firmware, sockets)")
    if injection.env:
        kernel.explain("It sets " + " ".join(injection.env))
    if injection.ld_library_path:
        kernel.explain(f"LD_LIBRARY_PATH will start with {':'.join(injection.ld_library_path)}, "
                       "so the loader finds the host's driver libraries first")
    for pitfall in plan.pitfalls:
        kernel.explain(f"Note: {pitfall}")
