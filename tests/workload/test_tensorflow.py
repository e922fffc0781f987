"""examples/tensorflow-cnn and examples/tf-distribute in the TensorFlow image
(scripts/tf-image.sh): the Keras digits CNN on the host, in `minict run` (the
lesson's `-v $PWD:/notebooks -w /notebooks` shape) and through `hpcshim exec`
with minict, ch-run and Apptainer; the Dockerfile episode's image; and
MirroredStrategy over four logical CPUs in one container.

TensorFlow on a CPU is reproducible with the seeds, determinism and thread
counts fixed (convolutional.py fixes all three): the same TensorFlow on the
same CPU then ends with bit-identical weights, inside a container or not. A
different thread count changes the bits (the order of float sums) but not
the accuracy, which test_thread_count_changes_bits_not_accuracy pins down.
"""

import os
import re
from pathlib import Path

import pytest

from tests.helpers.apptainer import find_apptainer
from tests.workload.conftest import BIN, EXAMPLES, HPCSHIM, MINICT, built_image_cache, leftover_containers, run

pytestmark = [pytest.mark.root, pytest.mark.workload, pytest.mark.slow]

CNN = EXAMPLES / "tensorflow-cnn"
DISTRIBUTE = EXAMPLES / "tf-distribute"
FINAL = re.compile(r"^final test_accuracy (\S+) weights (\w+) tensorflow (\S+) threads (\d+)$", re.M)
VERSION = "2.21.0"


class TfImage:
    def __init__(self, cache: Path):
        self.cache = cache
        self.store = cache / "store"                  # MINICT_ROOT
        self.chrun = cache / "chrun" / "rootfs"       # ch-run's (and Apptainer's) image directory
        self.host_python = cache / "hostvenv" / "bin" / "python3"
        self.name = "tf-workload:latest"
        self.episode_name = "tensorflow-ex:latest"    # examples/tensorflow-cnn/Dockerfile


@pytest.fixture(scope="session")
def tf_image() -> TfImage:
    return TfImage(built_image_cache("tf-image.sh", "TensorFlow", "PyPI's"))


@pytest.fixture
def tf_env(tf_image, tmp_path) -> dict:
    """Environment for minict/hpcshim against the cached store, own state dir."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MINICT_EXPLAIN", "NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env.update(MINICT_ROOT=str(tf_image.store), MINICT_STATE=str(tmp_path / "minict-state"),
               HPCSHIM_CACHE_DIR=str(tmp_path / "hpcshim-cache"), PATH=f"{BIN}:{env.get('PATH', '')}")
    env.setdefault("USER", "root")
    return env


def trained(result) -> tuple[float, str, str, str]:
    """(accuracy, weights checksum, TensorFlow version, threads) from a finished convolutional.py."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = FINAL.search(result.stdout)
    assert found, result.stdout + result.stderr[-3000:]
    assert len(re.findall(r"^epoch \d/3 ", result.stdout, re.M)) == 3, result.stdout
    return float(found[1]), found[2], found[3], found[4]


@pytest.fixture(scope="module")
def on_the_host(tf_image):
    """convolutional.py in the host venv (same pinned packages): the yardstick."""
    return trained(run([tf_image.host_python, "convolutional.py"], dict(os.environ), cwd=CNN))


def test_on_the_host_reaches_95_percent(on_the_host):
    accuracy, _, version, threads = on_the_host
    assert accuracy >= 0.95 and version == VERSION and threads == "2"


def test_minict_run_as_the_lesson_writes_it(tf_image, tf_env, on_the_host):
    # docker run --rm -v `pwd`:/notebooks -w /notebooks tensorflow/tensorflow python convolutional.py
    result = run([MINICT, "run", "--rm", "-v", f"{CNN}:/notebooks", "-w", "/notebooks",
                  tf_image.name, "python", "convolutional.py"], tf_env, cwd=CNN)
    assert trained(result) == on_the_host
    assert leftover_containers(tf_image.store) == []


def test_hpcshim_exec_minict(tf_image, tf_env, on_the_host):
    result = run([HPCSHIM, "exec", "--runtime", "minict", "-B", f"{CNN}:/notebooks",
                  tf_image.name, "python", "/notebooks/convolutional.py"], tf_env)
    assert trained(result) == on_the_host
    assert leftover_containers(tf_image.store) == []


def test_hpcshim_exec_chrun_cleanenv(tf_image, tf_env, on_the_host):
    # ch-run runs a directory and does not apply the image's ENV: the venv's python by path.
    result = run([HPCSHIM, "exec", "--cleanenv", "--runtime", "ch-run", "-B", f"{CNN}:/notebooks",
                  tf_image.chrun, "/opt/venv/bin/python3", "/notebooks/convolutional.py"], tf_env)
    assert trained(result) == on_the_host


def test_hpcshim_exec_apptainer(tf_image, tf_env, on_the_host, tmp_path):
    env = find_apptainer().env(tf_env, tmp_path)
    result = run([HPCSHIM, "exec", "--runtime", "apptainer", "-B", f"{CNN}:/notebooks",
                  tf_image.chrun, "/opt/venv/bin/python3", "/notebooks/convolutional.py"], env)
    assert trained(result) == on_the_host


def test_thread_count_changes_bits_not_accuracy(tf_image, on_the_host):
    """One thread instead of two: other float sums, so other bits; the same accuracy."""
    accuracy, weights, _, threads = trained(run([tf_image.host_python, "convolutional.py", "--threads", "1"],
                                                dict(os.environ), cwd=CNN))
    assert threads == "1" and weights != on_the_host[1]
    assert abs(accuracy - on_the_host[0]) <= 0.01


def test_a_model_that_misses_the_target_fails(tf_image, tf_env):
    """The accuracy check can fail: one epoch at a tiny learning rate stays far below."""
    result = run([MINICT, "run", "--rm", "--network", "none", "-v", f"{CNN}:/notebooks", "-w", "/notebooks",
                  tf_image.name, "python", "convolutional.py", "--epochs", "1", "--lr", "1e-5"], tf_env)
    assert result.returncode == 1 and "below --min-accuracy 0.95" in result.stderr, result.stderr[-2000:]


def test_the_dockerfile_episode_image(tf_image, tf_env):
    """tensorflow-ex (examples/tensorflow-cnn/Dockerfile, built by scripts/tf-image.sh):
    FROM the TensorFlow image, plus astropy, pandas and matplotlib, which the base lacks."""
    imports = "import astropy; import pandas; import matplotlib"
    result = run([MINICT, "run", "--rm", "--network", "none", tf_image.episode_name, "python", "-c",
                  f"{imports}; import tensorflow as tf; "
                  "print(astropy.__version__, pandas.__version__, matplotlib.__version__, tf.__version__)"], tf_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["7.1.0", "2.3.1", "3.10.3", VERSION]
    base = run([MINICT, "run", "--rm", "--network", "none", tf_image.name, "python", "-c", imports], tf_env)
    assert base.returncode == 1 and "No module named 'astropy'" in base.stderr, base.stderr[-2000:]
    assert leftover_containers(tf_image.store) == []


def test_mirrored_strategy_over_four_logical_cpus(tf_image, tf_env):
    result = run([MINICT, "run", "--rm", "--network", "none", "-v", f"{DISTRIBUTE}:/workspace",
                  tf_image.name, "python", "mirrored.py", "--replicas", "4"], tf_env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert re.search(r"^replicas 4 devices /device:CPU:0,/device:CPU:1,/device:CPU:2,/device:CPU:3$",
                     result.stdout, re.M), result.stdout
    found = re.search(r"^final test_accuracy (\S+) weights \w+ replicas 4 tensorflow (\S+)$", result.stdout, re.M)
    assert found and float(found[1]) >= 0.93 and found[2] == VERSION, result.stdout
