"""The real Apptainer the tests run hpcshim against.

Which one: $HPCSHIM_TEST_APPTAINER (an `apptainer` executable, or the prefix
or bin directory holding one), else the build scripts/apptainer.sh made in
its cache (1.1.9 from the project's shared kit). Where neither is there the
Apptainer tests skip and say how to get one; when scripts/test.sh ran the
build (MINICT_APPTAINER_REQUIRED=1), a missing one is a failure instead.

Each test gets an environment with the runtime first on PATH and
Apptainer's own cache and temp dir under its tmp_path (APPTAINER_CACHEDIR,
APPTAINER_TMPDIR): its SIF conversions of archives stay out of /root.
"""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

HOW_TO_GET_IT = ("no Apptainer for the tests: run `sudo scripts/apptainer.sh` (it needs the project's "
                 "build kit in ../shared/apptainer or $HPCSHIM_APPTAINER_KIT), or install Apptainer 1.x "
                 "(README.md, \"Apptainer\") and set HPCSHIM_TEST_APPTAINER to its `apptainer`")


@dataclass
class Apptainer:
    exe: Path            # .../bin/apptainer
    version: str         # "apptainer version 1.1.9"

    @property
    def bindir(self) -> Path:
        return self.exe.parent

    def env(self, base: dict, scratch: Path) -> dict:
        """`base` with this Apptainer first on PATH and its cache and temp dir in `scratch`."""
        cache, tmp = scratch / "apptainer-cache", scratch / "apptainer-tmp"
        cache.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return dict(base, PATH=f"{self.bindir}:{base.get('PATH', '/usr/bin:/bin')}",
                    APPTAINER_CACHEDIR=str(cache), APPTAINER_TMPDIR=str(tmp))


def given() -> Path | None:
    """$HPCSHIM_TEST_APPTAINER's apptainer (ValueError if it names none), or None."""
    value = os.environ.get("HPCSHIM_TEST_APPTAINER")
    if not value:
        return None
    path = Path(value)
    for candidate in (path, path / "apptainer", path / "bin" / "apptainer"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ValueError(f"HPCSHIM_TEST_APPTAINER={value} holds no apptainer executable")


def built() -> Path | None:
    """The apptainer scripts/apptainer.sh built, or None."""
    found = subprocess.run([str(REPO / "scripts/apptainer.sh"), "--print-dir"], capture_output=True, text=True)
    prefix = Path(found.stdout.strip())
    if found.returncode != 0 or not (prefix / "READY").exists():
        return None
    return prefix / "bin" / "apptainer"


def find_apptainer() -> Apptainer:
    """The Apptainer to test with, or skip (fail under scripts/test.sh)."""
    try:
        exe = given() or built()
    except ValueError as exc:
        pytest.fail(str(exc))
    if exe is None:
        if os.environ.get("MINICT_APPTAINER_REQUIRED") == "1":
            pytest.fail("scripts/test.sh built Apptainer, yet it is not there: " + HOW_TO_GET_IT)
        pytest.skip(HOW_TO_GET_IT)
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return Apptainer(exe, version)
