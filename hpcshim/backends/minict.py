"""minict: `minict run --rm --gpu-plan FILE IMAGE CMD...`.

minict reads the Plan itself (hpcshim.plan.Plan.from_json; the module
docstring of hpcshim.plan is the contract), so everything goes into the
Plan: the user's -B binds become Plan binds of kind "user", --env values
and the Slurm/PMIx/MPI variables become Plan env. minict containers start
from the image's environment, like Apptainer with --cleanenv, so those
variables are always handed over.

The Plan travels as a file the child inherits: `hpcshim exec` writes the JSON
to an anonymous memory file (memfd_create), leaves that descriptor open
across exec, and passes `/dev/fd/N`. Nothing is left on disk, whatever
happens to the job; --dry-run shows the same /dev/fd path.
"""

from ..plan import Bind, Plan
from . import Command, ExecRequest, kept_host_env


def plan_for_minict(plan: Plan, request: ExecRequest) -> Plan:
    """The Plan with the user's binds and env folded in (minict takes only the Plan)."""
    merged = plan.copy()
    merged.binds = list(plan.binds) + [Bind(b.src, b.dst, b.ro, "user") for b in request.binds]
    env = kept_host_env(request.host_env)
    env.update(plan.env)  # the Plan's CUDA_VISIBLE_DEVICES (renumbered) beats the host's
    env.update(request.env)
    merged.env = env
    return merged


def render(exe: str, plan: Plan, request: ExecRequest, plan_path: str) -> Command:
    argv = [exe, "run", "--rm", "--gpu-plan", plan_path, request.image, *request.command]
    return Command(argv=argv, env=dict(request.host_env),
                   container_env=plan_for_minict(plan, request).env)
