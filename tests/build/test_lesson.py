"""The build lesson runs as written, its checks pass, and it leaves nothing."""

import pytest

from tests.helpers.lessons import readme_and_script, run_walkthrough

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    out = run_walkthrough("build", tmp_path, min_checks=10)
    assert "bin/.wh.vi" in out and "workspace/train.sh" in out
    assert (tmp_path / "root" / "tmp").is_dir() and not list((tmp_path / "root" / "tmp").iterdir())


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script("build")
    for text in ("build -t lesson-build:1", "build -t lesson-build:2", "tar -tvf",
                 "echo 'echo \"done training\"' >>", "image inspect", "blobs/sha256"):
        assert text in readme and text in script, text
