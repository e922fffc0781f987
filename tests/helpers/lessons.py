"""Run a lesson's walk-through as a student would, and check what every lesson promises."""

import subprocess
from pathlib import Path

from tests.runtime.conftest import MINICT, container_dirs, make_env, mount_table

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_walkthrough(lesson: str, tmp_path: Path, min_checks: int) -> str:
    """Run examples/<lesson>/walkthrough.sh with a minict root of its own;
    assert its checks all passed (at least `min_checks` of them) and that
    it left no container and no mount. Returns what it printed."""
    env = make_env(tmp_path / "root", tmp_path / "state")
    env["MINICT"] = MINICT
    mounts = mount_table()
    result = subprocess.run([str(EXAMPLES / lesson / "walkthrough.sh")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    assert "FAILED" not in out and out.rstrip().endswith("all checks passed")
    assert out.count("check: ") >= min_checks
    assert container_dirs(tmp_path / "root") == []
    assert mount_table() == mounts
    return out


def readme_and_script(lesson: str) -> tuple[str, str]:
    return ((EXAMPLES / lesson / "README.md").read_text(),
            (EXAMPLES / lesson / "walkthrough.sh").read_text())
