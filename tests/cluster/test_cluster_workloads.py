"""The course material's distributed jobs across the two-node cluster
(scripts/cluster.sh), in containers through hpcshim: PyTorch DDP with 2
nodes x 2 ranks (gloo) and an MPI allreduce with srun --mpi=pmix -N2 -n4.
The rank on node2 reaches node1 over the cluster's bridge, as on a real
cluster's network."""

import re
import subprocess

import pytest

from tests.workload.conftest import BIN, EXAMPLES
from tests.workload.conftest import ml_image  # noqa: F401,F811  (the workload tier's ML image)

pytestmark = [pytest.mark.root, pytest.mark.workload, pytest.mark.slow]

RANK_LINE = re.compile(r"^rank (\d)/(\d) local_rank (\d) master (\S+) test_accuracy (\S+) "
                       r"weights (\w+)$", re.M)
MPI_LINE = re.compile(r"^rank (\d)/(\d) on (\S+): allreduce sum=(\d+) expected=(\d+) (OK|WRONG)$",
                      re.M)


def sbatch(script, env, tmp_path, *flags, timeout=600) -> str:
    out = tmp_path / "job.out"
    result = subprocess.run(["sbatch", "--wait", *flags, "-o", str(out), script.name],
                            cwd=script.parent, env=env, capture_output=True, text=True,
                            timeout=timeout)
    log = out.read_text() if out.exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- job output:\n{log[-4000:]}"
    return log


@pytest.fixture
def job_env(cluster, ml_image):   # noqa: F811
    _, env, _ = cluster
    env = dict(env, PATH=f"{BIN}:{env['PATH']}", IMAGE=str(ml_image.chrun), RUNTIME="ch-run")
    # gloo finds its own address from the hostname, which nothing here
    # resolves: name the node's interface instead (as on many clusters).
    env["GLOO_SOCKET_IFNAME"] = "eth0"
    return env


def test_ddp_two_nodes_two_ranks_each(job_env, tmp_path):
    log = sbatch(EXAMPLES / "slurm-ddp" / "ddp.sbatch", job_env, tmp_path, "--nodes=2",
                 "--ntasks-per-node=2", "--ntasks=4")
    assert "rendezvous at 10.77.0.11:" in log                 # node1's NodeAddr
    ranks = sorted(RANK_LINE.findall(log))
    assert [r[:2] for r in ranks] == [(str(i), "4") for i in range(4)], log[-4000:]
    assert sorted(r[2] for r in ranks) == ["0", "0", "1", "1"]   # LOCAL_RANK per node
    assert len({r[5] for r in ranks}) == 1, f"ranks ended with different weights: {ranks}"
    assert all(float(r[4]) >= 0.90 for r in ranks), ranks


def test_mpi_allreduce_across_nodes(job_env, tmp_path):
    log = sbatch(EXAMPLES / "mpi" / "allreduce.sbatch", job_env, tmp_path, "--nodes=2",
                 "--ntasks-per-node=2", "--ntasks=4", timeout=300)
    lines = sorted(MPI_LINE.findall(log))
    # sum of ranks 0..3 plus 4 (each adds rank+1): 1+2+3+4 = 10
    assert [(r[0], r[1], r[5]) for r in lines] == [(str(i), "4", "OK") for i in range(4)], log
    assert {r[2] for r in lines} == {"node1", "node2"}


def test_torchrun_one_container_per_node(job_env, tmp_path):
    """The ZIH material's shape: one container per node, torchrun --nnodes 2
    --nproc_per_node 2 inside each, rendezvous from Slurm's variables."""
    log = sbatch(EXAMPLES / "slurm-ddp" / "torchrun-nodes.sbatch", job_env, tmp_path)
    assert "2 nodes x 2 ranks, rendezvous at 10.77.0.11:" in log
    ranks = sorted(RANK_LINE.findall(log))
    assert [r[:2] for r in ranks] == [(str(i), "4") for i in range(4)], log[-4000:]
    assert sorted(r[2] for r in ranks) == ["0", "0", "1", "1"]
    assert len({r[5] for r in ranks}) == 1, f"ranks ended with different weights: {ranks}"
