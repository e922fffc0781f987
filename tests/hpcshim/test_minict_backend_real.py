"""`hpcshim exec --runtime minict`, for real: hpcshim discovers the fake
driver tree (HPCSHIM_HOST_ROOT), writes the Plan to an inherited memory
file, execs `minict run --rm --gpu-plan /dev/fd/N IMAGE CMD`, and minict
builds the container from it. Checked from inside the container: device
nodes, library files and the loader finding them, env (--cleanenv, --env,
the Slurm variables), binds, the exit code, and that nothing is left.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hpcshim.drivertree import DRIVER_VERSION
from tests.runtime.conftest import container_dirs, mount_table
from tests.runtime.test_gpu_plan import import_gpu_images, md5

pytestmark = pytest.mark.root

BIN = Path(sys.executable).parent
HPCSHIM = str(BIN / "hpcshim")
MINICT = str(BIN / "minict")


@pytest.fixture(scope="module")
def images(tmp_path_factory, busybox_rootfs) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return import_gpu_images(tmp_path_factory.mktemp("shim-minict-images"), busybox_rootfs)


@pytest.fixture
def env(shim_env, images, tmp_path, driver_tree) -> dict:
    """The job's environment: minict on PATH, its store, the fake host."""
    e = dict(shim_env)
    e.update(MINICT_ROOT=str(images), MINICT_STATE=str(tmp_path / "state"),
             HPCSHIM_HOST_ROOT=str(driver_tree.root), PATH=f"{BIN}:{e.get('PATH', '')}")
    e.pop("MINICT_EXPLAIN", None)
    return e


def shim(env: dict, *args, timeout=60):
    return subprocess.run([HPCSHIM, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


def leftovers(env: dict) -> list:
    state = Path(env["MINICT_STATE"]) / "containers"
    return container_dirs(Path(env["MINICT_ROOT"])) + (sorted(state.iterdir()) if state.exists() else [])


def test_exec_gpu_with_cleanenv_env_and_exit_code(env, driver_tree, tmp_path):
    env.update(CUDA_VISIBLE_DEVICES="2", SLURM_JOB_ID="42", PMIX_RANK="0", ONLY_ON_THE_HOST="x")
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("from the host\n")
    script = ("ls /dev | grep '^nvidia'; "
              "echo CUDA=$CUDA_VISIBLE_DEVICES ORDER=$CUDA_DEVICE_ORDER LD=$LD_LIBRARY_PATH; "
              "echo K=$K SLURM=$SLURM_JOB_ID PMIX=$PMIX_RANK HOST=${ONLY_ON_THE_HOST:-unset}; "
              "md5sum /.hpcshim/lib/libcuda.so.1; cat /data/input.txt; "
              "touch /data/new 2>/dev/null || echo data-is-read-only; ls /proc/self/fd | tr '\\n' ' '; "
              "echo; exit 5")
    mounts = mount_table()
    result = shim(env, "exec", "--gpu", "--runtime", "minict", "--cleanenv", "--env", "K=V",
                  "--env", "LD_LIBRARY_PATH=/opt/user", "-B", f"{data}:/data:ro",
                  "busybox", "sh", "-c", script)
    assert result.returncode == 5, result.stderr                # the workload's code, through both
    host_libcuda = driver_tree.root / f"usr/lib/x86_64-linux-gnu/libcuda.so.{DRIVER_VERSION}"
    assert result.stdout.splitlines() == [
        # GPU index 2 is /dev/nvidia3; no other GPU's node exists in the container
        "nvidia-modeset", "nvidia-uvm", "nvidia-uvm-tools", "nvidia3", "nvidiactl",
        "CUDA=0 ORDER=PCI_BUS_ID LD=/.hpcshim/lib:/opt/user",
        "K=V SLURM=42 PMIX=0 HOST=unset",                       # --cleanenv keeps the job's variables
        f"{md5(host_libcuda)}  /.hpcshim/lib/libcuda.so.1",
        "from the host",
        "data-is-read-only",
        "0 1 2 3 ",                                             # the plan's memfd did not get in
    ]
    assert mount_table() == mounts and leftovers(env) == []


def test_exec_gpu_libraries_are_found_by_the_loader(env):
    result = shim(env, "exec", "--gpu", "--runtime", "minict", "probe",
                  "gpuprobe", "libcuda.so.1", "libnvidia-ml.so.1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"libcuda.so.1|64|/.hpcshim/lib/libcuda.so.1|libcuda.so 64-bit {DRIVER_VERSION}",
        f"libnvidia-ml.so.1|64|/.hpcshim/lib/libnvidia-ml.so.1|libnvidia-ml.so 64-bit {DRIVER_VERSION}"]


def test_exec_without_gpu_brings_only_the_users_binds_and_env(env, tmp_path):
    result = shim(env, "exec", "--runtime", "minict", "--env", "K=V", "-B", f"{tmp_path}:/w",
                  "busybox", "sh", "-c", "ls /dev | grep -c nvidia; echo $K; test -d /w && echo w; "
                                         "test -e /.hpcshim || echo no-libs")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["0", "V", "w", "no-libs"]


def test_exec_gpu_auto_on_a_host_without_gpu_runs(env, tmp_path):
    (tmp_path / "empty").mkdir()
    env["HPCSHIM_HOST_ROOT"] = str(tmp_path / "empty")
    result = shim(env, "exec", "--gpu=auto", "--runtime", "minict", "busybox", "sh", "-c",
                  "ls /dev | grep -c nvidia; exit 4")
    assert (result.returncode, result.stdout.strip()) == (4, "0"), result.stderr
    refused = shim(env, "exec", "--gpu", "--runtime", "minict", "busybox", "true")
    assert refused.returncode == 12                              # hpcshim's NoGpu, before minict runs
    assert len(refused.stderr.strip().splitlines()) == 1 and "no NVIDIA or AMD GPU driver" in refused.stderr
    assert leftovers(env) == []


def test_dry_run_prints_the_minict_command_and_runs_nothing(env):
    result = shim(env, "exec", "--dry-run", "--gpu", "--runtime", "minict", "busybox", "sh", "-c", "echo hi")
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(re.escape(MINICT) + r" run --rm --network host --ipc host --ulimit memlock=[-0-9]+:[-0-9]+ "
                        r"--gpu-plan /dev/fd/\d+ busybox sh -c 'echo hi'\n", result.stdout), result.stdout
    assert leftovers(env) == []
