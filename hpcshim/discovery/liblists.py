"""Which driver files to look for by name, in the nvliblist.conf format.

The format is Apptainer's `nvliblist.conf` / `rocmliblist.conf`, so a site's
existing file works unchanged: one name per line, `#` starts a comment, a
name ending in `.so` is a library (matched against sonames: `libcuda.so`
matches `libcuda.so.1`), anything else is a binary.

A fixed list lags new drivers (Apptainer's missed libnvidia-gpucomp and
libnvidia-nvvm for a while), so for NVIDIA the list is only one of two
sources: libraries.py also takes every file in the driver's library
directory that ends in the driver version, as nvidia-ctk does. A site adds
names in `/etc/hpcshim/nvliblist.conf` (or `rocmliblist.conf`), or in the
file named by $HPCSHIM_NVLIBLIST / $HPCSHIM_ROCMLIBLIST.
"""

from collections import namedtuple

NVIDIA_BINARIES = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)

NVIDIA_LIBRARIES = (
    # compute
    "libcuda.so", "libcudadebugger.so", "libnvidia-ml.so", "libnvidia-ptxjitcompiler.so",
    "libnvidia-nvvm.so", "libnvidia-gpucomp.so", "libnvidia-opencl.so", "libnvidia-cfg.so",
    "libnvidia-allocator.so", "libnvidia-compiler.so", "libnvidia-fatbinaryloader.so",
    "libOpenCL.so",
    # video
    "libnvcuvid.so", "libnvidia-encode.so", "libnvidia-opticalflow.so", "libnvidia-fbc.so",
    "libvdpau_nvidia.so",
    # graphics (GLVND vendor libraries and their helpers)
    "libEGL_nvidia.so", "libGLX_nvidia.so", "libGLESv1_CM_nvidia.so", "libGLESv2_nvidia.so",
    "libnvidia-eglcore.so", "libnvidia-glcore.so", "libnvidia-glsi.so", "libnvidia-tls.so",
    "libnvidia-glvkspirv.so", "libnvidia-rtcore.so", "libnvoptix.so", "libnvidia-egl-wayland.so",
    "libnvidia-egl-gbm.so", "libnvidia-ngx.so", "libnvidia-cbl.so", "libnvidia-ifr.so",
)

ROCM_BINARIES = ("rocm-smi", "rocminfo")

ROCM_LIBRARIES = (
    "libamdhip64.so", "libhsa-runtime64.so", "libhsakmt.so", "libamd_comgr.so",
    "librocm_smi64.so", "librocm-core.so", "libdrm_amdgpu.so", "libdrm.so",
    "libamdocl64.so", "libOpenCL.so",
)


class NameList(namedtuple("NameList", ["libraries", "binaries", "sources"])):
    """Library and binary names to look for, and the files they came from."""
    __slots__ = ()


def parse_liblist(text: str) -> tuple[list[str], list[str]]:
    """(libraries, binaries) named in nvliblist.conf-format text."""
    libraries, binaries = [], []
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        (libraries if ".so" in name else binaries).append(name)
    return libraries, binaries


def matches(soname: str, listed: str) -> bool:
    """Whether a soname belongs to a listed library name (libcuda.so ~ libcuda.so.1)."""
    return soname == listed or soname.startswith(listed + ".")


def merge(built_in_libs, built_in_bins, site_texts: list[tuple[str, str]]) -> NameList:
    """The built-in names plus each (source, text) site list, without duplicates."""
    libs, bins, sources = list(built_in_libs), list(built_in_bins), ["built-in"]
    for source, text in site_texts:
        more_libs, more_bins = parse_liblist(text)
        libs += [n for n in more_libs if n not in libs]
        bins += [n for n in more_bins if n not in bins]
        sources.append(source)
    return NameList(tuple(libs), tuple(bins), tuple(sources))
