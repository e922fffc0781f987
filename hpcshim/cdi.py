"""CDI (Container Device Interface): write a spec from a Plan, read one into a Plan.

Spec: the CNCF "Container Device Interface" specification (SPEC.md), version
0.5.0 of the JSON format: a document with `cdiVersion`, `kind`
("vendor/class", e.g. nvidia.com/gpu), `devices` (each a `name` and its
`containerEdits`) and common `containerEdits` applied whenever any device
of the spec is used. containerEdits hold `env` ("K=V" strings),
`deviceNodes` ({path, hostPath, type, major, minor, fileMode, permissions}),
`mounts` ({hostPath, containerPath, options}) and `hooks`. 0.5.0 is the
first version with `hostPath` on device nodes, which a spec made from a
--host-root tree needs.

Where runtimes look: /etc/cdi and /var/run/cdi (*.json here; *.yaml too when
PyYAML happens to be installed - hpcshim does not depend on it).

Generated specs put the driver libraries at the Plan's libDir and set
LD_LIBRARY_PATH to it: CDI hooks such as nvidia-ctk's `update-ldcache` need
a helper binary in the container's mount namespace, which hpcshim does not
ship. Specs from other tools are read the other way round: their hooks are
listed as skipped in the findings, and the directories of the libraries
they mount are put on LD_LIBRARY_PATH so the loader still finds them.
"""

import json
import os
import re

from baselib.files import atomic_write

from .build import GpuRequest, build_plan
from .discovery import nvidia
from .discovery.devices import stat_node
from .discovery.hostroot import HostRoot
from .errors import BadCdiSpec, CdiDeviceNotFound, OutputError
from .plan import Bind, DeviceNode, Finding, Plan
from .selection import VARIABLES, read_request

CDI_VERSION = "0.5.0"
SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
VENDOR_KIND = {"nvidia": "nvidia.com/gpu", "rocm": "amd.com/gpu"}

_VENDOR_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
_CLASS_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")
_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.:-]*[A-Za-z0-9])?$")
_KNOWN_VERSIONS = ("0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0")


# ---- writing ---------------------------------------------------------------

def _node_json(node: DeviceNode) -> dict:
    return {"path": node.path, "hostPath": node.host_path, "type": node.type,
            "major": node.major, "minor": node.minor, "fileMode": node.mode,
            "permissions": "rw"}


def _mount_json(src: str, dst: str, ro: bool) -> dict:
    return {"hostPath": src, "containerPath": dst,
            "options": (["ro"] if ro else []) + ["nosuid", "nodev", "bind"]}


def generate(plan: Plan, root: HostRoot) -> dict:
    """A CDI spec with one device per GPU (named by index) and `all`."""
    if plan.empty:
        raise BadCdiSpec("no GPU to describe: this host has no GPU driver",
                         hint="run `hpcshim cdi generate` on a GPU node")
    gpu_paths = {f"/dev/nvidia{g.minor}" for g in plan.gpus} if plan.vendor == "nvidia" else set()
    common_nodes = [d for d in plan.devices if d.path not in gpu_paths and not d.path.startswith("/dev/dri/")]
    devices = []
    all_nodes = []
    for gpu in plan.gpus:
        nodes = [d for d in plan.devices if d.path == f"/dev/nvidia{gpu.minor}"]
        if plan.vendor == "nvidia":
            render, _findings = nvidia.render_nodes(root, gpu)
            nodes += render
        else:
            nodes += [d for d in plan.devices if d.path.startswith("/dev/dri/") and d.minor == gpu.minor]
        all_nodes += nodes
        devices.append({"name": str(gpu.index),
                        "containerEdits": {"deviceNodes": [_node_json(n) for n in nodes]}})
    devices.append({"name": "all", "containerEdits": {"deviceNodes": [_node_json(n) for n in all_nodes]}})
    mounts = [_mount_json(lib.src, f"{plan.lib_dir}/{lib.name}", True) for lib in plan.libraries]
    mounts += [_mount_json(lib.src, f"{plan.lib32_dir}/{lib.name}", True) for lib in plan.libraries32]
    mounts += [_mount_json(b.src, b.dst, b.ro) for b in plan.binds]
    env = [f"{k}={v}" for k, v in plan.env.items() if k != "CUDA_VISIBLE_DEVICES"]
    if plan.ld_library_path:
        env.append("LD_LIBRARY_PATH=" + ":".join(plan.ld_library_path))
    spec = {"cdiVersion": CDI_VERSION, "kind": VENDOR_KIND[plan.vendor], "devices": devices,
            "containerEdits": {"env": env, "deviceNodes": [_node_json(n) for n in common_nodes],
                               "mounts": mounts}}
    validate(spec, "generated spec")
    return spec


# ---- validating and reading --------------------------------------------------

def validate(spec, source: str) -> None:
    """Check the rules of the CDI spec that a runtime would reject a file for."""
    def bad(what):
        raise BadCdiSpec(f"{source}: {what}", hint="fix or remove the spec file (see the CDI SPEC.md)")
    if not isinstance(spec, dict):
        bad("not a JSON object")
    if spec.get("cdiVersion") not in _KNOWN_VERSIONS:
        bad(f"unknown cdiVersion {spec.get('cdiVersion')!r}")
    kind = spec.get("kind", "")
    vendor, _, klass = kind.partition("/")
    if not (_VENDOR_RE.match(vendor) and _CLASS_RE.match(klass)):
        bad(f"kind {kind!r} is not vendor.com/class")
    devices = spec.get("devices")
    if not isinstance(devices, list) or not devices:
        bad("no devices")
    names = set()
    for device in devices:
        name = device.get("name", "") if isinstance(device, dict) else ""
        if not _NAME_RE.match(name):
            bad(f"device name {name!r} is not valid")
        if name in names:
            bad(f"device {name!r} appears twice")
        names.add(name)
        if not isinstance(device.get("containerEdits"), dict):
            bad(f"device {name!r} has no containerEdits")
        _validate_edits(device["containerEdits"], f"device {name!r}", bad)
    _validate_edits(spec.get("containerEdits") or {}, "containerEdits", bad)


def _validate_edits(edits: dict, where: str, bad) -> None:
    for entry in edits.get("env") or []:
        if not isinstance(entry, str) or "=" not in entry:
            bad(f"{where}: env entry {entry!r} is not KEY=VALUE")
    for node in edits.get("deviceNodes") or []:
        if not isinstance(node, dict) or not str(node.get("path", "")).startswith("/"):
            bad(f"{where}: a device node without an absolute path")
        if node.get("type", "c") not in ("c", "b", "u", "p"):
            bad(f"{where}: device node {node['path']} has type {node.get('type')!r}")
    for mount in edits.get("mounts") or []:
        if not isinstance(mount, dict) or not mount.get("hostPath") or \
                not str(mount.get("containerPath", "")).startswith("/"):
            bad(f"{where}: a mount without hostPath or an absolute containerPath")


def installed_specs(root: HostRoot) -> tuple[list[tuple[str, dict]], list[Finding]]:
    """(path, spec) for every spec file in /etc/cdi and /var/run/cdi, and what was skipped."""
    specs, findings = [], []
    for directory in SPEC_DIRS:
        for name in root.listdir(directory):
            path = f"{directory}/{name}"
            text = root.read_text(path)
            if text is None:
                continue
            if name.endswith(".json"):
                try:
                    spec = json.loads(text)
                except ValueError as exc:
                    raise BadCdiSpec(f"{path} is not valid JSON: {exc}",
                                     hint="fix or remove it; container runtimes reject it too") from exc
            elif name.endswith((".yaml", ".yml")):
                try:
                    import yaml  # optional: only if the site installed PyYAML
                except ImportError:
                    findings.append(Finding("cdi", name, path, "skipped",
                                            "YAML spec and PyYAML is not installed; "
                                            "`nvidia-ctk cdi generate --format=json` writes JSON"))
                    continue
                spec = yaml.safe_load(text)
            else:
                continue
            validate(spec, path)
            specs.append((path, spec))
    return specs, findings


def requested_names(request_env: dict[str, str]) -> list[str]:
    """Device names from the GPU variables: indices and UUIDs name CDI devices, all -> `all`."""
    req = read_request(request_env)
    if req.mode in ("all",):
        return ["all"]
    if req.mode in ("none", "void"):
        return []
    return list(req.tokens)


def plan_from_installed_specs(root: HostRoot, request) -> Plan | None:
    """A Plan from /etc/cdi or /var/run/cdi, or None when no spec applies.

    `--device vendor.com/class=NAME` picks devices by name (several allowed);
    without it the GPU variables (NVIDIA_VISIBLE_DEVICES, CUDA_VISIBLE_DEVICES,
    Slurm's) name them: indices and UUIDs are device names in nvidia-ctk's specs.
    """
    specs, findings = installed_specs(root)
    if request.cdi_devices:
        wanted = []
        for qualified in request.cdi_devices:
            kind, sep, name = qualified.partition("=")
            if not sep or "/" not in kind or not name:
                raise CdiDeviceNotFound(f"--device {qualified!r} is not vendor.com/class=name",
                                        hint="for example --device nvidia.com/gpu=0")
            wanted.append((kind, name))
    else:
        kind = VENDOR_KIND["nvidia"] if request.mode in ("any", "nvidia", "auto") else None
        if kind is None or not any(s.get("kind") == kind for _p, s in specs):
            return None
        if "NVIDIA_VISIBLE_DEVICES" in request.env and request.env["NVIDIA_VISIBLE_DEVICES"].strip() in ("", "void"):
            return Plan(findings=findings + [Finding("selection", "GPUs", None, "skipped",
                                                     "NVIDIA_VISIBLE_DEVICES is void: no GPU injection")])
        wanted = [(kind, n) for n in requested_names(request.env)]
    plan = Plan(vendor=None, findings=findings)
    used_specs = set()
    for kind, name in wanted:
        match = None
        for path, spec in specs:
            if spec.get("kind") != kind:
                continue
            match = next(((path, spec, d) for d in spec["devices"] if d["name"] == name), None)
            if match:
                break
        if match is None:
            known = sorted(f"{s['kind']}={d['name']}" for _p, s in specs for d in s["devices"])
            raise CdiDeviceNotFound(f"no CDI spec in {' or '.join(SPEC_DIRS)} defines {kind}={name}",
                                    hint="known devices: " + (", ".join(known) or "none; run `hpcshim cdi generate`"))
        path, spec, device = match
        if path not in used_specs:
            used_specs.add(path)
            _apply_edits(plan, root, spec.get("containerEdits") or {}, path)
        _apply_edits(plan, root, device["containerEdits"], f"{path} ({name})")
        plan.findings.append(Finding("cdi", f"{kind}={name}", path, "found", "device from a CDI spec"))
        plan.vendor = {v: k for k, v in VENDOR_KIND.items()}.get(kind, kind)
    if plan.vendor is None and specs and not request.cdi_devices:
        # `none`: the spec's common edits only (driver files, no GPU)
        path, spec = next((p, s) for p, s in specs if s.get("kind") == VENDOR_KIND["nvidia"])
        _apply_edits(plan, root, spec.get("containerEdits") or {}, path)
        plan.vendor = "nvidia"
    if plan.vendor:
        plan.env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    return plan


def _apply_edits(plan: Plan, root: HostRoot, edits: dict, source: str) -> None:
    for entry in edits.get("env") or []:
        key, _, value = entry.partition("=")
        if key == "LD_LIBRARY_PATH":
            for directory in value.split(":"):
                if directory and directory not in plan.ld_library_path:
                    plan.ld_library_path.append(directory)
        else:
            plan.env[key] = value
    for node in edits.get("deviceNodes") or []:
        host = node.get("hostPath") or node["path"]
        real = host if host.startswith(root.root.rstrip("/") + "/") else root.join(host)
        found = stat_node(HostRoot("/"), real, container_path=node["path"])
        major = node.get("major", found.major if found else None)
        minor = node.get("minor", found.minor if found else None)
        if major is None or minor is None:
            plan.findings.append(Finding("device", node["path"], host, "skipped",
                                         f"{source}: no major/minor and the host has no such node"))
            continue
        device = DeviceNode(path=node["path"], host_path=real, major=int(major), minor=int(minor),
                            mode=int(node.get("fileMode", found.mode if found else 0o666)),
                            type=node.get("type", "c"))
        if device not in plan.devices:
            plan.devices.append(device)
    for mount in edits.get("mounts") or []:
        host = mount["hostPath"]
        real = host if host.startswith(root.root.rstrip("/") + "/") else root.join(host)
        dst = mount["containerPath"]
        bind = Bind(src=real, dst=dst, ro="ro" in (mount.get("options") or []), kind="cdi")
        if bind not in plan.binds:
            plan.binds.append(bind)
        if re.search(r"\.so(\.|$)", os.path.basename(dst)):
            directory = os.path.dirname(dst)
            if directory not in plan.ld_library_path:
                plan.ld_library_path.append(directory)
    for hook in edits.get("hooks") or []:
        plan.findings.append(Finding("cdi", hook.get("hookName", "hook"), hook.get("path"), "skipped",
                                     f"{source}: hpcshim runs no CDI hooks ({' '.join(hook.get('args', [])[:3])}); "
                                     "mounted library directories go on LD_LIBRARY_PATH instead"))


def generate_for_host(host_root: str, env: dict[str, str], output: str | None) -> tuple[str, int]:
    """`hpcshim cdi generate`: this node's spec as JSON text (written to `output`
    when given, atomically: a runtime may read it at any moment), and its GPU count.
    A spec describes every GPU of the node: the job's selection does not apply."""
    plan = build_plan(GpuRequest(mode="any", root=host_root, use_cdi=False,
                                 env={k: v for k, v in env.items() if k not in VARIABLES}))
    text = json.dumps(generate(plan, HostRoot(host_root)), indent=2) + "\n"
    if output:
        try:
            atomic_write(output, text.encode())
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror}",
                              hint="choose a directory you can write, e.g. --output ./nvidia.json") from exc
    return text, len(plan.gpus)
