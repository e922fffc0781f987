"""`--gpus` (docker's spelling) and the HPC course's `docker run` line, verbatim.

The course material runs

    docker run --gpus all --ipc=host --ulimit memlock=-1 --ulimit stack=67108864 \\
               -it --rm --network=host -v ~/ws:/workspace IMAGE jupyter-lab --ip=0.0.0.0 --port=8888

minict takes the same line. Here IMAGE is busybox with a `jupyter-lab`
that reports what it was given, the host is hpcshim's fake driver tree
(tests/hpcshim/drivertree.py) and the terminal is a real pty. Where minict
may not raise the memlock hard limit (no CAP_SYS_RESOURCE, as on the
development machine) the line is refused with one clear line; where it
may (the VM tier, as on a cluster node) it runs.
"""

import os
import shutil
import stat
from pathlib import Path

import pytest

from minicontainer.runtime.docker_flags import may_raise_hard_limits
from tests.helpers.terminal import terminal  # noqa: F401 - the fixture
from tests.runtime.conftest import Minict, container_dirs, mount_table
from tests.runtime.test_gpu_plan import gpu_host, one_line  # noqa: F401 - a fixture

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

JUPYTER_LAB = """#!/bin/sh
# Stands in for Jupyter: says what the container gave it.
echo "args: $*"
echo "memlock: $(ulimit -l)"
echo "stack: $(ulimit -s)"
echo "ipc: $(readlink /proc/self/ns/ipc)"
echo "net: $(readlink /proc/self/ns/net)"
echo "gpus: $(ls /dev | grep '^nvidia[0-9]' | tr '\\n' ' ')"
echo "library: $(ls /.hpcshim/lib | grep -c libcuda)"
echo "terminal: $(tty)"
cat /workspace/notebook.txt
"""

SEED_FLAGS = ["--gpus", "all", "--ipc=host", "--ulimit", "memlock=-1", "--ulimit", "stack=67108864",
              "-it", "--rm", "--network=host"]
SEED_COMMAND = ["jupyter-lab", "--ip=0.0.0.0", "--port=8888"]


@pytest.fixture(scope="module")
def lab_images(tmp_path_factory, busybox_rootfs) -> Path:
    """A store with busybox:latest and lab:latest (busybox + the jupyter-lab above)."""
    base = tmp_path_factory.mktemp("lab-images")
    rootfs = base / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    program = rootfs / "usr/local/bin/jupyter-lab"
    program.parent.mkdir(parents=True, exist_ok=True)
    program.write_text(JUPYTER_LAB)
    program.chmod(0o755 | stat.S_IFREG)
    m = Minict(base / "root", base / "state")
    m("import", "-c", 'CMD ["sh"]', busybox_rootfs, "busybox:latest", check=True)
    m("import", "-c", 'CMD ["jupyter-lab"]', rootfs, "lab:latest", check=True)
    return base / "root"


@pytest.fixture
def lab(lab_images, tmp_path, gpu_host) -> Minict:
    """minict on the lab store, the fake driver tree as the host, no GPU variables
    of the caller's, and a HOME with ~/ws holding a notebook."""
    m = Minict(lab_images, tmp_path / "state")
    for name in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS",
                 "GPU_DEVICE_ORDINAL", "SLURM_JOB_ID"):
        m.env.pop(name, None)
    home = tmp_path / "home"
    (home / "ws").mkdir(parents=True)
    (home / "ws" / "notebook.txt").write_text("notebook from the host\n")
    m.env.update(HPCSHIM_HOST_ROOT=str(gpu_host), HPCSHIM_CACHE_DIR=str(tmp_path / "shim-cache"),
                 HOME=str(home))
    return m


def seed_line(m: Minict) -> list[str]:
    """The course's line, with ~ expanded as the user's shell would."""
    return ["run", *SEED_FLAGS, "-v", f"{m.env['HOME']}/ws:/workspace", "lab", *SEED_COMMAND]


def leftovers(m: Minict) -> list:
    return container_dirs(m.root) + (sorted((m.state / "containers").iterdir())
                                     if (m.state / "containers").exists() else [])


# ---- --gpus all | N | device= ---------------------------------------------------------------

# In the fake tree, index (PCI order) -> /dev/nvidiaN: 0->0, 1->1, 2->3, 3->2.
@pytest.mark.parametrize("value, nodes, cuda", [
    ("all", "nvidia0 nvidia1 nvidia2 nvidia3", "0,1,2,3"),
    ("2", "nvidia0 nvidia1", "0,1"),
    ("device=2", "nvidia3", "0"),
    # the order given is kept: GPU 3 is the container's second (PCI order), GPU 0 its first
    ('"device=3,0"', "nvidia0 nvidia2", "1,0"),
])
def test_gpus_selects_like_docker(lab, value, nodes, cuda):
    out = lab.out("run", "--rm", "--gpus", value, "busybox", "sh", "-c",
                  "ls /dev | grep '^nvidia[0-9]' | tr '\\n' ' '; echo; echo $CUDA_VISIBLE_DEVICES")
    assert out.splitlines() == [nodes + " ", cuda]


def test_gpus_all_inside_a_job_keeps_to_the_jobs_gpus(lab):
    """Under Slurm, `--gpus all` means the job's GPUs, not the node's."""
    out = lab.out("run", "--rm", "--gpus", "all", "busybox", "sh", "-c",
                  "ls /dev | grep -c '^nvidia[0-9]'", env={"SLURM_JOB_GPUS": "1"})
    assert out.strip() == "1"


def test_gpus_without_a_gpu_is_hpcshims_clear_line(lab, tmp_path):
    (tmp_path / "no-gpu").mkdir()
    mounts = mount_table()
    result = lab("run", "--rm", "--gpus", "all", "busybox", "true",
                 env={"HPCSHIM_HOST_ROOT": str(tmp_path / "no-gpu")})
    assert result.returncode == 51 and result.stdout == ""
    assert one_line(result.stderr) == ("minict: minict run --gpus all asked for a GPU but this host "
                                       "has no NVIDIA driver (run on a GPU node, or use --gpu=auto "
                                       "to run without one)")
    assert mount_table() == mounts and leftovers(lab) == []


@pytest.mark.parametrize("args, code, words", [
    (["--gpus", "all", "--gpu"], 27, "--gpus and --gpu/--gpu-plan both say which GPUs to use"),
    (["--gpus", "none"], 27, "invalid --gpus 'none'"),
    (["--gpus", "9"], 52, "CUDA_VISIBLE_DEVICES='0,1,2,3,4,5,6,7,8' asks for GPU 4"),
])
def test_bad_gpus(lab, args, code, words):
    result = lab("run", "--rm", *args, "busybox", "true")
    assert result.returncode == code and words in one_line(result.stderr), result.stderr
    assert leftovers(lab) == []


# ---- the course's line --------------------------------------------------------------------------

def test_the_course_line_without_a_gpu_fails_with_hpcshims_line(lab, tmp_path, terminal):
    (tmp_path / "no-gpu").mkdir()
    term = terminal(dict(lab.env, HPCSHIM_HOST_ROOT=str(tmp_path / "no-gpu")), *seed_line(lab))
    said = term.expect("\n").strip()
    assert term.wait() == 51
    assert said.startswith("minict: minict run --gpus all asked for a GPU but this host has no "
                           "NVIDIA driver")
    assert leftovers(lab) == []


@pytest.mark.vmtier
def test_the_course_line_runs_with_a_gpu(lab, terminal):
    term = terminal(lab.env, *seed_line(lab))
    if not may_raise_hard_limits():
        # This machine's root may not raise RLIMIT_MEMLOCK's hard limit:
        # memlock=-1 cannot be honoured, and minict says so before it starts.
        said = term.expect("\n").strip()
        assert term.wait() == 27
        assert said.startswith("minict: --ulimit memlock=-1: the hard limit unlimited is above "
                               "minict's own") and "CAP_SYS_RESOURCE" in said
        assert leftovers(lab) == []
        return
    out = term.expect("notebook from the host")
    assert term.wait() == 0
    lines = dict(line.split(": ", 1) for line in out.replace("\r", "").splitlines() if ": " in line)
    assert lines["args"] == "--ip=0.0.0.0 --port=8888"
    assert (lines["memlock"], lines["stack"]) == ("unlimited", "65536")
    assert lines["ipc"] == os.readlink("/proc/self/ns/ipc")     # --ipc=host
    assert lines["net"] == os.readlink("/proc/self/ns/net")     # --network=host
    assert lines["gpus"].split() == ["nvidia0", "nvidia1", "nvidia2", "nvidia3"]
    assert lines["library"] == "1" and lines["terminal"].startswith("/dev/pts/")
    assert leftovers(lab) == []
