"""Build the Plan: selection + discovery (or a CDI spec) -> hpcshim.plan.Plan.

`build_plan(GpuRequest(...))` is the one function the CLI calls for exec,
doctor and cdi generate. The GPU modes:

- none (no --gpu flag): no discovery at all, an empty Plan.
- auto (--gpu=auto): use whichever vendor is present; none present is fine.
- any (--gpu): like auto, but no GPU is an error (NoGpu).
- nvidia (--gpu=nvidia, --nv) / rocm (--gpu=rocm): that vendor or an error.
"""

from . import elf
from .discovery import nvidia, rocm
from .discovery.devices import devices_cgroup_rules, may_open, stat_node
from .discovery.hostroot import HostRoot
from .discovery.inventory import driver_files
from .errors import NoGpu
from .plan import Finding, Plan
from .selection import (bind_local_rank, container_visible_devices, describe_constraint, read_request, select,
                        slurm_cross_check)

MODES = ("none", "auto", "any", "nvidia", "rocm")


class GpuRequest:
    """What the GPU flags of exec/doctor/cdi ask for (see MODES above)."""

    def __init__(self, mode: str = "none", root: str = "/", env: dict[str, str] | None = None,
                 compat32: bool = False, cdi_devices: list[str] | None = None, use_cdi: bool = True,
                 gpu_bind: str = "none"):
        self.mode = mode
        self.gpu_bind = gpu_bind                      # none | local-rank (selection.bind_local_rank)
        self.root = root
        self.env = dict(env or {})
        self.compat32 = compat32
        self.cdi_devices = list(cdi_devices or [])    # --device vendor.com/class=name
        self.use_cdi = use_cdi


def detect_vendor(root: HostRoot) -> str | None:
    if root.exists(nvidia.VERSION_FILE) or root.exists(nvidia.SYS_VERSION_FILE) or root.exists("/dev/nvidiactl"):
        return "nvidia"
    if rocm.present(root):
        return "rocm"
    return None


def build_plan(request: GpuRequest) -> Plan:
    root = HostRoot(request.root)
    if request.mode == "none" and not request.cdi_devices:
        return Plan()
    if request.cdi_devices or (request.use_cdi and request.mode in ("any", "nvidia", "auto")
                               and any(root.listdir(d) for d in ("/etc/cdi", "/var/run/cdi"))):
        from . import cdi  # only when a spec could apply: it is not on the common path
        plan = cdi.plan_from_installed_specs(root, request)
        if plan is not None:
            return plan
    vendor = detect_vendor(root)
    wanted = request.mode
    if wanted in ("nvidia", "rocm") and vendor != wanted:
        raise NoGpu(f"--gpu={wanted} asked for a GPU but this host has no {_vendor_name(wanted)} driver"
                    + (f" (it has {_vendor_name(vendor)})" if vendor else ""),
                    hint="run on a GPU node, or use --gpu=auto to run without one")
    if vendor is None:
        if wanted == "auto":
            return Plan(findings=[Finding("driver", "GPU", None, "skipped",
                                          "no NVIDIA or AMD GPU driver on this host; --gpu=auto runs without")])
        if wanted == "any":
            raise NoGpu("--gpu asked for a GPU but this host has no NVIDIA or AMD GPU driver",
                        hint="run on a GPU node (`hpcshim doctor` shows what is missing), "
                             "or use --gpu=auto to run without one")
        return Plan()
    if vendor == "nvidia":
        return _nvidia_plan(root, request)
    return _rocm_plan(root, request)


def _vendor_name(vendor: str | None) -> str:
    return {"nvidia": "NVIDIA", "rocm": "AMD ROCm"}.get(vendor or "", "GPU")


def _nvidia_plan(root: HostRoot, request: GpuRequest) -> Plan:
    env = request.env
    plan = Plan(vendor="nvidia")
    version, finding = nvidia.driver_version(root)
    plan.driver_version = version
    plan.findings.append(finding)

    all_gpus, findings = nvidia.gpus(root)
    plan.findings += findings
    control, findings, pitfalls = nvidia.control_nodes(root)
    plan.findings += findings
    plan.pitfalls += pitfalls

    # Which GPU nodes this process may open (the Slurm constraint question).
    rules = devices_cgroup_rules(root)
    visible = []
    for gpu in all_gpus:
        node = stat_node(root, f"/dev/nvidia{gpu.minor}")
        if node is None:
            continue
        ok, how = may_open(root, node, rules[0] if rules else None, env)
        if ok:
            visible.append(gpu)
        else:
            plan.findings.append(Finding("device", node.path, node.path, "skipped",
                                         f"not this job's GPU: {how}"))
    if all_gpus:
        plan.findings.append(Finding("selection", "device constraint", rules[1] if rules else None,
                                     "found", describe_constraint(all_gpus, visible)))

    gpu_request = read_request(env)
    parents = {}
    if any(t.startswith("MIG-") and not t.startswith("MIG-GPU-") for t in gpu_request.tokens):
        parents = nvidia.mig_parents(root, nvidia.find_smi(root))
    selection = select(gpu_request, all_gpus, visible, parents)
    if request.gpu_bind == "local-rank":
        bind_local_rank(selection, env)
    plan.findings += selection.findings
    warning = slurm_cross_check(env, selection, all_gpus, visible)
    if warning:
        plan.pitfalls.append(warning)
    if not selection.inject:
        return Plan(findings=plan.findings)
    if not all_gpus and request.mode in ("any", "nvidia"):
        raise NoGpu("the NVIDIA driver is loaded but reports no GPU "
                    "(no /proc/driver/nvidia/gpus/* and no /dev/nvidiaN)",
                    hint="`nvidia-smi` on the host shows why; use --gpu=auto to run without")

    plan.gpus = list(selection.gpus) + [p for _u, p in selection.migs if p not in selection.gpus]
    plan.devices = list(control)
    for gpu in selection.nodes_needed:
        node, finding = nvidia.gpu_node(root, gpu)
        plan.findings.append(finding)
        if node:
            plan.devices.append(node)
        else:
            plan.pitfalls.append(f"/dev/nvidia{gpu.minor} (GPU {gpu.index}) is selected but missing: "
                                 "the container will not be able to use it")
        nodes, findings = nvidia.render_nodes(root, gpu)
        plan.devices += nodes
        plan.findings += findings
    for _uuid, parent in selection.migs:
        nodes, findings = nvidia.mig_nodes(root, parent)
        plan.devices += [n for n in nodes if n not in plan.devices]
        plan.findings += findings

    files = driver_files(root, "nvidia", version, env, elf.host_ident())
    _add_files(plan, files, request.compat32)
    if not any(lib.name.startswith("libcuda.so") for lib in plan.libraries):
        plan.pitfalls.append("libcuda.so.1 was not found on the host: CUDA programs in the container "
                             "will fail to start. Is the driver's user-space part installed?")
    binds, findings = nvidia.sockets(root, env)
    plan.binds += binds
    plan.findings += findings

    isolated_seen = selection.nodes_needed
    plan.env["CUDA_VISIBLE_DEVICES"] = container_visible_devices(selection, isolated_seen)
    plan.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    plan.env_if_host_dev["CUDA_VISIBLE_DEVICES"] = container_visible_devices(selection, visible)
    return plan


def _add_files(plan: Plan, files, compat32: bool) -> None:
    plan.libraries = list(files.libraries)
    plan.binds += files.binaries + files.firmware + files.icds
    plan.findings += files.findings
    plan.ld_library_path = [plan.lib_dir]
    if compat32 and files.libraries32:
        plan.libraries32 = list(files.libraries32)
        plan.ld_library_path.append(plan.lib32_dir)
    elif files.libraries32:
        plan.findings.append(Finding("library32", f"{len(files.libraries32)} 32-bit libraries", None,
                                     "skipped", "32-bit copies are left out unless --compat32 is given"))


def _rocm_plan(root: HostRoot, request: GpuRequest) -> Plan:
    plan = Plan(vendor="rocm")
    kfd, finding = rocm.kfd_node(root)
    plan.findings.append(finding)
    if kfd:
        plan.devices.append(kfd)
    gpus, nodes, findings = rocm.gpus(root)
    plan.gpus, plan.findings = gpus, plan.findings + findings
    plan.devices += nodes
    files = driver_files(root, "rocm", None, request.env, elf.host_ident())
    _add_files(plan, files, request.compat32)
    return plan
