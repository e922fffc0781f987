"""The OCI runtime-tools validator, for tests that check a config.json (or
a state answer) against a reading of the runtime spec that is not ours: the
library behind `oci-runtime-tool validate`, packaged by Debian
(golang-github-opencontainers-runtime-tools-dev), run by the small Go
program in validate_bundle/, which the session builds first (Go's own build
cache makes later sessions quick).

tests/conftest.py's `oci_validator` fixture is the program, built;
`findings(oci_validator, BUNDLE)` / `findings(oci_validator, "--state", FILE)`
what it says."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent / "validate_bundle"
GOPATH = "/usr/share/gocode"     # Debian's Go libraries; GOPATH mode needs no module proxy

# What the validator says of every bundle of ours, and why we let it:
ACCEPTED = (
    # Debian's runtime-tools checks against its own spec version (1.0.2-dev)
    # only; minict-oci writes the release it implements, 1.0.2.
    "semver: validate currently only handles version",
    # root.path "SHOULD" be "rootfs" beside config.json; an engine's bundle
    # names its overlay's merged directory (podman's does too).
    "root: path name should be the conventional 'rootfs'",
)


def build(directory: Path) -> str:
    """validate_bundle/main.go built into `directory`; its path."""
    sources = Path(GOPATH, "src/github.com/opencontainers/runtime-tools")
    if not shutil.which("go") or not sources.is_dir():
        pytest.fail("Go or Debian's runtime-tools sources are missing: run ./scripts/setup.sh")
    program = directory / "validate-bundle"
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH)
    built = subprocess.run(["go", "build", "-o", str(program), "main.go"], cwd=SOURCE, env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    return str(program)


def findings(validator: str, *args, cwd=None) -> list[str]:
    """What the validator found, a line each, less the ACCEPTED ones."""
    checked = subprocess.run([validator, *map(str, args)], capture_output=True, text=True,
                             timeout=60, cwd=cwd)
    assert checked.returncode in (0, 1), checked.stderr
    found = checked.stdout.splitlines()
    assert (checked.returncode == 1) == bool(found), checked
    return [line for line in found if not line.startswith(ACCEPTED)]
