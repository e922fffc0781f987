"""The escape image: busybox plus escape-probe (probe.c), a static program
that makes one system call per attempt and prints "ok" or the errno name.

Attempts are judged against root on the host itself (`host_answer`):
`--privileged` should do what host root can, a default container must be
refused. Where the host's own sandbox refuses root too, the privileged run
shows that and the default one is still checked to be refused.
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runtime.conftest import Minict, make_env, minict_cmd

PROBE_SOURCE = Path(__file__).with_name("probe.c")
PROBE_IN_IMAGE = "/usr/local/bin/escape-probe"


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "escape-probe"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(PROBE_SOURCE)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="session")
def escape_root(tmp_path_factory, busybox_rootfs, probe_binary) -> Path:
    """A store root holding escape:latest (busybox + escape-probe)."""
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = tmp_path_factory.mktemp("escape")
    rootfs = base / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    (rootfs / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(probe_binary, rootfs / PROBE_IN_IMAGE.lstrip("/"))
    root = base / "root"
    minict_cmd(make_env(root, base / "import-state"), "import", "-c", 'CMD ["sh"]', rootfs,
               "escape:latest", check=True)
    return root


@pytest.fixture
def box(escape_root, tmp_path) -> Minict:
    """minict with the escape image and a state dir of this test's own."""
    return Minict(escape_root, tmp_path / "state")


@pytest.fixture
def host_answer(probe_binary):
    """What root on this host gets for the same attempt."""
    def answer(*args) -> str:
        return subprocess.run([str(probe_binary), *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    return answer
