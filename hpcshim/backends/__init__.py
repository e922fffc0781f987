"""Backends: which runtime, and the Plan plus the user's request as its command.

- apptainer:  Apptainer 1.x and Singularity 3.x (`apptainer exec`, `singularity exec`)
- chrun:      Charliecloud's ch-run
- minict:     this repository's runtime (`minict run --gpu-plan`)

find_runtime() is the only step that runs anything: for Apptainer and
Singularity it asks the runtime's version (`--version`, cached per
executable). render() and delivery() then only compute: each backend module
has `render(...) -> Command` and `delivery(...)`, the shared types are in
command.py, and hpcshim/launch.py prepares and execs the Command.

`--runtime auto` takes the first of apptainer, singularity, ch-run, minict on PATH.
"""

import importlib
import os
import shutil
from collections import namedtuple

from ..errors import BadArgument, RuntimeNotFound
from .command import (Command, ExecRequest, PrepareStep, kept_host_env,  # noqa: F401 (the package's API)
                      ld_library_path)

RUNTIMES = ("apptainer", "singularity", "ch-run", "minict")
MODULES = {"apptainer": "apptainer", "singularity": "apptainer", "ch-run": "chrun", "minict": "minict"}


# A runtime found on PATH: name (apptainer | singularity | ch-run | minict), exe (its
# full path), version (Apptainer/Singularity: ("apptainer" | "singularity", (major,
# minor)), else None). (collections' namedtuple: typing's would import 1.5 ms more.)
Runtime = namedtuple("Runtime", ["name", "exe", "version"], defaults=[None])


def backend(name: str):
    """The backend module of runtime `name`, imported when chosen: `hpcshim exec`
    runs in front of every job step, and pays only for its own runtime's code."""
    return importlib.import_module(f"{__name__}.{MODULES[name]}")


def find_runtime(name: str, env: dict[str, str]) -> Runtime:
    """The runtime --runtime NAME (or auto) names, and for Apptainer/Singularity its version."""
    path = env.get("PATH", os.defpath)
    if name == "auto":
        found = next(((c, exe) for c in RUNTIMES if (exe := shutil.which(c, path=path))), None)
        if found is None:
            raise RuntimeNotFound("no container runtime on PATH (looked for " + ", ".join(RUNTIMES) + ")",
                                  hint="load a module (e.g. `module load apptainer`) or pass --runtime")
        name, exe = found
    elif name not in RUNTIMES:
        raise BadArgument(f"unknown runtime {name!r}", hint="choose auto, " + ", ".join(RUNTIMES))
    else:
        exe = shutil.which(name, path=path)
        if exe is None:
            raise RuntimeNotFound(f"--runtime {name}: `{name}` is not on PATH",
                                  hint="install it, load its module, or choose another --runtime")
    version = backend(name).detect_version(exe, env) if MODULES[name] == "apptainer" else None
    return Runtime(name, exe, version)


def render(runtime: Runtime, plan, request: ExecRequest, plan_path: str | None = None) -> Command:
    """The runtime's command for this Plan and request (minict: the Plan at plan_path)."""
    module = backend(runtime.name)
    if runtime.name == "minict":
        return module.render(runtime.exe, plan, request, plan_path or "/dev/fd/3")
    if runtime.version is not None:
        return module.render(runtime.exe, plan, request, runtime.version)
    return module.render(runtime.exe, plan, request)


def delivery(runtime: Runtime, plan, contain: bool = False) -> list[str]:
    """What `runtime` would really do with the Plan's items (for doctor)."""
    module = backend(runtime.name)
    if runtime.version is not None:
        return module.delivery(plan, ExecRequest("IMAGE", [], contain=contain), *runtime.version)
    return module.delivery(plan)
