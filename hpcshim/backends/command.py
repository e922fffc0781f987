"""What every backend shares: the request, the rendered command, the helpers.

ExecRequest is what the user asked for, whatever the runtime; a backend's
render() turns it and the Plan into a Command (argv, environment, the
mount points to prepare), running nothing.
"""

import os
import shlex
from collections import namedtuple

from ..plan import Bind

# Host variables a job launcher needs inside the container even with
# --cleanenv: the GPU choice, and what MPI/PMIx use to wire up ranks
# (Apptainer's --cleanenv drops them, and `srun --mpi=pmix` then hangs).
KEEP_ENV_EXACT = ("CUDA_VISIBLE_DEVICES",)
KEEP_ENV_PREFIXES = ("SLURM_", "PMIX_", "PMI_", "OMPI_")


class ExecRequest:
    """What the user asked for, independent of the runtime."""

    def __init__(self, image: str, command: list[str], binds: list[Bind] | None = None,
                 env: dict[str, str] | None = None, cleanenv: bool = False, contain: bool = False,
                 host_env: dict[str, str] | None = None, image_env: dict[str, str] | None = None,
                 action: str = "exec", tty: bool = False, image_config: dict | None = None):
        self.action = action                    # exec | run (the image's own command) | shell
        self.tty = tty                          # stdin is a terminal (shell: ask for a tty)
        self.image = image
        self.command = list(command)            # exec: CMD ARGS; run: ARGS; shell: []
        self.binds = list(binds or [])          # -B/--bind
        self.env = dict(env or {})              # --env K=V
        self.cleanenv = cleanenv
        self.contain = contain
        self.host_env = dict(host_env or {})    # the environment hpcshim runs in
        # The image's own variables, where hpcshim can read them (an OCI config,
        # Charliecloud's /ch/environment); {} when unknown. Used to keep the
        # image's LD_LIBRARY_PATH behind the injected library directories.
        self.image_env = dict(image_env or {})
        # The image's OCI config (Entrypoint, Cmd, Env), when hpcshim read it: `run` with ch-run.
        self.image_config = dict(image_config or {})


class PrepareStep(namedtuple("PrepareStep", ["action", "path"])):
    """A change hpcshim makes before exec: action "mkdir" or "touch" at path
    (a mount point in an image)."""
    __slots__ = ()

    def shell(self) -> str:
        return shlex.join(["mkdir", "-p", self.path] if self.action == "mkdir" else ["touch", self.path])

    def apply(self) -> None:
        if self.action == "mkdir":
            os.makedirs(self.path, exist_ok=True)
        else:
            with open(self.path, "a"):
                pass


class Command:
    """A rendered runtime command: what to prepare, then what to execve."""

    def __init__(self, argv: list[str], env: dict[str, str], extra_env: dict[str, str] | None = None,
                 prepare: list[PrepareStep] | None = None, notes: list[str] | None = None,
                 container_env: dict[str, str] | None = None, delivery: list[str] | None = None,
                 unset_env: list[str] | None = None):
        self.argv = argv                            # argv[0] is the runtime's full path
        self.env = env                              # the runtime's whole environment
        self.extra_env = dict(extra_env or {})      # what hpcshim added to the host's
        self.unset_env = list(unset_env or [])      # host variables it left out
        self.prepare = list(prepare or [])
        self.notes = list(notes or [])
        self.container_env = dict(container_env or {})   # what the workload gets set
        # What this runtime (and version) really does with each kind of item of
        # the Plan: printed by `exec -v` and `doctor`, which must not claim that
        # something handed to the runtime appears in the container when it does not.
        self.delivery = list(delivery or [])

    def display(self) -> str:
        """The exact command, shell-quoted: preparation steps, then the runtime's line."""
        lines = [step.shell() for step in self.prepare]
        words = self.argv
        if self.extra_env or self.unset_env:
            words = (["env"] + [f"--unset={k}" for k in self.unset_env]
                     + [f"{k}={v}" for k, v in self.extra_env.items()] + self.argv)
        lines.append(shlex.join(words))
        return "\n".join(lines)


def kept_host_env(host_env: dict[str, str]) -> dict[str, str]:
    """The host variables that survive --cleanenv (see KEEP_ENV_PREFIXES)."""
    return {k: v for k, v in host_env.items()
            if k in KEEP_ENV_EXACT or k.startswith(KEEP_ENV_PREFIXES)}


def ld_library_path(lib_dirs: list[str], request: ExecRequest, *more: str) -> str:
    """LD_LIBRARY_PATH for the workload: the injected library directories first
    (the driver's libcuda must win over a stub in the image), then the value the
    user gave with --env, then `more` (a runtime's own source, e.g. the host's),
    then the image's own value; each directory once."""
    parts = list(lib_dirs)
    values = (request.env.get("LD_LIBRARY_PATH", ""), *more, request.image_env.get("LD_LIBRARY_PATH", ""))
    for value in values:
        parts += [p for p in value.split(":") if p and p not in parts]
    return ":".join(parts)
