"""NVIDIA: driver version, GPUs, device nodes, binaries, firmware, sockets, ICD files.

Sources, all plain files the driver publishes (the NVIDIA driver README,
chapter "Using the /proc File System Interface"):

- /proc/driver/nvidia/version: "NVRM version: NVIDIA UNIX x86_64 Kernel
  Module  550.54.14  <date>" (or "... Open Kernel Module for x86_64  550.54.14
  Release Build ..."); /sys/module/nvidia/version holds just the number.
- /proc/driver/nvidia/gpus/<domain:bus:dev.fn>/information: "Model:",
  "GPU UUID:", "Bus Location:", "Device Minor:" lines, one directory per GPU.
- /proc/driver/nvidia/capabilities/gpu<minor>/mig/gi<G>/ci<C>/access:
  "DeviceFileMinor: N" for /dev/nvidia-caps/nvidia-capN (MIG).
- `nvidia-smi -L`, when present: the only place that maps a MIG UUID to its
  parent GPU without linking NVML.
"""

import json
import os
import re
import stat

from ..plan import Bind, DeviceNode, Finding, Gpu
from .devices import stat_node
from .hostroot import HostRoot

VERSION_FILE = "/proc/driver/nvidia/version"
SYS_VERSION_FILE = "/sys/module/nvidia/version"
GPUS_DIR = "/proc/driver/nvidia/gpus"
CAPS_DIR = "/proc/driver/nvidia/capabilities"

# The nodes every CUDA process opens, whichever GPU it uses.
CONTROL_NODES = (
    ("/dev/nvidiactl", True, "the driver's control node; every CUDA call goes through it"),
    ("/dev/nvidia-uvm", True, "unified memory: cudaMalloc fails without it"),
    ("/dev/nvidia-uvm-tools", False, "profilers and debuggers (cuda-gdb, Nsight)"),
    ("/dev/nvidia-modeset", False, "display and Vulkan/EGL mode setting"),
)

BINARY_DIRS = ("/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin", "/usr/local/nvidia/bin")
FIRMWARE_DIRS = ("/lib/firmware/nvidia", "/usr/lib/firmware/nvidia")
SOCKETS = (
    ("/run/nvidia-persistenced/socket", "nvidia-persistenced: keeps GPUs initialised between jobs"),
    ("/var/run/nvidia-persistenced/socket", "nvidia-persistenced (older path)"),
    ("/run/nvidia-fabricmanager/socket", "NVSwitch fabric manager"),
    ("/var/run/nvidia-fabricmanager/socket", "NVSwitch fabric manager (older path)"),
)
MPS_PIPE_DEFAULT = "/tmp/nvidia-mps"
ICD_FILES = (
    "/usr/share/vulkan/icd.d/nvidia_icd.json",
    "/etc/vulkan/icd.d/nvidia_icd.json",
    "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
    "/etc/vulkan/implicit_layer.d/nvidia_layers.json",
    "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
    "/etc/glvnd/egl_vendor.d/10_nvidia.json",
    "/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json",
    "/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json",
    "/etc/OpenCL/vendors/nvidia.icd",
)

_VERSION_RE = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+(?:\.\d+)+)")
_PCI_RE = re.compile(r"^[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


def parse_version_text(text: str) -> str | None:
    """The driver version from /proc/driver/nvidia/version's NVRM line."""
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            match = _VERSION_RE.search(line)
            if match:
                return match.group(1)
    return None


def driver_version(root: HostRoot) -> tuple[str | None, Finding]:
    text = root.read_text(VERSION_FILE)
    if text is not None:
        version = parse_version_text(text)
        if version:
            return version, Finding("driver", "nvidia", VERSION_FILE, "found", f"driver {version} loaded")
        return None, Finding("driver", "nvidia", VERSION_FILE, "skipped",
                             "no NVRM version line in it (driver not fully loaded?)")
    text = root.read_text(SYS_VERSION_FILE)
    if text and text.strip():
        version = text.strip()
        return version, Finding("driver", "nvidia", SYS_VERSION_FILE, "found", f"driver {version} loaded")
    return None, Finding("driver", "nvidia", VERSION_FILE, "skipped",
                         "no NVIDIA kernel driver loaded (neither /proc/driver/nvidia/version "
                         "nor /sys/module/nvidia/version exists)")


def parse_information(text: str) -> dict[str, str]:
    """The "Key: value" lines of a gpus/<bus>/information file."""
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip()
    return fields


def gpus(root: HostRoot) -> tuple[list[Gpu], list[Finding]]:
    """The host's GPUs in PCI bus order (the order nvidia-smi and CUDA_DEVICE_ORDER=PCI_BUS_ID use)."""
    findings: list[Finding] = []
    found: list[tuple[str, int, dict]] = []
    for bus in root.listdir(GPUS_DIR):
        path = f"{GPUS_DIR}/{bus}/information"
        text = root.read_text(path)
        if text is None:
            continue
        info = parse_information(text)
        try:
            minor = int(info["Device Minor"])
        except (KeyError, ValueError):
            findings.append(Finding("gpu", bus, path, "skipped", "no 'Device Minor:' line"))
            continue
        found.append((info.get("Bus Location", bus).lower(), minor, info))
    if found:
        found.sort(key=lambda item: item[0])
        result = []
        for index, (bus, minor, info) in enumerate(found):
            uuid = info.get("GPU UUID")
            if uuid in (None, "", "N/A") or not uuid.startswith("GPU-"):
                uuid = None
            result.append(Gpu(index=index, minor=minor, uuid=uuid, pci_bus_id=bus,
                              model=info.get("Model")))
            findings.append(Finding("gpu", f"GPU {index}", f"{GPUS_DIR}/{bus}/information", "found",
                                    f"{info.get('Model', 'unknown model')}, /dev/nvidia{minor}, "
                                    f"{uuid or 'UUID not published'}"))
        return result, findings
    # No procfs (inside a container, or an old driver): fall back to the nodes.
    minors = sorted(int(name[6:]) for name in root.listdir("/dev")
                    if re.fullmatch(r"nvidia\d+", name))
    for index, minor in enumerate(minors):
        findings.append(Finding("gpu", f"GPU {index}", f"/dev/nvidia{minor}", "found",
                                "from the device node only: no /proc/driver/nvidia/gpus, so no UUID"))
    return [Gpu(index=i, minor=m) for i, m in enumerate(minors)], findings


def parse_smi_list(text: str) -> dict[str, str]:
    """MIG UUID -> parent GPU UUID, from `nvidia-smi -L` output.

    GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5c89852c-...)
      MIG 1g.5gb      Device  0: (UUID: MIG-3f1b...)
    """
    parents: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        match = re.search(r"\(UUID: ((?:GPU|MIG)-[^)\s]+)\)", line)
        if not match:
            continue
        uuid = match.group(1)
        if line.lstrip().startswith("GPU ") and uuid.startswith("GPU-"):
            current = uuid
        elif uuid.startswith("MIG-") and current:
            parents[uuid] = current
    return parents


def mig_parents(root: HostRoot, smi: str | None) -> dict[str, str]:
    """MIG UUID -> parent GPU UUID by running nvidia-smi -L (empty when it cannot run)."""
    if smi is None:
        return {}
    import subprocess  # only for MIG UUIDs
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return parse_smi_list(out.stdout) if out.returncode == 0 else {}


def control_nodes(root: HostRoot) -> tuple[list[DeviceNode], list[Finding], list[str]]:
    nodes, findings, pitfalls = [], [], []
    for path, required, why in CONTROL_NODES:
        node = stat_node(root, path)
        if node:
            nodes.append(node)
            findings.append(Finding("device", path, path, "found",
                                    f"{why} (char {node.major}:{node.minor})"))
            continue
        findings.append(Finding("device", path, None, "skipped",
                                "missing: " + ("required! " if required else "optional; ") + why))
        if path == "/dev/nvidia-uvm":
            pitfalls.append("/dev/nvidia-uvm is missing: the nvidia_uvm module is not loaded, and "
                            "CUDA programs will fail with 'no CUDA-capable device is detected'. "
                            "An administrator runs `nvidia-modprobe -u -c=0` (or `modprobe nvidia-uvm`).")
        elif path == "/dev/nvidiactl":
            pitfalls.append("/dev/nvidiactl is missing: the driver is loaded but its nodes were never "
                            "created; an administrator runs `nvidia-modprobe` once.")
    return nodes, findings, pitfalls


def gpu_node(root: HostRoot, gpu: Gpu) -> tuple[DeviceNode | None, Finding]:
    path = f"/dev/nvidia{gpu.minor}"
    node = stat_node(root, path)
    if node is None:
        return None, Finding("device", path, None, "skipped", f"missing: GPU {gpu.index} cannot be used")
    return node, Finding("device", path, path, "found",
                         f"GPU {gpu.index} ({gpu.pci_bus_id or 'bus unknown'}), char {node.major}:{node.minor}")


def mig_nodes(root: HostRoot, gpu: Gpu) -> tuple[list[DeviceNode], list[Finding]]:
    """/dev/nvidia-caps nodes for one GPU's MIG instances, plus the global config/monitor caps.

    Without NVML a MIG UUID cannot be mapped to its GPU/compute instance ids,
    so all of the parent GPU's instance capabilities are given; CUDA_VISIBLE_DEVICES
    (set to the MIG UUIDs) then picks the instance.
    """
    nodes, findings = [], []
    minors: list[tuple[int, str]] = []
    for cap in ("mig/config", "mig/monitor"):
        minors += _cap_minor(root, f"{CAPS_DIR}/{cap}")
    gi_dir = f"{CAPS_DIR}/gpu{gpu.minor}/mig"
    for gi in root.listdir(gi_dir):
        if not gi.startswith("gi"):
            continue
        minors += _cap_minor(root, f"{gi_dir}/{gi}/access")
        for ci in root.listdir(f"{gi_dir}/{gi}"):
            if ci.startswith("ci"):
                minors += _cap_minor(root, f"{gi_dir}/{gi}/{ci}/access")
    for minor, source in minors:
        path = f"/dev/nvidia-caps/nvidia-cap{minor}"
        node = stat_node(root, path)
        if node:
            nodes.append(node)
            findings.append(Finding("device", path, path, "found", f"MIG capability ({source})"))
        else:
            findings.append(Finding("device", path, None, "skipped",
                                    f"listed by {source} but the node is missing "
                                    "(nvidia-modprobe -f /proc/driver/nvidia/capabilities/... creates it)"))
    return nodes, findings


def _cap_minor(root: HostRoot, path: str) -> list[tuple[int, str]]:
    text = root.read_text(path)
    if text is None:
        return []
    info = parse_information(text)
    try:
        return [(int(info["DeviceFileMinor"]), path)]
    except (KeyError, ValueError):
        return []


def render_nodes(root: HostRoot, gpu: Gpu) -> tuple[list[DeviceNode], list[Finding]]:
    """/dev/dri/cardN and renderDN of one GPU, found through its PCI device in sysfs."""
    nodes, findings = [], []
    if not gpu.pci_bus_id:
        return nodes, findings
    drm = f"/sys/bus/pci/devices/{gpu.pci_bus_id}/drm"
    for name in root.listdir(drm):
        if name.startswith(("card", "renderD")):
            node = stat_node(root, f"/dev/dri/{name}")
            if node:
                nodes.append(node)
                findings.append(Finding("device", f"/dev/dri/{name}", f"/dev/dri/{name}", "found",
                                        f"DRM node of GPU {gpu.index} (Vulkan/EGL/video)"))
    return nodes, findings


def binaries(root: HostRoot, names: tuple[str, ...]) -> tuple[list[Bind], list[Finding]]:
    binds, findings = [], []
    for name in names:
        for directory in BINARY_DIRS:
            path = f"{directory}/{name}"
            real = root.resolve(path)
            if real and os.path.isfile(root.join(real)) and os.access(root.join(real), os.X_OK):
                binds.append(Bind(src=root.join(real), dst=f"/usr/bin/{name}", ro=True, kind="binary"))
                findings.append(Finding("binary", name, path, "found", "bound at /usr/bin/" + name))
                break
        else:
            findings.append(Finding("binary", name, None, "skipped", "not installed (optional)"))
    return binds, findings


def find_smi(root: HostRoot) -> str | None:
    for directory in BINARY_DIRS:
        real = root.resolve(f"{directory}/nvidia-smi")
        if real and os.access(root.join(real), os.X_OK):
            return root.join(real)
    return None


def firmware(root: HostRoot, version: str | None) -> tuple[list[Bind], list[Finding]]:
    """GSP firmware (/lib/firmware/nvidia/<version>/gsp*.bin), as nvidia-ctk mounts it."""
    binds, findings = [], []
    if not version:
        return binds, findings
    for base in FIRMWARE_DIRS:
        directory = f"{base}/{version}"
        files = [f for f in root.listdir(directory) if f.startswith("gsp") and f.endswith(".bin")]
        for fname in files:
            path = f"{directory}/{fname}"
            binds.append(Bind(src=root.join(path), dst=path, ro=True, kind="firmware"))
            findings.append(Finding("firmware", fname, path, "found", "GSP firmware of this driver version"))
        if files:
            return binds, findings
    findings.append(Finding("firmware", f"gsp*.bin for {version}", None, "skipped",
                            "no GSP firmware (pre-Turing GPU or GSP disabled; optional)"))
    return binds, findings


def sockets(root: HostRoot, env: dict[str, str]) -> tuple[list[Bind], list[Finding]]:
    """IPC endpoints: persistenced and fabric manager sockets, the MPS pipe directory."""
    binds, findings, seen = [], [], set()
    for path, why in SOCKETS:
        real = root.resolve(path)
        if real is None or real in seen:
            continue
        try:
            is_socket = stat.S_ISSOCK(os.stat(root.join(real)).st_mode)
        except OSError:
            is_socket = False
        if is_socket:
            seen.add(real)
            binds.append(Bind(src=root.join(real), dst=path, ro=False, kind="socket"))
            findings.append(Finding("socket", os.path.basename(os.path.dirname(path)), path, "found", why))
    if not binds:
        findings.append(Finding("socket", "nvidia-persistenced", None, "skipped",
                                "no persistenced/fabricmanager socket (optional)"))
    pipe_dir = env.get("CUDA_MPS_PIPE_DIRECTORY", MPS_PIPE_DEFAULT)
    if os.path.isdir(root.join(pipe_dir)) and os.path.exists(root.join(pipe_dir + "/control")):
        binds.append(Bind(src=root.join(pipe_dir), dst=pipe_dir, ro=False, kind="ipc"))
        findings.append(Finding("ipc", "MPS pipe directory", pipe_dir, "found",
                                "an MPS control daemon is running; clients talk to it here"))
    else:
        findings.append(Finding("ipc", "MPS pipe directory", None, "skipped",
                                f"no MPS daemon ({pipe_dir}/control absent; optional)"))
    return binds, findings


def icd_files(root: HostRoot) -> tuple[list[Bind], list[Finding]]:
    """Vulkan/EGL/GLVND/OpenCL vendor files that point the loaders at NVIDIA's libraries."""
    binds, findings = [], []
    for path in ICD_FILES:
        real = root.resolve(path)
        if real is None or not os.path.isfile(root.join(real)):
            continue
        if path.endswith(".json"):
            try:
                with open(root.join(real), encoding="utf-8") as f:
                    json.load(f)
            except (OSError, ValueError) as exc:
                findings.append(Finding("icd", os.path.basename(path), path, "skipped",
                                        f"not valid JSON ({exc}); the loader would reject it too"))
                continue
        binds.append(Bind(src=root.join(real), dst=path, ro=True, kind="icd"))
        findings.append(Finding("icd", os.path.basename(path), path, "found",
                                "tells the Vulkan/EGL/OpenCL loader where NVIDIA's library is"))
    if not binds:
        findings.append(Finding("icd", "Vulkan/EGL/OpenCL vendor files", None, "skipped",
                                "none installed (compute-only driver; optional)"))
    return binds, findings
