"""scripts/cluster.sh: a real multi-node Slurm on one machine.

Two nodes, each a network, UTS and mount namespace of its own with its own
slurmd and its own fake GPUs (UUIDs per node), on a bridge of the
cluster's own; Debian's Slurm and munge. (The pytest session runs in a
network namespace of its own: the bridge and veths never reach the host's.)
"""

import os
import pty
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers.apptainer import find_apptainer
from tests.helpers.terminal import Terminal
from .conftest import cluster_cmd, srun

pytestmark = [pytest.mark.root, pytest.mark.slow]

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")


@pytest.fixture
def image(tmp_path, busybox_rootfs):
    """A copy: hpcshim makes its mount points (/.hpcshim) in a ch-run image
    directory, and the session's busybox rootfs is everyone's."""
    dest = tmp_path / "img"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    return dest


def test_up_prints_the_exports(cluster):
    directory, env, _ = cluster
    assert env["SLURM_CONF"] == str(directory / "slurm.conf")
    assert env["HPCSHIM_HOST_ROOT"] == str(directory / "gpu-host")


def test_srun_spreads_tasks_over_the_nodes(cluster):
    _, env, _ = cluster
    result = srun(env, "-N2", "--ntasks-per-node=2", "sh", "-c",
                  "echo $(hostname) $SLURM_NODEID $SLURM_PROCID $(ip -4 -o addr show eth0 | "
                  "awk '{print $4}')")
    assert result.returncode == 0, result.stderr
    rows = sorted(line.split() for line in result.stdout.splitlines())
    assert [(r[0], r[3]) for r in rows] == [("node1", "10.77.0.11/24")] * 2 + \
        [("node2", "10.77.0.12/24")] * 2
    assert sorted(r[2] for r in rows) == ["0", "1", "2", "3"]


@pytest.mark.parametrize("runtime", ["ch-run", "apptainer"])
def test_each_rank_gets_its_own_node_s_gpu(cluster, image, tmp_path, runtime):
    """srun -N2 --ntasks-per-node=2 --gres=gpu:2 hpcshim exec --gpu
    --gpu-bind=local-rank: the two ranks of a node get different GPUs, and
    each node's GPUs are its own (their UUIDs say which node)."""
    _, env, _ = cluster
    if runtime == "apptainer":
        env = find_apptainer().env(env, tmp_path)
    probe = ('echo "$(hostname) $SLURM_LOCALID $CUDA_VISIBLE_DEVICES '
             '$(nvidia-smi -L | grep "^GPU $CUDA_VISIBLE_DEVICES:" | sed "s/.*UUID: //; s/)//")"')
    result = srun(env, "-N2", "--ntasks-per-node=2", "--gres=gpu:2", HPCSHIM, "exec", "--gpu",
                  "--gpu-bind=local-rank", "--runtime", runtime, image, "sh", "-c", probe)
    assert result.returncode == 0, result.stderr
    rows = sorted(tuple(line.split()) for line in result.stdout.splitlines())
    assert rows == [
        ("node1", "0", "0", "GPU-00000001-1111-2222-3333-000000000000"),
        ("node1", "1", "1", "GPU-00000001-1111-2222-3333-000000000001"),
        ("node2", "0", "0", "GPU-00000002-1111-2222-3333-000000000000"),
        ("node2", "1", "1", "GPU-00000002-1111-2222-3333-000000000001"),
    ]


def test_a_second_up_is_refused(cluster):
    directory, _, _ = cluster
    again = cluster_cmd(directory, "up", "2")
    assert again.returncode != 0 and "up already" in again.stderr
    assert again.stderr.count("\n") == 1


class SrunTerminal(Terminal):
    """srun on the slave side of a pty: the test is the user at a terminal."""

    def __init__(self, env: dict, *args, rows=24, cols=80):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvpe("srun", ["srun", *map(str, args)], env)
        self.resize(rows, cols)
        self.seen = b""


def test_the_zih_interactive_line(cluster, image, tmp_path):
    """ZIH's `srun -p alpha --nodes 1 --ntasks-per-node 1 --ntasks 1
    --gres=gpu:1 --time=08:00:00 --pty --mem=50000 singularity shell --nv
    -B /data:/data/imagenet IMAGE`, with hpcshim shell --gpu in its place,
    under a real terminal."""
    _, env, _ = cluster
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.txt").write_text("imagenet stand-in\n")
    term = SrunTerminal(env, "-p", "alpha", "--nodes", "1", "--ntasks-per-node", "1",
                        "--ntasks", "1", "--gres=gpu:1", "--time=08:00:00", "--pty",
                        "--mem=50000", HPCSHIM, "shell", "--gpu", "--runtime", "ch-run",
                        "-B", f"{data}:/data/imagenet", image)
    try:
        out = term.run("cat /data/imagenet/labels.txt; echo CVD=$CUDA_VISIBLE_DEVICES; "
                       "echo P=$SLURM_JOB_PARTITION; tty; hostname")
        assert "imagenet stand-in" in out and "CVD=0" in out and "P=alpha" in out
        assert "/dev/pts/" in out and ("node1" in out or "node2" in out)
        term.type("exit 3\r")
        _, status = os.waitpid(term.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
    finally:
        os.close(term.fd)
        try:
            os.kill(term.pid, 9)
            os.waitpid(term.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
