"""Optional and heavy dependencies are imported only by what needs them:
hpcshim's discovery by the GPU flags (test_gpu_plan.py), the registry
client (requests) by a pull, pyroute2 by a container on a network. A run
that needs none of them must work where they are missing."""

import pytest

from tests.helpers.probe import probe_run

NOT_FOR_A_PLAIN_RUN = {"requests", "urllib3", "pyroute2", "hpcshim", "minicontainer.image.pull",
                       "minicontainer.image.registry", "minicontainer.runtime.gpu"}


@pytest.mark.root
@pytest.mark.vmtier
def test_a_plain_run_imports_no_optional_dependency(mt, tmp_path):
    report = probe_run(["run", "--rm", "--network", "none", "busybox", "true"], mt.env,
                       tmp_path / "probe.json")
    loaded = set(report["modules"])
    assert {"minicontainer.runtime.lifecycle", "prctl", "seccomp"} <= loaded   # the probe works
    assert sorted(NOT_FOR_A_PLAIN_RUN & loaded) == []
    networked = probe_run(["run", "--rm", "busybox", "true"], mt.env, tmp_path / "net.json")
    assert "pyroute2" in networked["modules"]                 # the bridge network uses it
