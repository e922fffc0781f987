"""The hpc-cluster lesson runs as written, its checks pass, and it leaves
nothing: no cluster process, no process in its network namespace (which its
walk-through makes with unshare, so the lesson's cluster never meets the
session's), no container, no mount, no temp files."""

import glob
import os
import shutil

import pytest

from tests.helpers.lessons import processes_naming, readme_and_script, run_walkthrough
from .conftest import NEEDED

pytestmark = [pytest.mark.root, pytest.mark.slow]

LESSON = "hpc-cluster"
TOOLS = (*NEEDED, "sbatch", "umoci", "unshare", "nsenter")
# Where the walk-through works (it removes it): in /tmp itself, for unix
# sockets' short paths (munge's, the fake nvidia-persistenced's).
WORK_DIRS = "/tmp/hpc-cluster.*"

# scripts/cluster.py's per-node GPUs: GPU-<node, 8 digits>-1111-2222-3333-<minor, 12 digits>
RANKS = [f"rank {rank} node{node} local {local} CUDA_VISIBLE_DEVICES={local} "
         f"GPU-{node:08d}-1111-2222-3333-{local:012d}"
         for rank, (node, local) in enumerate([(1, 0), (1, 1), (2, 0), (2, 1)])]


def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup.sh installs them)")
    work_dirs_before = set(glob.glob(WORK_DIRS))
    out = run_walkthrough(LESSON, tmp_path, min_checks=27, owned_mounts=[WORK_DIRS])
    # step 1: minict's --gpus, narrated from the real calls
    assert "CUDA_VISIBLE_DEVICES=0,1\nGPU 0: NVIDIA RTX A1000 Laptop GPU" in out
    assert "Create /dev/nvidia1 (linux.devices)" in out and "makedev(195, 1)" in out
    # step 2: what hpcshim hands each runtime
    assert "--gpu-plan /dev/fd/3 busybox true" in out
    assert "--set-env=CUDA_VISIBLE_DEVICES=0,1" in out
    # steps 3-5: the cluster, srun and sbatch, each rank its own node's GPU
    assert "cluster*     up   infinite      2   idle node[1-2]" in out
    for row in RANKS:
        assert out.count(row) == 2, row          # under srun (step 4), in the job's file (step 5)
    assert "batch script on node1: job " in out
    # nothing left: its work dir (the cluster's directory, hpcshim's cache) is gone,
    # and no process names it (munged, slurmctld, slurmd, the nodes' holders)
    work = out.split("$ export MINICT_CLUSTER_DIR=", 1)[1].split("/cluster", 1)[0]
    assert work.startswith("/tmp/hpc-cluster.") and not os.path.exists(work)
    assert set(glob.glob(WORK_DIRS)) <= work_dirs_before
    assert list((tmp_path / "tmp").iterdir()) == []
    assert processes_naming(work) == [] and processes_naming(str(tmp_path)) == []


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script(LESSON)
    for text in ("--gpus all", "--gpus device=1", "--network none", "HPCSHIM_HOST_ROOT",
                 "hpcshim doctor", "--runtime minict --dry-run minict:busybox",
                 "--gpu-plan /dev/fd/3", "CUDA_VISIBLE_DEVICES=1 hpcshim exec",
                 "--runtime ch-run minict:busybox", "--set-env", "MINICT_CLUSTER_DIR",
                 "scripts/cluster.sh up 2", "sinfo", "srun -N2 hostname",
                 "srun -N2 --ntasks-per-node=2 --gres=gpu:2",
                 "--gpu-bind=local-rank", "sbatch --wait gpu-job.sbatch", "scripts/cluster.sh down",
                 "pids.json", "mct-cluster", "unshare --net --mount"):
        assert text in readme and text in script, text
