"""AMD ROCm: /dev/kfd, the DRM render nodes, the ROCm library list.

ROCm has no single driver version to scan for, so its libraries come from
the ld.so.cache and the name list (liblists.ROCM_LIBRARIES, extendable like
Apptainer's rocmliblist.conf). GPUs are the render nodes of PCI devices
bound to the amdgpu driver, in PCI order.
"""

import os

from ..plan import DeviceNode, Finding, Gpu
from .devices import stat_node
from .hostroot import HostRoot

KFD = "/dev/kfd"


def present(root: HostRoot) -> bool:
    return root.exists(KFD)


def gpus(root: HostRoot) -> tuple[list[Gpu], list[DeviceNode], list[Finding]]:
    """(GPUs, their render nodes, findings) for PCI devices whose driver is amdgpu."""
    candidates = []
    for bus in root.listdir("/sys/bus/pci/devices"):
        driver = root.resolve(f"/sys/bus/pci/devices/{bus}/driver")
        if driver is None or os.path.basename(driver) != "amdgpu":
            continue
        for name in root.listdir(f"/sys/bus/pci/devices/{bus}/drm"):
            if name.startswith("renderD"):
                node = stat_node(root, f"/dev/dri/{name}")
                if node:
                    candidates.append((bus, node))
    found, nodes, findings = [], [], []
    for index, (bus, node) in enumerate(sorted(candidates, key=lambda item: item[0])):
        found.append(Gpu(index=index, minor=node.minor, pci_bus_id=bus))
        nodes.append(node)
        findings.append(Finding("gpu", f"GPU {index}", node.path, "found", f"amdgpu at {bus}"))
    return found, nodes, findings


def kfd_node(root: HostRoot) -> tuple[DeviceNode | None, Finding]:
    node = stat_node(root, KFD)
    if node is None:
        return None, Finding("device", KFD, None, "skipped", "missing: the amdgpu/kfd driver is not loaded")
    return node, Finding("device", KFD, KFD, "found", "ROCm compute interface (every HIP process opens it)")
