"""The cluster fixture: scripts/cluster.sh up 2 for a module, down after it."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLUSTER = str(REPO / "scripts" / "cluster.sh")
NEEDED = ("slurmctld", "slurmd", "srun", "munged", "mungekey", "ch-run")


def cluster_cmd(directory: Path, *args, timeout=120):
    env = dict(os.environ, MINICT_CLUSTER_DIR=str(directory))
    return subprocess.run([CLUSTER, *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup.sh installs them)")
    directory = tmp_path_factory.mktemp("cluster") / "c"
    up = cluster_cmd(directory, "up", "2")
    assert up.returncode == 0, up.stdout + up.stderr
    exports = dict(line.removeprefix("export ").split("=", 1) for line in up.stdout.splitlines())
    env = dict(os.environ, **exports, HPCSHIM_CACHE_DIR=str(directory.parent / "cache"))
    for name in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID"):
        env.pop(name, None)
    pids = json.loads((directory / "pids.json").read_text())
    yield directory, env, pids
    down = cluster_cmd(directory, "down")
    assert down.returncode == 0, down.stderr


def srun(env, *args, timeout=90):
    return subprocess.run(["srun", *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)


