"""The namespaces-and-overlay lesson runs as written and its checks pass."""

import subprocess
from pathlib import Path

import pytest

from tests.runtime.conftest import MINICT, container_dirs, make_env, mount_table

pytestmark = [pytest.mark.root, pytest.mark.slow]

LESSON = Path(__file__).resolve().parents[2] / "examples/namespaces-and-overlay"


def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    env = make_env(tmp_path / "root", tmp_path / "state")
    env["MINICT"] = MINICT
    mounts = mount_table()
    result = subprocess.run([str(LESSON / "walkthrough.sh")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    assert "FAILED" not in out and out.rstrip().endswith("all checks passed")
    assert out.count("check: ") >= 10
    # the narration shown by the lesson comes from the real calls
    assert "unshare(CLONE_NEWPID|CLONE_NEWNET)" in out and 'pivot_root(".", ".")' in out
    assert "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)" in out
    assert "seccomp(SECCOMP_SET_MODE_FILTER, 0, {EPERM for " in out
    # the lesson tidies up after itself
    assert container_dirs(tmp_path / "root") == []
    assert mount_table() == mounts


def test_readme_names_only_commands_the_walkthrough_runs():
    readme = (LESSON / "README.md").read_text()
    script = (LESSON / "walkthrough.sh").read_text()
    for flag in ("--hostname lesson", "--net host", "--explain", "inspect", "UpperDir",
                 "--security-opt seccomp=unconfined", "unshare -U"):
        assert flag in readme and flag in script, flag
