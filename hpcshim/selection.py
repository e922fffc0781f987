"""Which GPUs this process owns, from the environment, and how to number them inside.

Precedence (the first variable that is set wins):

1. NVIDIA_VISIBLE_DEVICES  - the NVIDIA container runtime's variable. Indices
   are the host's (nvidia-smi) indices. Set but empty means `void`.
2. CUDA_VISIBLE_DEVICES    - CUDA's own. Indices count among the GPUs this
   process can open, in PCI bus order (see "Slurm" below). Empty: no GPU.
3. SLURM_STEP_GPUS, SLURM_JOB_GPUS - Slurm's GRES indices: positions in the
   node's gres.conf device list, which Slurm keeps in device-file order; so
   index i is the i-th /dev/nvidiaN by N (with the usual File=/dev/nvidia[0-3],
   simply N). A real slurmd given File=.../nvidia[4-7] reports 0-3.
4. GPU_DEVICE_ORDINAL      - Slurm's copy for non-CUDA runtimes (OpenCL/ROCm):
   numbered like CUDA_VISIBLE_DEVICES.
5. none of them: all GPUs.

Values: comma-separated indices, `GPU-<uuid>` (a unique prefix is enough,
as in CUDA), `MIG-<uuid>` or the older `MIG-GPU-<uuid>/<gi>/<ci>`, or one
of the words `all`, `none` (no GPU, but the driver's libraries and control
nodes are injected so nvidia-smi works), `void` (no GPU injection at all).
A negative index ends the list, as CUDA does (`CUDA_VISIBLE_DEVICES=-1`
hides every GPU); anything else unrecognised is an error, not a silent
truncation.

Slurm: with `ConstrainDevices=yes` in cgroup.conf, a job can open only its
own /dev/nvidiaN, and Slurm sets CUDA_VISIBLE_DEVICES relative to those
(job owns nvidia2,nvidia3 -> "0,1"); without it the job can open every node
and gets host numbers ("2,3"). One rule covers both: a CUDA index counts
among the GPUs this process can open (`visible`), which discovery.devices
works out from the device cgroup or an open() probe. The result says which
case was seen.

Inside the container hpcshim sets CUDA_DEVICE_ORDER=PCI_BUS_ID and
CUDA_VISIBLE_DEVICES renumbered to what the container sees: 0..n-1 when
the runtime binds only the selected nodes, the positions among all visible
GPUs when it shares the host's /dev. The order the user gave is kept.
"""

from collections import namedtuple

from .errors import BadSelection
from .plan import Finding, Gpu

VARIABLES = ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES",
             "SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "GPU_DEVICE_ORDINAL")

# How each variable's indices are counted.
NUMBERING = {
    "NVIDIA_VISIBLE_DEVICES": "host",       # nvidia-smi index: PCI order of all GPUs
    "CUDA_VISIBLE_DEVICES": "visible",      # PCI order of the GPUs this process can open
    "SLURM_STEP_GPUS": "gres",              # position among /dev/nvidiaN, ordered by N
    "SLURM_JOB_GPUS": "gres",
    "GPU_DEVICE_ORDINAL": "visible",
    "--device": "host",
    "default": "visible",                   # all GPUs this process can open
}


class Request(namedtuple("Request", ["source", "value", "mode", "tokens"], defaults=[()])):
    """What the environment asks for, before looking at the GPUs.

    source: the variable that decided, "--device" or "default"; value: its
    text; mode: all | none | void | list; tokens: the list's entries.
    """
    __slots__ = ()

    @property
    def numbering(self) -> str:
        return NUMBERING[self.source]


class Selection:
    """The GPUs a request resolved to."""

    def __init__(self, request: Request, visible: list[Gpu]):
        self.request = request
        self.gpus: list[Gpu] = []                   # whole GPUs, in the order asked
        self.migs: list[tuple[str, Gpu]] = []       # (MIG UUID, parent GPU)
        self.visible: list[Gpu] = list(visible)     # GPUs this process can open
        self.findings: list[Finding] = []

    @property
    def inject(self) -> bool:
        """False for `void`: behave as if no GPU option had been given."""
        return self.request.mode != "void"

    @property
    def nodes_needed(self) -> list[Gpu]:
        """GPUs whose /dev/nvidiaN the container needs (MIG parents included)."""
        out: list[Gpu] = []
        for gpu in self.gpus + [parent for _uuid, parent in self.migs]:
            if gpu not in out:
                out.append(gpu)
        return out


def read_request(env: dict[str, str]) -> Request:
    """The request from the first variable that is set (see the module docstring)."""
    for name in VARIABLES:
        if name not in env:
            continue
        value = env[name].strip()
        if name.startswith("SLURM_") or name == "GPU_DEVICE_ORDINAL":
            if value in ("", "(null)"):
                continue  # Slurm leaves these empty when it allocated no GPU
        if value == "":
            # NVIDIA: empty means void; CUDA: empty means "no device".
            return Request(name, value, "void" if name == "NVIDIA_VISIBLE_DEVICES" else "none")
        return parse_value(name, value)
    return Request("default", "", "all")


def parse_value(source: str, value: str) -> Request:
    word = value.strip().lower()
    if word in ("all", "none", "void"):
        return Request(source, value, word)
    tokens = tuple(t.strip() for t in value.split(","))
    for token in tokens:
        if not token:
            raise BadSelection(f"{source}={value!r} has an empty entry",
                               hint="write indices or UUIDs separated by single commas")
        if not (_is_int(token) or token.startswith(("GPU-", "MIG-"))):
            raise BadSelection(
                f"{source}={value!r}: {token!r} is not a GPU index, GPU-/MIG- UUID, all, none or void",
                hint="list GPUs as 0,1 or GPU-<uuid>; `nvidia-smi -L` prints the UUIDs")
    return Request(source, value, "list", tokens)


def _is_int(token: str) -> bool:
    try:
        int(token)
        return True
    except ValueError:
        return False


def select(request: Request, all_gpus: list[Gpu], visible: list[Gpu],
           mig_parents: dict[str, str] | None = None) -> Selection:
    """Resolve a request against the host's GPUs (PCI order) and the visible subset."""
    selection = Selection(request, visible)
    what = f"{request.source}={request.value!r}" if request.source != "default" else "no GPU variable set"
    if request.mode == "void":
        selection.findings.append(Finding("selection", "GPUs", None, "skipped",
                                          f"{what}: void, no GPU injection"))
        return selection
    if request.mode == "none":
        selection.findings.append(Finding("selection", "GPUs", None, "found",
                                          f"{what}: no GPU, driver libraries only"))
        return selection
    if request.mode == "all":
        pool = visible if request.numbering == "visible" else all_gpus
        selection.gpus = list(pool)
        selection.findings.append(Finding("selection", "GPUs", None, "found",
                                          f"{what}: all {len(pool)} GPU(s)"))
        return selection

    by_minor_order = sorted(all_gpus, key=lambda g: g.minor)
    pool = {"host": all_gpus, "visible": visible, "gres": by_minor_order}[request.numbering]
    for token in request.tokens:
        if _is_int(token):
            number = int(token)
            if number < 0:
                selection.findings.append(Finding("selection", token, None, "skipped",
                                                  "a negative index ends the list, as in CUDA"))
                break
            if number >= len(pool):
                counted = "this process can open" if request.numbering == "visible" else "this node has"
                raise BadSelection(f"{request.source}={request.value!r} asks for GPU {number} but "
                                   f"{counted} {len(pool)} GPU(s) ({_describe_minors(pool)})",
                                   hint="indices start at 0; `nvidia-smi -L` lists them"
                                   + ("; check gres.conf's File= lines" if request.numbering == "gres" else ""))
            gpu = pool[number]
            _add_gpu(selection, gpu)
        elif token.startswith("MIG-"):
            parent = _mig_parent(token, all_gpus, mig_parents or {})
            if parent is None:
                raise BadSelection(f"{request.source} names {token} but no GPU on this node has that MIG "
                                   "instance", hint="`nvidia-smi -L` lists MIG UUIDs under their GPU")
            if (token, parent) not in selection.migs:
                selection.migs.append((token, parent))
        else:
            matches = [g for g in all_gpus if g.uuid and g.uuid.lower().startswith(token.lower())]
            if len(matches) != 1:
                problem = "no GPU" if not matches else f"{len(matches)} GPUs"
                raise BadSelection(f"{request.source}: {problem} on this node match {token}",
                                   hint="use the full UUID from `nvidia-smi -L`")
            gpu = matches[0]
            if request.numbering == "visible" and gpu not in visible:
                raise BadSelection(f"{request.source} names {token}, which this process may not open",
                                   hint="that GPU belongs to another job (Slurm device constraint)")
            _add_gpu(selection, gpu)
    chosen = [f"GPU {g.index}" for g in selection.gpus] + [m for m, _p in selection.migs]
    selection.findings.append(Finding("selection", "GPUs", None, "found",
                                      f"{what} -> {', '.join(chosen) or 'no GPU'}"))
    return selection


def _add_gpu(selection: Selection, gpu: Gpu) -> None:
    if gpu not in selection.gpus:
        selection.gpus.append(gpu)


def _describe_minors(gpus: list[Gpu]) -> str:
    return ", ".join(f"/dev/nvidia{g.minor}" for g in gpus) or "none"


def slurm_cross_check(env: dict[str, str], selection: "Selection", all_gpus: list[Gpu],
                      visible: list[Gpu]) -> str | None:
    """A warning when CUDA_VISIBLE_DEVICES and Slurm's own GPU list name different GPUs.

    Slurm derives CUDA_VISIBLE_DEVICES from gres.conf's device-file order;
    CUDA reads it in PCI bus order. When the two orders differ, the job
    computes on GPUs Slurm did not give it. hpcshim follows CUDA (that is
    what the workload would do without a container) and says so.
    """
    if selection.request.source != "CUDA_VISIBLE_DEVICES":
        return None
    for name in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if env.get(name, "").strip() not in ("", "(null)"):
            try:
                slurm = select(parse_value(name, env[name]), all_gpus, visible)
            except BadSelection:
                return None
            if sorted(g.minor for g in slurm.gpus) != sorted(g.minor for g in selection.gpus):
                return (f"CUDA_VISIBLE_DEVICES={selection.request.value} means "
                        f"{_describe_minors(selection.gpus)} to CUDA (PCI order), but {name}="
                        f"{env[name]} allocated {_describe_minors(slurm.gpus)}: gres.conf lists the GPUs "
                        "in a different order than their PCI addresses. Ask the admins to order gres.conf "
                        "by PCI bus id (or use AutoDetect=nvml).")
            return None
    return None


def _mig_parent(token: str, all_gpus: list[Gpu], parents: dict[str, str]) -> Gpu | None:
    if token.startswith("MIG-GPU-"):     # MIG-GPU-<uuid>/<gi>/<ci> (drivers before R470)
        gpu_uuid = token[4:].split("/", 1)[0]
    else:
        gpu_uuid = parents.get(token)
    return next((g for g in all_gpus if g.uuid and gpu_uuid and g.uuid.lower() == gpu_uuid.lower()), None)


def describe_constraint(all_gpus: list[Gpu], visible: list[Gpu]) -> str:
    if len(visible) == len(all_gpus):
        return f"all {len(all_gpus)} GPU node(s) can be opened: no device constraint, host numbering"
    names = ", ".join(f"/dev/nvidia{g.minor}" for g in visible) or "none"
    return (f"only {len(visible)} of {len(all_gpus)} GPU node(s) can be opened ({names}): a device "
            "constraint (Slurm ConstrainDevices) applies, CUDA indices count among those")


def container_visible_devices(selection: Selection, seen: list[Gpu]) -> str:
    """CUDA_VISIBLE_DEVICES for a container that sees the GPUs `seen` (host PCI order).

    Whole GPUs become their position among `seen`, in the order asked; MIG
    instances stay UUIDs (CUDA numbers them itself).
    """
    ordered = sorted(seen, key=lambda g: g.index)
    positions = {g.minor: i for i, g in enumerate(ordered)}
    parts = [str(positions[g.minor]) for g in selection.gpus if g.minor in positions]
    parts += [uuid for uuid, _parent in selection.migs]
    return ",".join(parts)


# ---- --gpu-bind=local-rank ---------------------------------------------------

def tasks_on_this_node(env: dict[str, str]) -> int:
    """How many tasks of this step run on this node, from Slurm's compressed
    list: SLURM_STEP_TASKS_PER_NODE (else SLURM_TASKS_PER_NODE), e.g. "2(x3),1"
    means nodes 0-2 run 2 tasks and node 3 runs 1; SLURM_NODEID picks ours."""
    name = "SLURM_STEP_TASKS_PER_NODE" if env.get("SLURM_STEP_TASKS_PER_NODE") else "SLURM_TASKS_PER_NODE"
    text = env.get(name, "")
    counts: list[int] = []
    try:
        for item in text.split(","):
            number, _, repeat = item.partition("(x")
            counts += [int(number)] * (int(repeat.rstrip(")")) if repeat else 1)
        node = int(env.get("SLURM_NODEID", "0"))
        return counts[node]
    except (ValueError, IndexError):
        raise BadSelection(f"--gpu-bind=local-rank: cannot read {name}={text!r} with "
                           f"SLURM_NODEID={env.get('SLURM_NODEID', '')!r}",
                           hint="run the step with srun, which sets both") from None


def bind_local_rank(selection: Selection, env: dict[str, str]) -> None:
    """Narrow the selection to this task's share: the job's GPUs on this node are
    split into equal, consecutive shares, one per task, in the order selected;
    task SLURM_LOCALID gets share number SLURM_LOCALID (as enroot/pyxis users
    expect). GPUs that do not divide evenly are refused rather than shared
    unevenly: an uneven split is rarely what a data-parallel job wants."""
    local = env.get("SLURM_LOCALID", "")
    if not local.isdigit():
        raise BadSelection("--gpu-bind=local-rank needs SLURM_LOCALID (this task's rank on the node)",
                           hint="run it as a Slurm step: srun ... hpcshim exec --gpu-bind=local-rank ...")
    if selection.migs:
        raise BadSelection("--gpu-bind=local-rank splits whole GPUs, and this job has MIG instances",
                           hint="give each task its own MIG instance with srun --gpus-per-task")
    tasks = tasks_on_this_node(env)
    rank, gpus = int(local), selection.gpus
    if tasks < 1 or rank >= tasks:
        raise BadSelection(f"--gpu-bind=local-rank: SLURM_LOCALID={rank} but {tasks} task(s) on this node",
                           hint="check the step's --ntasks-per-node")
    if not gpus or len(gpus) % tasks:
        raise BadSelection(f"--gpu-bind=local-rank: {len(gpus)} GPU(s) do not divide among {tasks} "
                           "task(s) on this node",
                           hint=f"ask for a multiple of {tasks} GPUs (e.g. --gres=gpu:{tasks}) or change --ntasks")
    share = len(gpus) // tasks
    selection.gpus = gpus[rank * share:(rank + 1) * share]
    chosen = ", ".join(f"GPU {g.index}" for g in selection.gpus)
    selection.findings.append(Finding("selection", "gpu-bind", None, "found",
                                      f"--gpu-bind=local-rank: task {rank} of {tasks} on this node -> {chosen}"))
