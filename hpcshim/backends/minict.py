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

import os
import resource

from ..plan import Bind, Plan
from .command import Command, ExecRequest, kept_host_env


def plan_for_minict(plan: Plan, request: ExecRequest) -> Plan:
    """The Plan with the user's binds and env folded in (minict takes only the Plan)."""
    merged = plan.copy()
    merged.binds = list(plan.binds) + [Bind(b.src, b.dst, b.ro, "user") for b in request.binds]
    env = kept_host_env(request.host_env)
    env.update(plan.env)  # the Plan's CUDA_VISIBLE_DEVICES (renumbered) beats the host's
    env.update(request.env)
    merged.env = env
    return merged


def job_flags() -> list[str]:
    """What every container of a job gets, so that it behaves like one under
    Apptainer or ch-run (which create no namespaces for these):

    - --network host: the ranks, the PMIx server and the other nodes talk over
      the host's interfaces, not through a bridge of minict's;
    - --ipc host: the host's IPC namespace and /dev/shm, so the ranks of one
      node share memory (NCCL's and MPI's shared-memory transports). A
      `container:` peer would need one rank to start first, which srun does
      not promise. minict allows it without root too: its container then
      stays in the host's IPC namespace, which needs no privilege;
    - --ulimit memlock=SOFT:HARD: the caller's own limits, never lower and
      never higher (raising a hard limit needs CAP_SYS_RESOURCE, which a job
      does not have): NCCL and InfiniBand pin memory, and a container start
      must not quietly cut the limit Slurm gave the job.
    """
    return ["--network", "host", "--ipc", "host", "--ulimit", "memlock=" + memlock_value()]


def memlock_value() -> str:
    """This process's RLIMIT_MEMLOCK as minict's --ulimit SOFT:HARD (-1: unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)

    def text(value: int) -> str:
        return "-1" if value == resource.RLIM_INFINITY else str(value)
    return f"{text(soft)}:{text(hard)}"


def render(exe: str, plan: Plan, request: ExecRequest, plan_path: str) -> Command:
    argv = [exe, "run", "--rm", *job_flags(), "--gpu-plan", plan_path]
    if request.action == "shell":
        # Apptainer's shell is /bin/sh; -t only when there is a terminal to give it
        argv += ["-i"] + (["-t"] if request.tty else []) + ["--entrypoint", "/bin/sh"]
    # exec: CMD replaces the image's; run: ARGS replace its CMD (ENTRYPOINT stays), none: both kept
    argv += [request.image, *request.command]
    return Command(argv=argv, env=dict(request.host_env),
                   container_env=plan_for_minict(plan, request).env, delivery=delivery(plan))


def delivery(plan: Plan) -> list[str]:
    """What minict really does with each kind of Plan item."""
    if plan.empty:
        return ["minict: no GPU items"]
    return [device_line(plan),
            f"minict: {len(plan.libraries) + len(plan.libraries32)} librar(ies) bound read-only in "
            f"{plan.lib_dir}" + (f" and {plan.lib32_dir}" if plan.libraries32 else "")
            + "; LD_LIBRARY_PATH prepended by minict",
            f"minict: {len(plan.binds)} other bind(s) at their paths", SHARING]


def device_line(plan: Plan) -> str:
    """As root minict makes the nodes with mknod; without root (in a user
    namespace, which refuses mknod) it binds the host's nodes instead, and
    opening one is the kernel's check of the caller against the host's node."""
    if os.geteuid() == 0:
        how = "made in the container's own /dev"
    else:
        how = "bound from the host into the container's own /dev (no mknod without root)"
    return f"minict: {len(plan.devices)} device node(s) {how} (no other GPU node is there)"


SHARING = ("minict: the host's network, IPC namespace and /dev/shm (--network host --ipc host), "
           "memlock as the caller's (--ulimit memlock=SOFT:HARD)")
