"""Run a lesson's walk-through as a student would, and check what every lesson promises."""

import os
import subprocess
from pathlib import Path

from tests.runtime.conftest import MINICT, container_dirs, make_env, mounts_under

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_walkthrough(lesson: str, tmp_path: Path, min_checks: int, owned_mounts=()) -> str:
    """Run examples/<lesson>/walkthrough.sh with a minict root and a TMPDIR of
    its own; assert its checks all passed (at least `min_checks` of them) and
    that it left no container and no mount of its own: none under tmp_path,
    none at the paths in `owned_mounts` (a network namespace it names). The
    rest of the host's mount table is not the lesson's: other containers may
    come and go meanwhile. Returns what it printed."""
    env = make_env(tmp_path / "root", tmp_path / "state")
    env["MINICT"] = MINICT
    env["TMPDIR"] = str(tmp_path / "tmp")          # its mktemp -d work dirs: ours too
    (tmp_path / "tmp").mkdir()
    owned = [tmp_path, *owned_mounts]
    mounts = mounts_under(*owned)
    result = subprocess.run([str(EXAMPLES / lesson / "walkthrough.sh")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    out = result.stdout
    assert "FAILED" not in out and out.rstrip().endswith("all checks passed")
    assert out.count("check: ") >= min_checks
    assert container_dirs(tmp_path / "root") == []
    assert mounts_under(*owned) == mounts
    return out


def readme_and_script(lesson: str) -> tuple[str, str]:
    return ((EXAMPLES / lesson / "README.md").read_text(),
            (EXAMPLES / lesson / "walkthrough.sh").read_text())


def processes_naming(text: str) -> list[str]:
    """Processes (other than this one) whose command line contains `text`:
    what a lesson started and must not leave running."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{entry} {cmdline}")
    return found
