"""A fake NVIDIA driver tree, built from the real formats, for hpcshim's tests.

No GPU here, so the driver's view of the host is rebuilt in a temp dir with
the same kinds of files a real node has, made by the same tools:

- device nodes made with mknod(2): char 195:N for /dev/nvidiaN, 195:255
  nvidiactl, 195:254 nvidia-modeset; nvidia-uvm and nvidia-caps get a
  "dynamic" major like the real modules (their major is allocated at load);
- /proc/driver/nvidia/version and gpus/<bus>/information in the driver's
  text format (NVIDIA README, "Using the /proc File System Interface");
- shared objects compiled by gcc with the driver's file names and sonames
  (libcuda.so.<version>, soname libcuda.so.1 ...), plus 32-bit copies
  (`gcc -m32 -nostdlib`: Debian's gcc emits i386 code and GNU ld links it
  without the multilib C library, which a stub with no libc calls does not need);
- /etc/ld.so.cache written by the real `ldconfig -r ROOT -C -f`, with the
  i386 directory listed first in ld.so.conf;
- a real unix socket for nvidia-persistenced, ICD JSON files in their
  loaders' format, GSP firmware files;
- nvidia-smi as a shell script printing `nvidia-smi -L`'s format: the one
  piece that is a stand-in, because the real one needs the real driver.

Building needs root (mknod). GPUs are listed out of minor order on purpose:
the driver does not promise that /dev/nvidia0 is the first PCI device.
"""

import os
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

DRIVER_VERSION = "550.54.14"
UVM_MAJOR = 235          # dynamic in reality; any free number works for a node
CAPS_MAJOR = 238

# (pci bus id, device minor, uuid, model): bus order != minor order for the last two.
DEFAULT_GPUS = (
    ("0000:3b:00.0", 0, "GPU-8a41a3a5-2a7b-5d6a-7d8a-0f2c1c5e9a3b", "Tesla V100-PCIE-16GB"),
    ("0000:5e:00.0", 1, "GPU-4ce175fe-a313-4c4a-d620-560e96e8ef2e", "Tesla V100-PCIE-16GB"),
    ("0000:86:00.0", 3, "GPU-e953c3c5-dba7-029e-ce44-7b51417131df", "Tesla V100-PCIE-16GB"),
    ("0000:af:00.0", 2, "GPU-1b724e78-eef5-4163-d43c-e4da15d41176", "Tesla V100-PCIE-16GB"),
)

# file stem -> soname (None: the soname is the full versioned name, as for gpucomp)
LIBRARIES64 = {
    "libcuda.so": "libcuda.so.1",
    "libnvidia-ml.so": "libnvidia-ml.so.1",
    "libnvidia-ptxjitcompiler.so": "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-nvvm.so": "libnvidia-nvvm.so.4",
    "libEGL_nvidia.so": "libEGL_nvidia.so.0",
    "libGLX_nvidia.so": "libGLX_nvidia.so.0",
    "libnvidia-gpucomp.so": None,
    # in no name list at all: only the driver-version directory scan finds it
    "libnvidia-futurething.so": "libnvidia-futurething.so.1",
}
LIBRARIES32 = {"libcuda.so": "libcuda.so.1", "libnvidia-ml.so": "libnvidia-ml.so.1"}

LIB64_DIR = "usr/lib/x86_64-linux-gnu"
LIB32_DIR = "usr/lib/i386-linux-gnu"



def version_text(version: str) -> str:
    """/proc/driver/nvidia/version for a driver version."""
    return (f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {version}  "
            "Thu Feb 22 01:44:30 UTC 2024\n"
            "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n")


VERSION_TEXT = version_text(DRIVER_VERSION)


def information_text(bus: str, minor: int, uuid: str, model: str) -> str:
    return (f"Model: \t\t {model}\n"
            "IRQ:   \t\t 91\n"
            f"GPU UUID: \t {uuid}\n"
            "Video BIOS: \t 88.00.4f.00.09\n"
            "Bus Type: \t PCIe\n"
            "DMA Size: \t 47 bits\n"
            "DMA Mask: \t 0x7fffffffffff\n"
            f"Bus Location: \t {bus}\n"
            f"Device Minor: \t {minor}\n"
            "GPU Excluded:\t No\n")


def compile_library(dest: Path, soname: str, marker: str, bits: int = 64) -> None:
    """gcc a tiny shared object with this soname; `marker` ends up in its .rodata."""
    src = dest.with_suffix(".c")
    src.write_text(f'const char hpcshim_marker[] = "{marker}";\nint hpcshim_fn(void) {{ return {bits}; }}\n')
    cmd = ["gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(dest), str(src)]
    if bits == 32:
        cmd[1:1] = ["-m32", "-nostdlib"]
    subprocess.run(cmd, check=True, capture_output=True)
    src.unlink()


@dataclass
class DriverTree:
    root: Path
    gpus: tuple = DEFAULT_GPUS
    version: str = DRIVER_VERSION
    extra: dict = field(default_factory=dict)

    def node_path(self, minor: int) -> Path:
        return self.root / f"dev/nvidia{minor}"


def _mknod(path: Path, major: int, minor: int, mode: int = 0o666) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
    os.chmod(path, mode)  # mknod applies the umask


class LibraryStore:
    """Compiled libraries, built once per test session and copied into each tree."""

    def __init__(self, workdir: Path):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        for stem, soname in LIBRARIES64.items():
            compile_library(self.dir / f"64-{stem}", soname or f"{stem}.{DRIVER_VERSION}",
                            f"{stem} 64-bit {DRIVER_VERSION}", 64)
        for stem, soname in LIBRARIES32.items():
            compile_library(self.dir / f"32-{stem}", soname, f"{stem} 32-bit {DRIVER_VERSION}", 32)
        compile_library(self.dir / "64-libunrelated.so", "libunrelated.so.1", "unrelated", 64)


def build_driver_tree(root: Path, store: LibraryStore, gpus=DEFAULT_GPUS, *, with_uvm: bool = True,
                      with_cache: bool = True, with_socket: bool = True, mig: bool = False,
                      smi: bool = True, version: str = DRIVER_VERSION) -> DriverTree:
    """version: another driver version (an older node, for the image requirement tests):
    the /proc version line, the libraries' and firmware's file names follow it (the
    compiled stubs inside stay the same)."""
    root.mkdir(parents=True, exist_ok=True)
    # device nodes
    for _bus, minor, _uuid, _model in gpus:
        _mknod(root / f"dev/nvidia{minor}", 195, minor)
    _mknod(root / "dev/nvidiactl", 195, 255)
    _mknod(root / "dev/nvidia-modeset", 195, 254)
    if with_uvm:
        _mknod(root / "dev/nvidia-uvm", UVM_MAJOR, 0)
        _mknod(root / "dev/nvidia-uvm-tools", UVM_MAJOR, 1)
    # /proc
    proc = root / "proc/driver/nvidia"
    (proc / "gpus").mkdir(parents=True)
    (proc / "version").write_text(version_text(version))
    for bus, minor, uuid, model in gpus:
        (proc / "gpus" / bus).mkdir()
        (proc / "gpus" / bus / "information").write_text(information_text(bus, minor, uuid, model))
    if mig:
        _make_mig(root, gpus[0][1])
    # libraries and the loader cache
    lib64, lib32 = root / LIB64_DIR, root / LIB32_DIR
    lib64.mkdir(parents=True)
    lib32.mkdir(parents=True)
    for stem in LIBRARIES64:
        shutil.copy2(store.dir / f"64-{stem}", lib64 / f"{stem}.{version}")
    for stem in LIBRARIES32:
        shutil.copy2(store.dir / f"32-{stem}", lib32 / f"{stem}.{version}")
    shutil.copy2(store.dir / "64-libunrelated.so", lib64 / "libunrelated.so.1.0")
    (root / "etc").mkdir(exist_ok=True)
    # i386 first: a tool that takes the first match in directory order gets the 32-bit copy.
    (root / "etc/ld.so.conf").write_text(f"/{LIB32_DIR}\n/{LIB64_DIR}\n")
    if with_cache:
        subprocess.run(["ldconfig", "-r", str(root), "-C", "/etc/ld.so.cache", "-f", "/etc/ld.so.conf"],
                       check=True, capture_output=True)
    # binaries
    if smi:
        smi_path = root / "usr/bin/nvidia-smi"
        smi_path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"GPU {i}: {model} (UUID: {uuid})"
                 for i, (_b, _m, uuid, model) in enumerate(sorted(gpus))]
        if mig:
            lines.insert(1, "  MIG 1g.5gb      Device  0: (UUID: MIG-3f1b8c1e-6a1d-5c8e-9d3a-1c2b3d4e5f60)")
        smi_path.write_text("#!/bin/sh\n# stand-in: prints `nvidia-smi -L` output in the real format\n"
                            "cat <<'EOF'\n" + "\n".join(lines) + "\nEOF\n")
        smi_path.chmod(0o755)
    # firmware, ICD files, the persistenced socket
    fw = root / f"lib/firmware/nvidia/{version}"
    fw.mkdir(parents=True)
    for name in ("gsp_ga10x.bin", "gsp_tu10x.bin"):
        (fw / name).write_bytes(b"\x7fGSP" + name.encode())
    icd = root / "usr/share/vulkan/icd.d/nvidia_icd.json"
    icd.parent.mkdir(parents=True)
    icd.write_text('{\n    "file_format_version" : "1.0.0",\n    "ICD": {\n        "library_path": '
                   '"libGLX_nvidia.so.0",\n        "api_version" : "1.3.277"\n    }\n}\n')
    egl = root / "usr/share/glvnd/egl_vendor.d/10_nvidia.json"
    egl.parent.mkdir(parents=True)
    egl.write_text('{\n    "file_format_version" : "1.0.0",\n    "ICD" : {\n        "library_path" : '
                   '"libEGL_nvidia.so.0"\n    }\n}\n')
    if with_socket:
        sock_path = root / "run/nvidia-persistenced/socket"
        sock_path.parent.mkdir(parents=True)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(str(sock_path))   # the file stays after close: a real socket inode
    return DriverTree(root=root, gpus=tuple(gpus), version=version)


def _make_mig(root: Path, gpu_minor: int) -> None:
    """MIG capability files and nodes, as nvidia-modprobe -f creates them."""
    caps = root / "proc/driver/nvidia/capabilities"
    (caps / "mig").mkdir(parents=True)
    (caps / "mig/config").write_text("DeviceFileMinor: 1\nDeviceFileMode: 256\nDeviceFileModify: 1\n")
    (caps / "mig/monitor").write_text("DeviceFileMinor: 2\nDeviceFileMode: 292\nDeviceFileModify: 1\n")
    gi = caps / f"gpu{gpu_minor}/mig/gi1"
    (gi / "ci0").mkdir(parents=True)
    (gi / "access").write_text("DeviceFileMinor: 12\nDeviceFileMode: 292\nDeviceFileModify: 1\n")
    (gi / "ci0/access").write_text("DeviceFileMinor: 13\nDeviceFileMode: 292\nDeviceFileModify: 1\n")
    for minor in (1, 2, 12, 13):
        _mknod(root / f"dev/nvidia-caps/nvidia-cap{minor}", CAPS_MAJOR, minor, 0o444)


def write_devices_cgroup(root: Path, allowed_minors: list[int]) -> None:
    """A cgroup v1 devices.list allowing only some /dev/nvidiaN, as Slurm's task/cgroup writes it."""
    rel = "/slurm/uid_0/job_42/step_0"
    (root / "proc/self").mkdir(parents=True, exist_ok=True)
    (root / "proc/self/cgroup").write_text(
        f"12:devices:{rel}\n11:memory:{rel}\n0::/user.slice\n")
    listing = root / f"sys/fs/cgroup/devices{rel}/devices.list"
    listing.parent.mkdir(parents=True, exist_ok=True)
    lines = ["c 1:3 rwm", "c 1:5 rwm", "c 136:* rwm", "c 195:255 rwm", "c 195:254 rwm",
             f"c {UVM_MAJOR}:* rwm"]
    lines += [f"c 195:{m} rwm" for m in allowed_minors]
    listing.write_text("\n".join(lines) + "\n")
