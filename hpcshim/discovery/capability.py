"""What the node's driver and GPUs can run: the CUDA version, compute capability.

Both are read from what discovery already has (the driver version from
/proc/driver/nvidia/version, each GPU's "Model:" from gpus/<bus>/information),
through two tables NVIDIA publishes. Nothing here loads a driver library.

The CUDA version a driver supports. NVIDIA's container toolkit asks libcuda
(cuDriverGetVersion) and so could hpcshim, through ctypes in a short-lived
child. It does not, because:

- `hpcshim exec` runs in front of every job step, and loading the host's
  libcuda (tens of MB, and its constructors) costs more than hpcshim's whole
  overhead budget (bench/shim);
- the host's libcuda may be a stub (a login node, a build host, the fake
  tree of the tests, a --host-root of another machine or architecture) that
  cannot be loaded here or says nothing true about the node;
- the answer is a fixed function of the driver version, which NVIDIA
  publishes in the CUDA Toolkit release notes, table "CUDA Toolkit and
  Corresponding Driver Versions" (the minimum Linux x86_64 driver of each
  release): a table a reader can check by eye against that page.

The price: the table ends at the newest release it lists. A driver of a
later branch supports *at least* that CUDA version, and says so
(`CudaSupport.at_least`); a requirement above it is then "cannot tell", not
a refusal. The table lists toolkit releases, so a driver whose libcuda says
12.7 (the 565 branch, no 12.7 toolkit exists) reads as 12.6 here: no image
can need 12.7.

Compute capability is not in any driver file (/proc/driver/nvidia/gpus/*/
information has Model, IRQ, UUID, VBIOS, bus, minor; no capability). The
model name does determine it for NVIDIA's data-centre boards, which NVIDIA
lists with their capability on https://developer.nvidia.com/cuda-gpus
(CUDA_GPUS below). Any other name - a GeForce, an RTX workstation board, a
board newer than the table - is "unknown", never a guess.
"""

import re
from collections import namedtuple

# (CUDA major.minor, oldest Linux x86_64 driver supporting it): the first
# release (GA, or for 11.0 its RC) of each version in "CUDA Toolkit and
# Corresponding Driver Versions", CUDA Toolkit release notes
# (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/, Table 3; the rows
# before 11.0 are in the 10.x/11.0 notes' Table 2). Newest first.
CUDA_DRIVERS = (
    ("13.0", "580.65.06"),
    ("12.9", "575.51.03"),
    ("12.8", "570.26"),
    ("12.6", "560.28.03"),
    ("12.5", "555.42.02"),
    ("12.4", "550.54.14"),
    ("12.3", "545.23.06"),
    ("12.2", "535.54.03"),
    ("12.1", "530.30.02"),
    ("12.0", "525.60.13"),
    ("11.8", "520.61.05"),
    ("11.7", "515.43.04"),
    ("11.6", "510.39.01"),
    ("11.5", "495.29.05"),
    ("11.4", "470.42.01"),
    ("11.3", "465.19.01"),
    ("11.2", "460.27.03"),
    ("11.1", "455.23"),
    ("11.0", "450.36.06"),
    ("10.2", "440.33"),
    ("10.1", "418.39"),
    ("10.0", "410.48"),
    ("9.2", "396.26"),
    ("9.1", "390.46"),
    ("9.0", "384.81"),
    ("8.0", "367.48"),
    ("7.5", "352.31"),
    ("7.0", "346.46"),
)

# Product name (as the driver's "Model:" line spells it, after "NVIDIA " or
# "Tesla ") -> compute capability, from https://developer.nvidia.com/cuda-gpus
# (data-centre products; suffixes such as K40m, V100S, L40S, A100-SXM4-80GB
# are the same chip).
CUDA_GPUS = {
    "K10": "3.0", "K20": "3.5", "K40": "3.5", "K80": "3.7",
    "M4": "5.2", "M10": "5.0", "M40": "5.2", "M60": "5.2",
    "P4": "6.1", "P40": "6.1", "P100": "6.0",
    "V100": "7.0", "T4": "7.5",
    "A2": "8.6", "A10": "8.6", "A16": "8.6", "A30": "8.0", "A40": "8.6", "A100": "8.0", "A800": "8.0",
    "L4": "8.9", "L20": "8.9", "L40": "8.9",
    "H100": "9.0", "H200": "9.0", "H800": "9.0", "GH200": "9.0",
    "B200": "10.0", "GB200": "10.0",
}

_PRODUCT = re.compile(r"(?:NVIDIA |Tesla )?([A-Z]{1,2}\d+)(?![\d.])")


class CudaSupport(namedtuple("CudaSupport", ["version", "at_least"])):
    """The CUDA version a driver supports ("12.4"); at_least: the driver is
    newer than the table's last row, so it may support more."""
    __slots__ = ()

    def __str__(self) -> str:
        return f"CUDA {self.version}" + (" or newer" if self.at_least else "")


def version_key(text: str) -> tuple[int, ...]:
    """"550.54.14" -> (550, 54, 14); ValueError for anything but digits and dots."""
    parts = text.split(".")
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"{text!r} is not a version (digits and dots)")
    return tuple(int(part) for part in parts)


def cuda_for_driver(driver: str | None) -> CudaSupport | None:
    """The newest CUDA version whose minimum driver is <= driver, or None
    (no driver version, one that is not numeric, or older than the table)."""
    if not driver:
        return None
    try:
        have = version_key(driver)
    except ValueError:
        return None
    for cuda, minimum in CUDA_DRIVERS:
        if have >= version_key(minimum):
            newest_branch = version_key(CUDA_DRIVERS[0][1])[0]
            return CudaSupport(cuda, at_least=cuda == CUDA_DRIVERS[0][0] and have[0] > newest_branch)
    return None


def compute_capability(model: str | None) -> str | None:
    """"Tesla K40m" -> "3.5"; None for a name CUDA_GPUS does not list."""
    match = _PRODUCT.match(model or "")
    return CUDA_GPUS.get(match.group(1)) if match else None
