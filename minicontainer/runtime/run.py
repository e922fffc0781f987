"""`minict run IMAGE [COMMAND...]`: from the command line's flags to a container.

In order, and nothing is created before the last step:

    request   the flags, typed once at the command line's edge (request.py)
    limits    --memory, --cpus...: validated (resources.limits_from_flags),
              and this host asked whether it can enforce them (check_limits)
    GPUs      --gpu / --gpus / --gpu-plan: hpcshim's Plan, as binds, device
              nodes and variables (gpu.py)
    image     the store, or a pull (image.resolve)
    create    the image's config merged with the flags, checked: config.json
              and the engine's record (create.container_from)
    run       the record, the container's process, its end (lifecycle.run)
"""

from ..image import resolve
from ..syscalls import Kernel, Narrator
from . import lifecycle, rootless
from .request import RunRequest
from .resources import check_limits, limits_from_flags
from .create import container_from
from .state import Layout


def run_image(config, request: RunRequest) -> tuple[int | None, str]:
    """Run a new container as `request` (the flags of `minict run`, parsed
    at the command line's edge) asks. Returns (exit code, container id);
    the code is None for a detached container, which runs on."""
    kernel = Kernel(Narrator(config.explain))
    # minict run is an engine driving a runtime: --explain says which half
    # speaks (launch.py hands over to "runtime" for the runtime's steps).
    kernel.narrator.speaker = "engine"
    if rootless.active():
        # Without root: a user namespace first (rootless.py). Its default
        # network is another, and what it cannot do is refused here, before
        # anything is made.
        if not request.network_given:
            request = request.replace(network=rootless.default_network(kernel))
        rootless.check_request(config, request)
    limits = limits_from_flags(dict(request.resources))
    check_limits(limits)
    gpu = _gpu_injection(kernel, request.gpu, request.gpu_plan, request.gpus)
    device_flags, device_binds = request.device, []
    if rootless.active() and device_flags:
        device_flags, device_binds = (), rootless.device_binds(kernel, device_flags)
    engine, container_config = container_from(
        resolve(config, request.image), request.replace(device=device_flags),
        Layout.of(config).containers, gpu=gpu, limits=limits, device_binds=device_binds,
        volumes_dir=config.root / "volumes")
    return lifecycle.run(config, engine, container_config, kernel)


def _gpu_injection(kernel, mode: str | None, plan_file: str | None, gpus: str | None):
    """What --gpu / --gpus / --gpu-plan add to the container, or None (hpcshim
    is imported only when one of them is given: it is a separate program)."""
    if mode is None and plan_file is None and gpus is None:
        return None
    from . import gpu  # GPU flags only: it imports hpcshim, a separate program
    plan = gpu.plan_for_flags(mode, plan_file, gpus=gpus)
    if plan is None:
        return None
    injection = gpu.injection_from(plan)
    gpu.narrate(kernel, plan, plan_file or "found on this host", injection)
    return injection
