"""What the build-your-own track's tests share: run `check.sh` the way a
student does, and see that it left nothing behind.

Each run gets its own TMPDIR (the check's mktemp -d lands there) and its
own BYO_TAG (the check names its temp dir and its commands' $0 with it), so
"nothing left" means exactly: no mount under the test's tmp dir, the TMPDIR
empty again, no process whose command line holds the tag.
"""

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRACK = REPO / "examples/build-your-own"


@dataclass
class CheckRun:
    code: int
    out: str
    tag: str

    def lines(self, prefix: str) -> list[str]:
        return [line.strip() for line in self.out.splitlines() if line.strip().startswith(prefix)]

    def hint_after(self, what: str) -> str:
        """The hint printed under the check line that starts with `check: WHAT`."""
        lines = self.out.splitlines()
        for i, line in enumerate(lines):
            if line.startswith(f"check: {what}") and i + 1 < len(lines):
                return lines[i + 1].strip()
        raise AssertionError(f"no check line 'check: {what}' in:\n{self.out}")


def mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


def processes_with(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def tree_digest(path: Path) -> str:
    """lib.sh's tree_digest, the same one the checks use."""
    return subprocess.run(["bash", "-c", '. "$1/checks/lib.sh"; tree_digest "$2"', "_",
                           str(TRACK), str(path)],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def run_check(tmp_path):
    """run_check(LEVEL, FILE=None, image=None) -> CheckRun: check.sh as a student runs it
    (FILE relative to the track; None: the untouched skeleton), then asserts it left
    nothing behind."""
    def run(level: int, file: str | None = None, image: Path | None = None) -> CheckRun:
        tag = f"test-{uuid.uuid4().hex[:10]}"
        scratch = tmp_path / f"tmp-{tag}"
        scratch.mkdir()
        env = dict(os.environ, TMPDIR=str(scratch), BYO_TAG=tag)
        env.pop("MINICT_EXPLAIN", None)
        if image is not None:
            env["BYO_IMAGE"] = str(image)
        args = [str(TRACK / "check.sh"), str(level)] + ([str(TRACK / file)] if file else [])
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        out = result.stdout + result.stderr
        assert not mounts_under(tmp_path), f"mounts left: {mounts_under(tmp_path)}\n{out}"
        assert not list(scratch.iterdir()), f"temp files left: {list(scratch.iterdir())}\n{out}"
        assert not processes_with(tag), f"processes left: {processes_with(tag)}\n{out}"
        return CheckRun(result.returncode, out, tag)
    return run


@pytest.fixture(scope="module")
def byo_image(tmp_path_factory) -> Path:
    """One busybox image directory for a module's checks (BYO_IMAGE); each test compares
    its tree_digest before and after."""
    from tests.helpers.busybox import build_busybox_rootfs
    return build_busybox_rootfs(tmp_path_factory.mktemp("byo-image") / "rootfs")
