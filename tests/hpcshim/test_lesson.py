"""The gpu-injection lesson runs as written, its checks pass, and it leaves
nothing: no container, no mount, no temp files (the fake driver tree and
hpcshim's cache lived in its temp dir). Step 7 needs an Apptainer: with one
(as the Apptainer tests find it) its checks must pass, without one the
script must say it skipped the step."""

import glob
import os
import re
import shutil

import pytest

from tests.helpers.apptainer import built, given
from tests.helpers.lessons import readme_and_script, run_walkthrough

pytestmark = [pytest.mark.root, pytest.mark.slow]

LESSON = "gpu-injection"
# Where the walk-through works (it removes it): in /tmp itself, for the
# persistenced socket's path (at most 107 bytes).
WORK_DIRS = "/tmp/gpu-injection.*"


def have_apptainer() -> bool:
    return bool(shutil.which("apptainer") or given() or built())


@pytest.mark.skipif(not shutil.which("gcc"), reason="the fake driver's libraries are compiled by gcc")
def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    apptainer = have_apptainer()
    work_dirs_before = set(glob.glob(WORK_DIRS))
    out = run_walkthrough(LESSON, tmp_path, min_checks=35 if apptainer else 31)
    # step 3: the cache's two entries and the two ELF classes
    assert "libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1" in out
    assert "libcuda.so.1 (ELF) => /usr/lib/i386-linux-gnu/libcuda.so.1" in out
    assert "# EI_CLASS: 02" in out and "# EI_CLASS: 01" in out
    # step 4: seen from inside a real minict container
    assert "LD_LIBRARY_PATH=/.hpcshim/lib CUDA_VISIBLE_DEVICES=0,1,2,3" in out
    # step 5: three ways of naming GPUs, and a bad one
    assert "\nnvidia1 CUDA_VISIBLE_DEVICES=0\n" in out
    assert "\nnvidia2 nvidia3 CUDA_VISIBLE_DEVICES=1,0\n" in out
    assert "\nnvidia3 CUDA_VISIBLE_DEVICES=0\n" in out
    assert "hpcshim: CUDA_VISIBLE_DEVICES='7' asks for GPU 7" in out
    # step 6: the runtimes' command lines
    assert "--gpu-plan /dev/fd/3" in out
    assert "/.hpcshim/lib/libcuda.so.1" in out and "ch-run:" in out
    if apptainer:
        assert "--containlibs=$host/usr/lib/x86_64-linux-gnu/" in out
        assert ("not in " in out and "libnvidia-futurething.so.1 libnvidia-gpucomp.so.550.54.14 "
                "libnvidia-nvvm.so.4" in out)
    else:
        assert "Apptainer is not installed" in out and "skipped this step" in out
    work = re.search(r"the lesson's files, removed at its end: (\S+)", out).group(1)
    assert work.startswith("/tmp/gpu-injection.") and not os.path.exists(work)
    assert set(glob.glob(WORK_DIRS)) <= work_dirs_before
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.skipif(not shutil.which("gcc"), reason="the fake driver's libraries are compiled by gcc")
@pytest.mark.skipif(bool(shutil.which("apptainer")), reason="an apptainer on PATH cannot be hidden")
def test_without_apptainer_step_7_is_skipped_and_says_so(tmp_path, monkeypatch):
    # Neither the tests' Apptainer nor a build of scripts/apptainer.sh: a kit that is not there.
    monkeypatch.delenv("HPCSHIM_TEST_APPTAINER", raising=False)
    monkeypatch.setenv("HPCSHIM_APPTAINER_KIT", str(tmp_path / "no-kit"))
    out = run_walkthrough(LESSON, tmp_path, min_checks=31)
    assert "Apptainer is not installed (scripts/apptainer.sh builds one): skipped this step" in out
    assert "--containlibs" not in out


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script(LESSON)
    for text in ("grep nvidia", "proc/driver/nvidia/version", "grep -E 'Bus Location|Device Minor'",
                 "doctor", "ldconfig -p -C", "od -An -tx1 -j4 -N1", "doctor --compat32",
                 "hpcshim exec --gpu --runtime minict minict:busybox sh -c",
                 "CUDA_VISIBLE_DEVICES=1", "SLURM_STEP_GPUS=2,3", "NVIDIA_VISIBLE_DEVICES=GPU-e953",
                 "CUDA_VISIBLE_DEVICES=7", "--runtime minict --dry-run -v minict:busybox true",
                 "--runtime ch-run --dry-run -v minict:busybox true",
                 "--runtime apptainer --dry-run minict:busybox true", "grep -v '^#'",
                 "test -S /run/nvidia-persistenced/socket", "nvidia-smi -L"):
        assert text in readme and text in script, text
