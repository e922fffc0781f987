"""The workload tier: real ML/MPI workloads in the ML image (scripts/ml-image.sh).

The image is built before pytest starts (the pytest process has no network:
tests/conftest.py), once per recipe, into /var/cache/minict-test-images/<sha256>/.
Tests use its minict store directly as MINICT_ROOT, each with its own
MINICT_STATE: loading the ~1.5 GB image into a fresh store would unpack it
again every session, while the store's layer directories are only ever the
read-only lower layers of a container's overlay (a container's own files are
under ROOT/containers/<id>, removed by --rm). ch-run gets the image as the
directory the script unpacked; the host comparison runs in its venv.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hpcshim.conftest import library_store  # noqa: F401  (the Slurm fixture needs it)
from tests.hpcshim.test_slurm import slurm  # noqa: F401  (the real single-node Slurm)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MINICT = str(BIN / "minict")
HPCSHIM = str(BIN / "hpcshim")
EXAMPLES = REPO / "examples"
IMAGE = "ml-workload:latest"


class MlImage:
    def __init__(self, cache: Path):
        self.cache = cache
        self.store = cache / "store"                  # MINICT_ROOT
        self.chrun = cache / "chrun" / "rootfs"       # ch-run's image directory
        self.host_python = cache / "hostvenv" / "bin" / "python3"
        self.name = IMAGE


def built_image_cache(script: str, what: str, network: str) -> Path:
    """The cache directory of an image scripts/SCRIPT builds (ml-image.sh,
    tf-image.sh, hvd-image.sh), with its READY; else skip, saying how to build
    it (fail under scripts/test.sh, which built it before pytest)."""
    if os.geteuid() != 0:
        pytest.skip("the workload tier needs root")
    cache = Path(subprocess.run([str(REPO / "scripts" / script), "--print-dir"], check=True,
                                capture_output=True, text=True).stdout.strip())
    if not (cache / "READY").exists():
        message = (f"the {what} image is not built ({cache} has no READY): run `sudo scripts/{script}` "
                   f"(it needs {network} network; scripts/test.sh runs it before pytest)")
        if os.environ.get("MINICT_WORKLOAD_IMAGE_REQUIRED") == "1":
            pytest.fail(message)                     # scripts/test.sh built it: missing is a failure
        pytest.skip(message)
    return cache


@pytest.fixture(scope="session")
def ml_image() -> MlImage:
    return MlImage(built_image_cache("ml-image.sh", "ML", "Debian's and PyPI's"))


@pytest.fixture
def ml_env(ml_image, tmp_path) -> dict:
    """Environment for minict/hpcshim against the cached store, own state dir."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MINICT_EXPLAIN", "NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(MINICT_ROOT=str(ml_image.store), MINICT_STATE=str(tmp_path / "minict-state"),
               HPCSHIM_CACHE_DIR=str(tmp_path / "hpcshim-cache"), PATH=f"{BIN}:{env.get('PATH', '')}")
    env.setdefault("USER", "root")
    return env


def run(argv, env, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def leftover_containers(store: Path) -> list[Path]:
    containers = store / "containers"
    return sorted(containers.iterdir()) if containers.exists() else []
