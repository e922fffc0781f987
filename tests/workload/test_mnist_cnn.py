"""examples/mnist-cnn: the digits CNN trained on the host, in `minict run`, and
through `hpcshim exec` with minict, ch-run and Apptainer. Each run must reach the
example's accuracy (train.py exits 1 below 95%), and, being the same torch
on the same CPU with the same seed, end with bit-identical weights: a
container changes where files come from, not what the code computes.
"""

import os
import re

import pytest

from tests.helpers.apptainer import find_apptainer
from tests.workload.conftest import EXAMPLES, HPCSHIM, MINICT, leftover_containers, run

pytestmark = [pytest.mark.root, pytest.mark.workload, pytest.mark.slow]

EXAMPLE = EXAMPLES / "mnist-cnn"
FINAL = re.compile(r"^final test_accuracy (\S+) weights (\w+) torch (\S+)", re.M)


def trained(result) -> tuple[float, str, str]:
    """(accuracy, weights checksum, torch version) from a finished train.py."""
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    found = FINAL.search(result.stdout)
    assert found, result.stdout
    assert len(re.findall(r"^epoch \d+/10 ", result.stdout, re.M)) == 10, result.stdout
    return float(found[1]), found[2], found[3]


@pytest.fixture(scope="module")
def on_the_host(ml_image):
    """train.py in the host venv (same pinned packages): the yardstick."""
    return trained(run([ml_image.host_python, "train.py"], dict(os.environ), cwd=EXAMPLE))


def test_on_the_host_reaches_95_percent(on_the_host):
    accuracy, _, version = on_the_host
    assert accuracy >= 0.95 and version == "2.13.0+cpu"


def test_minict_run(ml_image, ml_env, on_the_host):
    result = run([MINICT, "run", "--rm", "-v", f"{EXAMPLE}:/workspace", "-w", "/workspace",
                  ml_image.name, "python3", "train.py"], ml_env, cwd=EXAMPLE)
    assert trained(result) == on_the_host
    assert leftover_containers(ml_image.store) == []


def test_hpcshim_exec_minict(ml_image, ml_env, on_the_host):
    result = run([HPCSHIM, "exec", "--runtime", "minict", "-B", f"{EXAMPLE}:/workspace",
                  ml_image.name, "python3", "/workspace/train.py"], ml_env)
    assert trained(result) == on_the_host
    assert leftover_containers(ml_image.store) == []


def test_hpcshim_exec_chrun(ml_image, ml_env, on_the_host):
    # ch-run runs a directory and does not apply the image's ENV: the venv's python by path.
    result = run([HPCSHIM, "exec", "--runtime", "ch-run", "-B", f"{EXAMPLE}:/workspace",
                  ml_image.chrun, "/opt/venv/bin/python3", "/workspace/train.py"], ml_env)
    assert trained(result) == on_the_host


def test_hpcshim_exec_apptainer(ml_image, ml_env, on_the_host, tmp_path):
    # The image directory ch-run uses, as an Apptainer sandbox (it does not apply ENV either).
    env = find_apptainer().env(ml_env, tmp_path)
    result = run([HPCSHIM, "exec", "--runtime", "apptainer", "-B", f"{EXAMPLE}:/workspace",
                  ml_image.chrun, "/opt/venv/bin/python3", "/workspace/train.py"], env)
    assert trained(result) == on_the_host


def test_a_model_that_misses_the_target_fails(ml_image, ml_env):
    """The accuracy check can fail: one epoch at a tiny learning rate stays far below."""
    result = run([MINICT, "run", "--rm", "--network", "none", "-v", f"{EXAMPLE}:/workspace",
                  ml_image.name, "python3", "train.py", "--epochs", "1", "--lr", "1e-5"], ml_env)
    assert result.returncode == 1 and "below --min-accuracy 0.95" in result.stderr, result.stderr
