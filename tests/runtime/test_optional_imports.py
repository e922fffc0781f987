"""Optional and heavy dependencies are imported only by what needs them:
hpcshim's discovery by the GPU flags (test_gpu_plan.py), the registry
client (requests) by a pull, pyroute2 by nothing `minict run` does yet.
A plain run must work where they are missing or slow to load."""

import pytest

from tests.helpers.probe import probe_run

NOT_FOR_A_PLAIN_RUN = {"requests", "urllib3", "pyroute2", "hpcshim", "minicontainer.image.pull",
                       "minicontainer.image.registry", "minicontainer.runtime.gpu"}


@pytest.mark.root
@pytest.mark.vmtier
def test_a_plain_run_imports_no_optional_dependency(mt, tmp_path):
    report = probe_run(["run", "--rm", "busybox", "true"], mt.env, tmp_path / "probe.json")
    loaded = set(report["modules"])
    assert {"minicontainer.runtime.lifecycle", "prctl", "seccomp"} <= loaded   # the probe works
    assert sorted(NOT_FOR_A_PLAIN_RUN & loaded) == []
