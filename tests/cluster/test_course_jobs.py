"""The course material's batch scripts (examples/course-jobs/), sbatch'ed as
they are on the two-node cluster (scripts/cluster.sh): Pawsey's ml.sh and
ml-gpu.sh (`--export=NONE`: the job lives on the node's login environment)
and SDumont's CNN job (`-B scratch:/my_scratch`), with hpcshim in place of
Shifter and Singularity and the digits CNN in place of the courses' MNIST
scripts. Each test checks what the job itself says: its exit code, the
training's last line, where it ran (the node Slurm names in the output file's
name and the hostname the container sees, the partition), the GPU Slurm gave
it, and for SDumont the results written through the bind onto the host."""

import json
import os
import re
import shutil
import subprocess

import pytest

from tests.workload.conftest import BIN, EXAMPLES
from tests.workload.conftest import ml_image  # noqa: F401  (the workload tier's ML image)

pytestmark = [pytest.mark.root, pytest.mark.workload, pytest.mark.slow]

JOBS = EXAMPLES / "course-jobs"
WHERE = re.compile(r"^where: host (\S+) partition (\S+) job (\d+) (.*)$", re.M)
FINAL = re.compile(r"^final test_accuracy ([\d.]+) weights \w+ ", re.M)
OUTPUT = re.compile(r"^(?P<name>[\w.-]+)-(?P<job>\d+)-(?P<node>node\d+)\.out$")


@pytest.fixture(scope="module")
def course_image(ml_image, tmp_path_factory):   # noqa: F811
    """The ML image's ch-run directory as a site's ch-convert leaves one: with
    /ch/environment (its ENV: PATH to the image's python), which umoci's unpack
    does not write. A copy made of hard links (a second, seconds' worth of
    inodes): hpcshim adds its mount points (/my_scratch, /.hpcshim) to the
    directory it runs, and the cached image is every test's."""
    dest = tmp_path_factory.mktemp("course-image") / "rootfs"
    shutil.copytree(ml_image.chrun, dest, symlinks=True, copy_function=os.link)
    config = json.loads((ml_image.chrun.parent / "config.json").read_text())
    (dest / "ch").mkdir()
    (dest / "ch" / "environment").write_text("\n".join(config["process"]["env"]) + "\n")
    yield dest
    shutil.rmtree(dest)


@pytest.fixture
def work(tmp_path):
    """The user's job directory: the scripts, and train.py beside the stand-ins."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("ml.sh", "ml-gpu.sh", "convolutional.py"):
        shutil.copy(JOBS / name, work)
    shutil.copy(EXAMPLES / "mnist-cnn" / "train.py", work)
    return work


def sbatch(script: str, work, env, *args, timeout=300):
    """sbatch --wait from the job directory; (output, job id, node) from the
    output file, named by Slurm (%j the job, %N the node it ran on)."""
    result = subprocess.run(["sbatch", "--wait", "-o", f"{work}/%x-%j-%N.out", script, *map(str, args)],
                            cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    outputs = [OUTPUT.match(p.name) for p in work.iterdir() if OUTPUT.match(p.name)]
    assert len(outputs) == 1, f"{result.stdout}{result.stderr} {sorted(os.listdir(work))}"
    log = (work / outputs[0].string).read_text()
    # sbatch --wait exits with the job's exit code
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- job output:\n{log[-4000:]}"
    return log, outputs[0]["job"], outputs[0]["node"]


def submitting_env(cluster) -> dict:
    """The cluster's environment without the venv's bin on PATH: a job with
    --export=NONE must find hpcshim (and its GPUs, HPCSHIM_HOST_ROOT) through
    the node's login environment alone (scripts/cluster.py's profile.d)."""
    _, env, _ = cluster
    return dict(env, PATH=":".join(p for p in env["PATH"].split(":") if p != str(BIN)))


def where(log: str, job: str, node: str) -> str:
    """The job's `where:` line, checked against Slurm's view; returns the rest."""
    lines = WHERE.findall(log)
    assert len(lines) == 1, log[-4000:]
    host, partition, seen_job, rest = lines[0]
    assert (host, partition, seen_job) == (node, "cluster", job)   # the default partition
    return rest


def test_pawsey_ml_sh(cluster, course_image, work):
    log, job, node = sbatch("ml.sh", work, submitting_env(cluster), course_image)
    assert where(log, job, node) == "CUDA_VISIBLE_DEVICES=unset gpu none"
    accuracy = FINAL.findall(log)
    assert len(accuracy) == 1 and float(accuracy[0]) >= 0.95, log[-4000:]
    assert "epoch 10/10 " in log                       # train.py's defaults: 10 epochs
    assert sorted(os.listdir(work)) == sorted(["ml.sh", "ml-gpu.sh", "convolutional.py", "train.py",
                                               f"ml.sh-{job}-{node}.out"])   # nothing written beside


def test_pawsey_ml_gpu_sh(cluster, course_image, work):
    """--gres=gpu:1: the job's one GPU, seen from inside through nvidia-smi -L
    of the node's own driver tree (its UUID names the node). ch-run shows the
    host's /dev, where a fake tree's /dev/nvidia0 is not: the UUID is what
    proves it, as in test_cluster.py's GPU test."""
    log, job, node = sbatch("ml-gpu.sh", work, submitting_env(cluster), course_image)
    n = int(node.removeprefix("node"))
    assert where(log, job, node) == f"CUDA_VISIBLE_DEVICES=0 gpu GPU-{n:08d}-1111-2222-3333-000000000000"
    accuracy = FINAL.findall(log)
    assert len(accuracy) == 1 and float(accuracy[0]) >= 0.95, log[-4000:]


def test_sdumont_cnn_job(cluster, course_image, work, tmp_path):
    """No --export=NONE here: the submitting shell's PATH (with hpcshim) and
    SCRATCH reach the job. The repository on scratch is bound at /my_scratch;
    cnn_gpu.py writes its results there, which the host must then hold."""
    _, env, _ = cluster
    repo = tmp_path / "scratch" / "my_repo"
    repo.mkdir(parents=True)
    shutil.copy(JOBS / "cnn_gpu.py", repo)
    shutil.copy(EXAMPLES / "mnist-cnn" / "train.py", repo)
    shutil.copy(JOBS / "sdumont.sh", work)
    env = dict(env, PATH=f"{BIN}:{env['PATH']}", SCRATCH=str(tmp_path / "scratch"))
    log, job, node = sbatch("sdumont.sh", work, env, course_image)
    assert where(log, job, node) == "cpus 10 cwd /my_scratch/my_repo"   # --cpus-per-task=10
    assert "epoch 5/5 " in log and "epoch 6/" not in log                # --epochs 5
    accuracy = FINAL.findall(log)
    assert len(accuracy) == 1 and float(accuracy[0]) >= 0.90, log[-4000:]
    results = repo / f"results-{job}.txt"
    assert results.read_text() == log                  # written inside, found on the host
    assert sorted(os.listdir(repo)) == ["cnn_gpu.py", f"results-{job}.txt", "train.py"]
