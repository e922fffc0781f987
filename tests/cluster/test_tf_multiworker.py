"""examples/tf-distribute/multiworker.sbatch across the two-node cluster
(scripts/cluster.sh): MultiWorkerMirroredStrategy with one worker per node,
each in a ch-run container started by `hpcshim exec --cleanenv`, TensorFlow's
SlurmClusterResolver finding the workers from the SLURM_* variables that
hpcshim keeps. Both workers must end with bit-identical weights (every
update is the same all-reduced gradient) and reach the example's accuracy."""

import re
import subprocess

import pytest

from tests.workload.conftest import BIN, EXAMPLES
from tests.workload.test_tensorflow import VERSION, tf_image  # noqa: F401  (the TensorFlow image fixture)

pytestmark = [pytest.mark.root, pytest.mark.workload, pytest.mark.slow]

WORKER_LINE = re.compile(r"^worker (\d)/(\d) final test_accuracy (\S+) weights (\w+) tensorflow (\S+)$", re.M)


def sbatch(script, env, tmp_path) -> str:
    """sbatch --wait SCRIPT from its own directory; the job's output."""
    out = tmp_path / "job.out"
    result = subprocess.run(["sbatch", "--wait", "-o", str(out), script.name], cwd=script.parent, env=env,
                            capture_output=True, text=True, timeout=480)
    log = out.read_text() if out.exists() else ""
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n--- job output:\n{log[-4000:]}"
    return log


def test_multiworker_mirrored_two_nodes(cluster, tf_image, tmp_path):  # noqa: F811
    _, env, _ = cluster
    env = dict(env, PATH=f"{BIN}:{env['PATH']}", IMAGE=str(tf_image.chrun), RUNTIME="ch-run")
    log = sbatch(EXAMPLES / "tf-distribute" / "multiworker.sbatch", env, tmp_path)
    # Both nodes' addresses, as Slurm knows them, turned the resolver's node names into addresses.
    assert re.search(r"^job \d+: 2 workers on port \d+ \(node1=10\.77\.0\.11,node2=10\.77\.0\.12\)$", log, re.M), log
    assert re.search(r"^worker 0/2 cluster 10\.77\.0\.11:(\d+),10\.77\.0\.12:\1$", log, re.M), log[-4000:]
    workers = sorted(WORKER_LINE.findall(log))
    assert [w[:2] for w in workers] == [("0", "2"), ("1", "2")], log[-4000:]
    assert workers[0][3] == workers[1][3], f"the workers ended with different weights: {workers}"
    assert all(float(w[2]) >= 0.90 and w[4] == VERSION for w in workers), workers


def test_the_horovod_job_with_tensorflows_own_api(cluster, tf_image, tmp_path):  # noqa: F811
    """examples/horovod/native.sbatch: the Horovod episode's srun --mpi=pmix -N2 -n4,
    four workers, two per node (Horovod itself does not build here: its README)."""
    _, env, _ = cluster
    env = dict(env, PATH=f"{BIN}:{env['PATH']}", IMAGE=str(tf_image.chrun), RUNTIME="ch-run")
    log = sbatch(EXAMPLES / "horovod" / "native.sbatch", env, tmp_path)
    # Two workers per node: the resolver gives the second one PORT+1.
    assert re.search(r"^worker 0/4 cluster 10\.77\.0\.11:(\d+),10\.77\.0\.11:\d+,10\.77\.0\.12:\1,10\.77\.0\.12:\d+$",
                     log, re.M), log[-4000:]
    workers = sorted(WORKER_LINE.findall(log))
    assert [w[:2] for w in workers] == [(str(i), "4") for i in range(4)], log[-4000:]
    assert len({w[3] for w in workers}) == 1, f"the workers ended with different weights: {workers}"
    assert all(float(w[2]) >= 0.90 for w in workers), workers
