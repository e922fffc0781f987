"""examples/horovod/hvd.sbatch across the two-node cluster (scripts/cluster.sh):
the Horovod episode's `srun --mpi=pmix -N2 -n4`, four ranks, two per node,
each in its own ch-run container started by `hpcshim exec --cleanenv`,
Horovod (PyTorch, Open MPI) all-reducing every gradient over the cluster's
bridge. All four must end with bit-identical weights, though each seeded
its model differently (rank 0's broadcast), and reach the accuracy floor."""

import re
import subprocess

import pytest

from tests.workload.conftest import BIN, EXAMPLES
from tests.workload.test_horovod import hvd_image, trained_ranks  # noqa: F401  (the Horovod image fixture)

pytestmark = [pytest.mark.root, pytest.mark.workload, pytest.mark.slow]


def test_horovod_two_nodes_two_ranks_each(cluster, hvd_image, tmp_path):  # noqa: F811
    _, env, _ = cluster
    env = dict(env, PATH=f"{BIN}:{env['PATH']}", IMAGE=str(hvd_image.chrun), RUNTIME="ch-run")
    out = tmp_path / "job.out"
    script = EXAMPLES / "horovod" / "hvd.sbatch"
    result = subprocess.run(["sbatch", "--wait", "-o", str(out), script.name], cwd=script.parent, env=env,
                            capture_output=True, text=True, timeout=480)
    log = out.read_text() if out.exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- job output:\n{log[-4000:]}"
    assert re.search(r"^job \d+: 4 ranks on 2 nodes \(node\[1-2\]\)$", log, re.M), log[-4000:]
    initial = re.findall(r"^rank (\d)/4 local_rank (\d) ", log, re.M)
    assert sorted(local for _, local in initial) == ["0", "0", "1", "1"], log[-4000:]   # two per node
    trained_ranks(log, 4)
