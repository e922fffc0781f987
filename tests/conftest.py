"""Shared fixtures and the marker rules (see docs/ARCHITECTURE.md, "Tests").

Markers: unit, root, cgroup2, gpu, slow. A test that cannot run on this
machine is skipped with the reason; it never passes silently.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import runtime_tools
from tests.helpers.busybox import build_busybox_rootfs

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def _cgroup2_usable() -> str | None:
    """None when a cgroup v2 hierarchy with memory/pids/cpu is at /sys/fs/cgroup."""
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    if not controllers.exists():
        return "no cgroup v2 hierarchy at /sys/fs/cgroup (controllers held by v1); runs in the VM tier"
    have = set(controllers.read_text().split())
    missing = {"memory", "pids", "cpu"} - have
    if missing:
        return f"cgroup v2 lacks {sorted(missing)}; runs in the VM tier"
    return None


def _gpu_usable() -> str | None:
    if not Path("/dev/nvidiactl").exists() or not shutil.which("nvidia-smi"):
        return "no NVIDIA GPU on this machine"
    return None


def pytest_configure(config):
    """Run the tests in a network namespace of their own (as root).

    minict's containers are on a bridge by default, with NAT and published
    ports: a bridge (minict0), iptables rules and ip_forward on the machine
    they run on. The test suite keeps all of that in a network namespace
    it makes here, before any test runs, so the machine's own network is
    never changed; every process the tests start (minict, a registry,
    Slurm) inherits it. Only loopback is up in it, which is all the tests
    use: their traffic stays on it, or in namespaces they make themselves.

    Loopback also gets 192.0.2.1 (TEST-NET-1, never routed): glibc's
    getaddrinfo() with AI_ADDRCONFIG counts only non-loopback addresses, so
    with 127.0.0.1 alone slurmd finds no address family to bind to
    ("Unable to resolve (null)") and the Slurm tests could not start.
    """
    if os.geteuid() != 0 or os.environ.get("MINICT_TESTS_HOST_NETWORK") == "1":
        return
    from minicontainer import syscalls as sc
    kernel = sc.Kernel()
    kernel.unshare(sc.CLONE_NEWNET, "the tests' own network namespace")
    kernel.link_up("lo", "its loopback")
    kernel.add_address("lo", "192.0.2.1", 32, "an address glibc counts as configured")


def pytest_collection_modifyitems(config, items):
    is_root = os.geteuid() == 0
    cg_reason = _cgroup2_usable()
    gpu_reason = _gpu_usable()
    for item in items:
        if "root" in item.keywords and not is_root:
            item.add_marker(pytest.mark.skip(reason="needs root"))
        if "cgroup2" in item.keywords and cg_reason:
            item.add_marker(pytest.mark.skip(reason=cg_reason))
        if "gpu" in item.keywords and gpu_reason:
            item.add_marker(pytest.mark.skip(reason=gpu_reason))


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory) -> Path:
    """A read-only-by-convention busybox rootfs shared by the whole session."""
    return build_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(scope="session")
def oci_validator(tmp_path_factory) -> str:
    """The OCI runtime-tools validator, built (tests/helpers/runtime_tools.py)."""
    return runtime_tools.build(tmp_path_factory.mktemp("validate-bundle"))


@pytest.fixture
def no_cgroup_left_behind():
    """Fails the test if it leaves a container cgroup under /sys/fs/cgroup/minict
    (cgroup v2 tests only: on this host the tree is not there)."""
    from minicontainer.cgroups.hierarchy import container_cgroups
    root = Path("/sys/fs/cgroup")
    before = set(container_cgroups(root))
    yield
    left = set(container_cgroups(root)) - before
    assert not left, f"cgroups left behind: {sorted(map(str, left))}"


@pytest.fixture
def loop_device(tmp_path) -> str:
    """A 32 MiB loop block device (the io.max tests throttle writes to it);
    detached again afterwards. Needs root."""
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(32 << 20)
    dev = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                         capture_output=True, text=True).stdout.strip()
    yield dev
    subprocess.run(["losetup", "--detach", dev], check=True)


@pytest.fixture
def minict_root(tmp_path) -> Path:
    """A fresh store root for one test (never /var/lib/minict)."""
    root = tmp_path / "minict-root"
    root.mkdir()
    return root


@pytest.fixture
def minict_env(tmp_path, minict_root) -> dict:
    """Environment for running the `minict` command against temp roots."""
    state = tmp_path / "minict-state"
    env = dict(os.environ)
    env.update(MINICT_ROOT=str(minict_root), MINICT_STATE=str(state))
    env.pop("MINICT_EXPLAIN", None)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


@pytest.fixture
def minict(minict_env):
    """Run `minict ARGS...`; returns CompletedProcess (text, captured)."""

    def run(*args, input=None, check=False, timeout=120, env=None):
        e = dict(minict_env)
        if env:
            e.update(env)
        return subprocess.run([str(VENV_BIN / "minict"), *map(str, args)],
                              input=input, capture_output=True, text=True,
                              env=e, check=check, timeout=timeout)

    return run
