"""`minict run IMAGE [COMMAND...]`: from the command line's flags to a container.

In order, and nothing is created before the last step:

    limits    --memory, --cpus...: validated (resources.limits_from_flags),
              and this host asked whether it can enforce them (check_limits)
    GPUs      --gpu / --gpus / --gpu-plan: hpcshim's Plan, as binds, device
              nodes and variables (gpu.py)
    image     the store, or a pull (image.resolve)
    spec      the image's config merged with the flags, checked (spec.build_spec)
    run       the record, the container's process, its end (lifecycle.run)
"""

from ..image import resolve
from ..syscalls import Kernel, Narrator
from . import lifecycle, rootless
from .resources import check_limits, limits_from_flags
from .spec import build_spec


def run_image(config, image: str, command, options: dict) -> tuple[int | None, str]:
    """Run `command` in a new container from `image`, with the options of
    `minict run` (click's parameter names). Returns (exit code, container
    id); the code is None for a detached container, which runs on."""
    options = dict(options)
    network_given = options.pop("network_given", True)
    kernel = Kernel(Narrator(config.explain))
    # minict run is an engine driving a runtime: --explain says which half
    # speaks (launch.py hands over to "runtime" for the runtime's steps).
    kernel.narrator.speaker = "engine"
    if rootless.active():
        # Without root: a user namespace first (rootless.py). Its default
        # network is another, and what it cannot do is refused here, before
        # anything is made.
        if not network_given:
            options["network"] = rootless.default_network(kernel)
        rootless.check_request(config, options)
    limits = limits_from_flags(options)
    check_limits(limits)
    gpu = _gpu_injection(kernel, options.pop("gpu", None), options.pop("gpu_plan", None),
                         options.pop("gpus", None))
    if gpu is not None:
        options["env"] = [*gpu.env, *options.get("env", ())]   # the user's -e comes later and wins
    device_binds = []
    if rootless.active() and options.get("device"):
        device_binds = rootless.device_binds(kernel, options.pop("device"))
    spec = build_spec(resolve(config, image), image_ref=image, command=tuple(command),
                      env_files=tuple(options.pop("env_file", ())),
                      volumes=tuple(options.pop("volume", ())),
                      binds=(gpu.binds if gpu is not None else []) + device_binds,
                      devices=gpu.devices if gpu is not None else (),
                      limits=limits, volumes_dir=config.root / "volumes",
                      **{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in options.items()})
    if gpu is not None:
        spec.env = gpu.with_library_path(spec.env)
    return lifecycle.run(config, spec, kernel)


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
