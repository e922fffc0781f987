"""An OCI runtime driven by a real containerd through `ctr run --runc-binary`.

Each test starts a private containerd (tests/helpers/containerd.py: its own
config, root, state and socket under tmp_path, in a mount namespace where
the cgroup filesystems are read-only) and imports a busybox image into it.

The runtime comes from the `oci_runtime` fixture. Today that is runc, with
`--rootless true` added by the wrapper script (so that runc skips the
cgroups it cannot make in that namespace); a runc-compatible runtime of
ours is added as one more entry in RUNTIMES, e.g.
    OciRuntime("minict-oci", str(VENV_BIN / "minict-oci"))
"""

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.containerd import (ProcessId, _cmdline, _stat, command_of, containerd_missing,
                                      mounts_under, private_containerd)
from tests.helpers.waiting import wait_for

VENV_BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(bool(containerd_missing()), reason=containerd_missing() or ""),
]


@dataclass(frozen=True)
class OciRuntime:
    name: str
    binary: str
    extra_args: tuple[str, ...] = ()


RUNTIMES = [
    pytest.param(OciRuntime("runc", "/usr/sbin/runc", ("--rootless", "true")), id="runc"),
    pytest.param(OciRuntime("minict-oci", str(VENV_BIN / "minict-oci")), id="minict-oci"),
]


@pytest.fixture(params=RUNTIMES)
def oci_runtime(request) -> OciRuntime:
    runtime = request.param
    if not os.access(runtime.binary, os.X_OK):
        pytest.skip(f"{runtime.binary} missing: run scripts/setup.sh")
    return runtime


@pytest.fixture
def containerd(tmp_path):
    with private_containerd(tmp_path / "cd") as cd:
        yield cd


@pytest.fixture
def image(containerd) -> str:
    return containerd.import_busybox()


@pytest.fixture
def runtime(containerd, oci_runtime):
    """The --runc-binary: a wrapper that records each call's argv."""
    return containerd.runtime_wrapper(oci_runtime.name, oci_runtime.binary,
                                      oci_runtime.extra_args)


def test_run_rm_prints_hi(containerd, image, runtime):
    result = containerd.run(runtime.path, image, "echo1", "echo", "hi")
    assert (result.returncode, result.stdout, result.stderr) == (0, "hi\n", "")
    assert containerd.tasks() == {} and containerd.containers() == []
    assert containerd.namespace_mounts() == []


def test_exit_status_comes_back(containerd, image, runtime):
    result = containerd.run(runtime.path, image, "exit7", "sh", "-c", "echo out; exit 7")
    assert (result.returncode, result.stdout) == (7, "out\n")


def test_detached_run_and_exec(containerd, image, runtime):
    containerd.run_detached(runtime.path, image, "sleeper", "sleep", "600")
    task = containerd.tasks()["sleeper"]
    assert task["status"] == "RUNNING"
    # the container's init was left to the shim: its parent is containerd-shim-runc-v2
    parent = _stat(task["pid"])[0]
    assert "containerd-shim-runc-v2" in _cmdline(parent)
    assert " -id sleeper " in _cmdline(parent)

    result = containerd.exec("sleeper", "e1", "sh", "-c",
                             "grep ^ID= /etc/os-release; tr '\\0' ' ' < /proc/1/cmdline")
    assert result.returncode == 0, result.stderr
    # the image's os-release, and pid 1 of the container's own pid namespace
    assert result.stdout == "ID=busybox\nsleep 600 "
    assert containerd.tasks()["sleeper"]["status"] == "RUNNING"


def test_kill_and_delete_leave_no_task(containerd, image, runtime):
    containerd.run_detached(runtime.path, image, "victim", "sleep", "600")
    pid = ProcessId.of(containerd.tasks()["victim"]["pid"])
    assert containerd.namespace_mounts() != []       # the rootfs (a snapshot mount)
    containerd.kill("victim", "SIGKILL")
    containerd.wait_stopped("victim")
    assert not pid.alive()
    containerd.delete_task("victim")
    assert containerd.tasks() == {}
    containerd.delete_container("victim")
    assert containerd.containers() == []
    assert containerd.namespace_mounts() == []
    shims = [p for p in containerd.processes() if "containerd-shim" in _cmdline(p)]
    assert shims == []


def test_shim_command_lines(containerd, image, runtime):
    """What containerd's shim asks of a runc-compatible runtime (the contract)."""
    containerd.run_detached(runtime.path, image, "argv1", "sleep", "600")
    containerd.exec("argv1", "x1", "true", check=True)
    containerd.kill("argv1", "SIGKILL")
    containerd.wait_stopped("argv1")
    containerd.delete_task("argv1")
    calls = runtime.calls()
    assert [command_of(argv) for argv in calls] == \
        ["create", "start", "exec", "kill", "delete", "delete"]
    bundle = containerd.workdir / "state/io.containerd.runtime.v2.task/minict-test/argv1"
    common = ["--root", f"{containerd.runc_root}/minict-test", "--log", f"{bundle}/log.json",
              "--log-format", "json"]
    assert all(argv[:6] == common for argv in calls)
    create, start, exec_, kill, delete, forced = (argv[6:] for argv in calls)
    assert create == ["create", "--bundle", str(bundle), "--pid-file", f"{bundle}/init.pid",
                      "argv1"]
    assert start == ["start", "argv1"]
    assert exec_[0] == "exec" and exec_[1] == "--process"
    assert exec_[3:] == ["--detach", "--pid-file", f"{bundle}/x1.pid", "argv1"]
    assert kill == ["kill", "argv1", "9"]
    assert delete == ["delete", "argv1"]
    assert forced == ["delete", "--force", "argv1"]


def test_nothing_left_after_exit(tmp_path, oci_runtime):
    workdir = tmp_path / "cd"
    host_run_containerd = Path("/run/containerd").exists()
    with private_containerd(workdir) as cd:
        image = cd.import_busybox()
        runtime = cd.runtime_wrapper(oci_runtime.name, oci_runtime.binary, oci_runtime.extra_args)
        cd.run_detached(runtime.path, image, "left1", "sleep", "600")
        cd.run_detached(runtime.path, image, "left2", "sleep", "600")
        assert cd.run(runtime.path, image, "done", "true").returncode == 0
        assert len(cd.namespace_mounts()) == 2
        # containerd, two shims, two containers (the --rm one's shim exits on its own)
        wait_for(lambda: len(cd.processes()) == 5, 10, "the --rm container's shim to exit")
        ours = {ProcessId.of(p) for p in cd.processes()} - {None}
    assert cd.forced == []          # the tasks were stopped through ctr, no SIGKILL needed
    assert [p for p in ours | cd.seen if p.alive()] == []
    assert cd.launcher.returncode == 0
    assert mounts_under(workdir) == []
    assert not any(str(workdir) in _cmdline(int(p)) for p in os.listdir("/proc") if p.isdigit())
    # shim sockets and FIFOs went to workdir/run, bound over /run in the namespace
    assert Path("/run/containerd").exists() == host_run_containerd
    assert list((workdir / "run/containerd").iterdir()) != []


def test_cleanup_after_the_daemon_died(tmp_path, oci_runtime):
    """A containerd that died under a running container: its shim, the
    container and the snapshot mount are still cleaned up."""
    workdir = tmp_path / "cd"
    with private_containerd(workdir) as cd:
        image = cd.import_busybox()
        runtime = cd.runtime_wrapper(oci_runtime.name, oci_runtime.binary, oci_runtime.extra_args)
        cd.run_detached(runtime.path, image, "orphan", "sleep", "600")
        ours = {ProcessId.of(p) for p in cd.processes()} - {None}
        os.kill(cd.daemon.pid, signal.SIGKILL)
        # (SIGKILL lands a moment later: cleanup must find the daemon dead)
        wait_for(lambda: not cd.daemon.alive(), 10, what="containerd killed")
    assert any(f.startswith("SIGKILL") for f in cd.forced)
    assert any(f.startswith("umount ") for f in cd.forced)
    assert [p for p in ours if p.alive()] == []
    assert mounts_under(workdir) == []
