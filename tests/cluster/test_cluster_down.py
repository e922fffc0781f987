"""scripts/cluster.sh down leaves nothing: no process, link, mount or file
outside its directory (a module of its own: the cluster of test_cluster.py
is down by then, and the bridge's name is the cluster's)."""

import json
import subprocess

import pytest

from .conftest import CLUSTER, cluster_cmd

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_down_leaves_nothing(tmp_path):
    directory = tmp_path / "c"
    assert cluster_cmd(directory, "up", "1").returncode == 0
    pids = json.loads((directory / "pids.json").read_text())
    assert cluster_cmd(directory, "down").returncode == 0
    assert not directory.exists()
    for pid in pids.values():
        try:
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            pass
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "mct-" not in links
    with open("/proc/self/mountinfo") as f:
        assert str(directory) not in f.read()


def test_down_leaves_a_bridge_it_did_not_make(tmp_path):
    """A bridge of the same name that this cluster did not make (another
    cluster's, in another directory) stays: in a network namespace of the
    test's own, so the host's links are not touched."""
    script = (f"ip link add mct-cluster type bridge && "
              f"MINICT_CLUSTER_DIR={tmp_path / 'none'} {CLUSTER} down; "
              f"ip -o link show mct-cluster")
    result = subprocess.run(["unshare", "--net", "sh", "-c", script], capture_output=True,
                            text=True, timeout=60)
    assert "mct-cluster" in result.stdout, result.stderr
    assert "no cluster in" in result.stderr
