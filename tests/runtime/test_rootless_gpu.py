"""GPUs without root: `minict run --gpu-plan` and `hpcshim exec --runtime minict` as `nobody`.

In a user namespace mknod is refused, so each device node of the Plan is a
bind of the host's node (gpu.py, devices.bind_host_node), and --ipc host
stays in the host's IPC namespace. Checked for real, as in test_rootless.py:
the test process (root) builds hpcshim's fake driver tree (real mknod
nodes, gcc-built libraries, a real ld.so.cache) and a store owned by
nobody, then drops to nobody (65534) with setpriv for every command, and
looks from inside the container: the nodes and their numbers, a node that
opens (the numbers of /dev/null), the libraries, LD_LIBRARY_PATH, the
host's IPC namespace and /dev/shm, and that nothing is left afterwards.
"""

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hpcshim.backends import minict as minict_backend
from hpcshim.plan import DeviceNode as PlanDevice
from hpcshim.plan import Library, Plan
from minicontainer.errors import BadGpuPlan
from minicontainer.runtime.gpu import injection_from
from minicontainer.runtime.flags import Bind
from tests.helpers.images import busybox_image
from tests.hpcshim.drivertree import (
    DRIVER_VERSION,
    LIB64_DIR,
    LibraryStore,
    build_driver_tree,
)
from tests.runtime.conftest import mount_table

NOBODY = 65534
BIN = Path(sys.executable).parent
MINICT = str(BIN / "minict")
HPCSHIM = str(BIN / "hpcshim")
LIBCUDA = f"{LIB64_DIR}/libcuda.so.{DRIVER_VERSION}"


def as_nobody(env: dict, program: str, *args, timeout=60):
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
           "env", "-i", *[f"{k}={v}" for k, v in env.items()], program, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def make_node(path: Path, major: int, minor: int, mode: int) -> Path:
    """A character device node, made by root (the test process), owned by root."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | mode, os.makedev(major, minor))
    os.chmod(path, mode)   # mknod applies the umask
    return path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def home(busybox_rootfs):
    """nobody's world: a store with busybox:latest (loaded as nobody), a
    state dir, a discovery cache, and root's fake driver tree next to them."""
    if os.geteuid() != 0:
        pytest.skip("drops to nobody with setpriv, and mknods the fake driver tree: needs root")
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            "unshare", "-U", "-r", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are forbidden here: {probe.stderr!r}")
    # Not under pytest's tmp dir: /tmp/pytest-of-root is root's alone (0700).
    base = Path(tempfile.mkdtemp(prefix="minict-rootless-gpu-"))
    base.chmod(0o755)
    tree = build_driver_tree(base / "host", LibraryStore(base / "libs")).root
    archive = busybox_image(busybox_rootfs).write_docker_archive(base / "busybox.tar",
                                                                  ["busybox:latest"])
    for path in (base, archive):
        os.chown(path, NOBODY, NOBODY)
    env = {"PATH": f"{BIN}:{os.environ['PATH']}", "HOME": str(base),
           "MINICT_ROOT": str(base / "root"), "MINICT_STATE": str(base / "state"),
           "HPCSHIM_HOST_ROOT": str(tree), "HPCSHIM_CACHE_DIR": str(base / "cache")}
    loaded = as_nobody(env, MINICT, "load", "-i", archive)
    assert loaded.returncode == 0, loaded.stderr
    yield base, tree, env
    shutil.rmtree(base, ignore_errors=True)


def write_plan(base: Path, name: str, node: Path, major: int = 1, minor: int = 3) -> Path:
    """A Plan with one device (/dev/fakegpu0, host node `node`), the fake
    tree's libcuda and a variable, readable by nobody."""
    plan = Plan(vendor="nvidia", devices=[PlanDevice("/dev/fakegpu0", str(node), major, minor, 0o666)],
                libraries=[Library(str(base / "host" / LIBCUDA), "libcuda.so.1")],
                env={"CUDA_VISIBLE_DEVICES": "0"}, ld_library_path=["/.hpcshim/lib"])
    path = base / f"{name}.json"
    path.write_text(plan.to_json())
    return path


def processes_using(base: Path) -> list[int]:
    """nobody's processes started with this module's store in their
    environment (other tests may run their own processes as nobody meanwhile)."""
    pids = subprocess.run(["pgrep", "-u", str(NOBODY)], capture_output=True, text=True,
                          check=False).stdout.split()
    found = []
    for pid in map(int, pids):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue   # gone meanwhile
        if str(base).encode() in environ:
            found.append(pid)
    return found


def nothing_left(base: Path, mounts_before: list[str]) -> None:
    assert mount_table() == mounts_before
    containers = base / "root" / "containers"
    assert not containers.exists() or list(containers.iterdir()) == []
    assert not [p for p in (base / "state").rglob("*") if p.is_file() and "lock" not in str(p)]
    assert processes_using(base) == []


# ---- for real, as nobody ---------------------------------------------------------------------

def test_hpcshim_exec_gpu_as_nobody(home):
    base, tree, env = home
    mounts = mount_table()
    script = ("ls /dev | grep '^nvidia'; stat -c '%F %t:%T' /dev/nvidia3 /dev/nvidiactl; "
              "echo CUDA=$CUDA_VISIBLE_DEVICES LD=$LD_LIBRARY_PATH; "
              "md5sum /.hpcshim/lib/libcuda.so.1; id -u; exit 3")
    result = as_nobody({**env, "CUDA_VISIBLE_DEVICES": "2"}, HPCSHIM, "exec", "--gpu",
                       "--runtime", "minict", "busybox", "sh", "-c", script)
    assert result.returncode == 3, result.stdout + result.stderr   # the workload's own code
    assert result.stdout.splitlines() == [
        # GPU index 2 is /dev/nvidia3; no other GPU's node is in the container
        "nvidia-modeset", "nvidia-uvm", "nvidia-uvm-tools", "nvidia3", "nvidiactl",
        "character special file c3:3", "character special file c3:ff",   # 195 = 0xc3
        "CUDA=0 LD=/.hpcshim/lib",
        f"{md5(tree / LIBCUDA)}  /.hpcshim/lib/libcuda.so.1",
        "0",                                                 # root in there, nobody outside
    ]
    nothing_left(base, mounts)


def test_minict_gpu_flag_as_nobody(home):
    """--gpu: minict runs hpcshim's discovery itself, then binds the same way."""
    base, _, env = home
    mounts = mount_table()
    result = as_nobody(env, MINICT, "run", "--rm", "--gpu", "busybox", "sh", "-c",
                       "ls /dev | grep -c '^nvidia[0-9]'; test -c /dev/nvidiactl && echo ctl")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["4", "ctl"]
    nothing_left(base, mounts)


def test_bound_node_opens_and_ipc_is_the_hosts(home):
    """--gpu-plan with a node of /dev/null's numbers, so that opening it works
    here, and hpcshim's --network host --ipc host."""
    base, _, env = home
    node = make_node(base / "nodes" / "fakegpu", 1, 3, 0o666)
    plan = write_plan(base, "opens", node)
    marker = Path("/dev/shm") / f"minict-rootless-gpu-{os.getpid()}"
    marker.write_text("host\n")
    mounts = mount_table()
    try:
        result = as_nobody(env, MINICT, "--explain", "run", "--rm", "--network", "host",
                           "--ipc", "host", "--gpu-plan", plan, "busybox", "sh", "-c",
                           f"echo x > /dev/fakegpu0 && wc -c < /dev/fakegpu0; "
                           f"readlink /proc/self/ns/ipc; cat {marker}; echo LD=$LD_LIBRARY_PATH; "
                           f"test -f /.hpcshim/lib/libcuda.so.1 && echo lib")
    finally:
        marker.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == ["0", os.readlink("/proc/self/ns/ipc"), "host",
                                          "LD=/.hpcshim/lib", "lib"]
    assert f"Bind the host's device node {node} at /dev/fakegpu0" in result.stderr
    assert "No device controller without root" in result.stderr
    nothing_left(base, mounts)
    node.unlink()


@pytest.mark.parametrize("mode, numbers, words", [
    (0o600, (1, 3), "uid 65534 may not read and write"),      # root's own node
    (0o666, (195, 7), "is c 195:7, but its host node"),      # a stale plan
])
def test_a_node_that_cannot_be_bound_is_one_line(home, mode, numbers, words):
    base, _, env = home
    node = make_node(base / "nodes" / f"refused-{mode:o}", 1, 3, mode)
    plan = write_plan(base, f"refused-{mode:o}", node, *numbers)
    mounts = mount_table()
    result = as_nobody(env, MINICT, "run", "--rm", "--gpu-plan", plan, "busybox", "true")
    assert result.returncode == BadGpuPlan.exit_code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "/dev/fakegpu0" in result.stderr and str(node) in result.stderr and words in result.stderr
    nothing_left(base, mounts)
    node.unlink()


@pytest.mark.parametrize("flags", [["--privileged"], ["--pid", "host"],
                                   ["--ipc", "container:other"]])
def test_what_is_still_refused_is_one_line(home, flags):
    _, _, env = home
    result = as_nobody(env, MINICT, "run", "--rm", *flags, "busybox", "true")
    assert result.returncode == 27, result.stderr
    assert result.stderr.count("\n") == 1 and "without root" in result.stderr


# ---- unit: what the Plan becomes without root ---------------------------------------------------

@pytest.mark.unit
def test_without_root_devices_become_binds_of_the_host_nodes(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    plan = Plan(vendor="nvidia", devices=[PlanDevice("/dev/fake", "/dev/null", 1, 3, 0o666)])
    got = injection_from(plan)
    assert (got.devices, got.binds) == ([], [Bind("/dev/null", "/dev/fake", False)])
    not_a_node = tmp_path / "nvidia0"
    not_a_node.write_text("")
    with pytest.raises(BadGpuPlan, match="is c 195:0, but its host node .* is not a device node"):
        injection_from(Plan(vendor="nvidia",
                            devices=[PlanDevice("/dev/nvidia0", str(not_a_node), 195, 0, 0o666)]))
    assert minict_backend.delivery(plan)[0] == (
        "minict: 1 device node(s) bound from the host into the container's own /dev "
        "(no mknod without root) (no other GPU node is there)")
