"""The namespaces-and-overlay lesson runs as written and its checks pass."""

import re

import pytest

from tests.helpers.lessons import readme_and_script, run_walkthrough

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    out = run_walkthrough("namespaces-and-overlay", tmp_path, min_checks=10)
    # the narration shown by the lesson comes from the real calls
    assert "engine: A new network namespace for the container" in out
    assert "runtime: A new PID namespace for the next child (it will be PID 1 there): " \
           "unshare(CLONE_NEWPID)" in out and 'pivot_root(".", ".")' in out
    # config.json names the plugged network namespace by the fd minict holds; init joins it
    assert re.search(r"runtime: Join the network namespace at (/proc/\d+/fd/\d+): "
                     r"setns\(\1, CLONE_NEWNET\)", out), out
    assert "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)" in out
    assert "seccomp(SECCOMP_SET_MODE_FILTER, 0, {EPERM for " in out


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script("namespaces-and-overlay")
    for flag in ("--hostname lesson", "--net host", "--explain", "inspect", "UpperDir",
                 "--security-opt seccomp=unconfined", "unshare -U"):
        assert flag in readme and flag in script, flag
