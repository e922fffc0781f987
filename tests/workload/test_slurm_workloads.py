"""examples/slurm-ddp and examples/mpi on the real single-node Slurm that
tests/hpcshim/test_slurm.py starts (its `slurm` fixture, one per module).

- DDP, one Slurm task per rank (ddp.sbatch), in ch-run, Apptainer and minict
  containers: all share the node's network (hpcshim gives minict
  containers `--network host --ipc host`), so rank 0's
  MASTER_ADDR:MASTER_PORT is reachable from rank 1.
- DDP, one task, torchrun inside one minict container (torchrun.sbatch).
- MPI: srun --mpi=pmix starts two ranks, each in a ch-run (or Apptainer)
  container with --cleanenv; OpenMPI inside reaches Slurm's PMIx server through the PMIX_*
  variables hpcshim keeps. And mpirun -np 2 inside one minict container.
"""

import re
import subprocess

import pytest

from tests.helpers.apptainer import find_apptainer
from tests.workload.conftest import BIN, EXAMPLES, HPCSHIM, leftover_containers, run

pytestmark = [pytest.mark.root, pytest.mark.workload, pytest.mark.slow]

RANK_LINE = re.compile(r"^rank (\d)/(\d) local_rank (\d) master (\S+) test_accuracy (\S+) weights (\w+)$", re.M)
MPI_LINE = re.compile(r"^rank (\d)/(\d) on \S+: allreduce sum=(\d+) expected=(\d+) (OK|WRONG)$", re.M)


@pytest.fixture
def job_env(slurm, ml_image, tmp_path) -> dict:
    env = dict(slurm.env)
    env.update(PATH=f"{BIN}:{env['PATH']}", MINICT_ROOT=str(ml_image.store),
               MINICT_STATE=str(tmp_path / "minict-state"))
    env.pop("MINICT_EXPLAIN", None)
    return env


def sbatch(script, env, tmp_path, timeout=420) -> str:
    """sbatch --wait SCRIPT from its own directory; the job's output."""
    out = tmp_path / "job.out"
    result = subprocess.run(["sbatch", "--wait", "-o", str(out), script.name], cwd=script.parent, env=env,
                            capture_output=True, text=True, timeout=timeout)
    log = out.read_text() if out.exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- job output:\n{log[-4000:]}"
    return log


def ddp_ranks(log: str, world=2) -> list[tuple]:
    ranks = sorted(RANK_LINE.findall(log))
    assert [r[:2] for r in ranks] == [(str(i), str(world)) for i in range(world)], log[-4000:]
    checksums = {r[5] for r in ranks}
    assert len(checksums) == 1, f"ranks ended with different weights: {ranks}"
    assert all(float(r[4]) >= 0.90 for r in ranks), ranks
    return ranks


def test_ddp_one_task_per_rank_chrun(slurm, ml_image, job_env, tmp_path):
    job_env.update(IMAGE=str(ml_image.chrun), RUNTIME="ch-run")
    log = sbatch(EXAMPLES / "slurm-ddp" / "ddp.sbatch", job_env, tmp_path)
    ranks = ddp_ranks(log)
    port = re.search(r"rendezvous at 127\.0\.0\.1:(\d+)", log)       # NodeAddr, port from the job id
    assert port, log
    assert {r[3] for r in ranks} == {f"127.0.0.1:{port[1]}"}
    assert [r[2] for r in ranks] == ["0", "1"]                          # LOCAL_RANK from SLURM_LOCALID


def test_ddp_one_task_per_rank_apptainer(slurm, ml_image, job_env, tmp_path):
    env = find_apptainer().env(job_env, tmp_path)
    env.update(IMAGE=str(ml_image.chrun), RUNTIME="apptainer")
    log = sbatch(EXAMPLES / "slurm-ddp" / "ddp.sbatch", env, tmp_path)
    ranks = ddp_ranks(log)
    assert [r[2] for r in ranks] == ["0", "1"]


def test_ddp_torchrun_in_one_minict_container(slurm, ml_image, job_env, tmp_path):
    job_env.update(IMAGE=ml_image.name, RUNTIME="minict")
    log = sbatch(EXAMPLES / "slurm-ddp" / "torchrun.sbatch", job_env, tmp_path)
    ddp_ranks(log)
    assert leftover_containers(ml_image.store) == []


def test_ddp_one_task_per_rank_minict(slurm, ml_image, job_env, tmp_path):
    # hpcshim gives each rank's minict container the host's network and IPC
    # namespace, so rank 1 reaches rank 0's rendezvous port as under ch-run.
    job_env.update(IMAGE=ml_image.name, RUNTIME="minict")
    log = sbatch(EXAMPLES / "slurm-ddp" / "ddp.sbatch", job_env, tmp_path)
    ranks = ddp_ranks(log)
    assert [r[2] for r in ranks] == ["0", "1"]
    assert leftover_containers(ml_image.store) == []


def test_srun_mpi_pmix_allreduce_in_chrun_containers(slurm, ml_image, job_env, tmp_path):
    mpi_types = subprocess.run(["srun", "--mpi=list"], env=job_env, capture_output=True, text=True)
    assert "pmix" in mpi_types.stdout + mpi_types.stderr, mpi_types.stdout + mpi_types.stderr
    job_env["IMAGE"] = str(ml_image.chrun)
    log = sbatch(EXAMPLES / "mpi" / "allreduce.sbatch", job_env, tmp_path, timeout=180)
    # Without PMIx each rank would be a world of its own: "rank 0/1" twice.
    assert sorted(MPI_LINE.findall(log)) == [("0", "2", "3", "3", "OK"), ("1", "2", "3", "3", "OK")], log


def test_srun_mpi_pmix_allreduce_in_apptainer_containers(slurm, ml_image, job_env, tmp_path):
    env = find_apptainer().env(job_env, tmp_path)
    env.update(IMAGE=str(ml_image.chrun), RUNTIME="apptainer")
    log = sbatch(EXAMPLES / "mpi" / "allreduce.sbatch", env, tmp_path, timeout=180)
    assert sorted(MPI_LINE.findall(log)) == [("0", "2", "3", "3", "OK"), ("1", "2", "3", "3", "OK")], log


def test_mpirun_in_one_minict_container(ml_image, ml_env):
    # The tests' network namespace has only loopback, which mpirun's out-of-band
    # channel skips unless told; the ranks talk through shared memory (vader).
    result = run([HPCSHIM, "exec", "--runtime", "minict", ml_image.name,
                  "mpirun", "--oversubscribe", "--mca", "oob_tcp_if_include", "lo", "--mca", "btl", "self,vader",
                  "-np", "2", "allreduce"], ml_env, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(MPI_LINE.findall(result.stdout)) == [("0", "2", "3", "3", "OK"), ("1", "2", "3", "3", "OK")]
    assert leftover_containers(ml_image.store) == []
