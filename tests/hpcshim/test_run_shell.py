"""hpcshim run / shell (the image's own command, an interactive shell) on every
backend, and doctor's checks of what the ranks of a node share."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.apptainer import find_apptainer
from tests.hpcshim.test_backends import read_record, stub_path  # noqa: F401 (fixture)

BIN = Path(sys.executable).parent
HPCSHIM = str(BIN / "hpcshim")


def shim(env, *args, input=None):
    return subprocess.run([HPCSHIM, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120, input=input)


@pytest.mark.unit
def test_apptainer_run_and_shell_golden(stub_path):  # noqa: F811
    make, env, record = stub_path
    make("apptainer", "apptainer version 1.2.5")
    result = shim(env, "run", "--env", "A=1", "app.sif", "--epochs", "3")
    assert result.returncode == 0, result.stderr
    argv, seen = read_record(record)
    assert argv == ["run", "app.sif", "--epochs", "3"] and seen["APPTAINERENV_A"] == "1"
    result = shim(env, "shell", "--contain", "app.sif")
    assert result.returncode == 0, result.stderr
    assert read_record(record)[0] == ["shell", "--contain", "app.sif"]
    extra = shim(env, "shell", "app.sif", "ls")
    assert extra.returncode == 2 and "unrecognized arguments: ls" in extra.stderr


@pytest.fixture
def image_dir(tmp_path, busybox_rootfs):
    """A private copy of the busybox rootfs (the tests add a runscript)."""
    dest = tmp_path / "img"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    return dest


@pytest.mark.root
@pytest.mark.parametrize("runtime", ["ch-run", "apptainer"])
def test_run_uses_the_runscript_and_shell_reads_stdin(image_dir, shim_env, tmp_path, runtime):
    env = find_apptainer().env(shim_env, tmp_path) if runtime == "apptainer" else shim_env
    if runtime == "ch-run":
        if shutil.which("ch-run") is None:
            pytest.skip("ch-run missing")
        refused = shim(env, "run", "--runtime", "ch-run", image_dir)
        assert refused.returncode == 21 and refused.stderr.startswith(
            f"hpcshim: hpcshim run: {image_dir} has no /.singularity.d/runscript")
    script = image_dir / ".singularity.d/runscript"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\necho "runscript:$*"\nexit 4\n')
    script.chmod(0o755)
    result = shim(env, "run", "--runtime", runtime, image_dir, "a", "b c")
    assert (result.returncode, result.stdout) == (4, "runscript:a b c\n"), result.stderr
    shell = shim(env, "shell", "--runtime", runtime, image_dir, input="echo in-shell; exit 6\n")
    assert (shell.returncode, shell.stdout) == (6, "in-shell\n"), shell.stderr


@pytest.fixture(scope="module")
def minict_store(tmp_path_factory, busybox_rootfs):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    from tests.runtime.test_gpu_plan import Minict
    base = tmp_path_factory.mktemp("run-shell-images")
    m = Minict(base / "root", base / "import-state")
    m("import", "-c", 'ENTRYPOINT ["echo", "ep"]', "-c", 'CMD ["default"]', busybox_rootfs, "epimg:latest",
      check=True)
    m("import", "-c", 'CMD ["sh"]', busybox_rootfs, "busybox:latest", check=True)
    return base / "root"


@pytest.fixture
def minict_env(shim_env, minict_store, tmp_path):
    return dict(shim_env, MINICT_ROOT=str(minict_store), MINICT_STATE=str(tmp_path / "state"),
                PATH=f"{BIN}:{shim_env.get('PATH', '')}")


@pytest.mark.root
def test_minict_run_keeps_entrypoint_args_replace_cmd(minict_env):
    plain = shim(minict_env, "run", "--runtime", "minict", "epimg")
    assert (plain.returncode, plain.stdout) == (0, "ep default\n"), plain.stderr
    args = shim(minict_env, "run", "--runtime", "minict", "epimg", "x", "y")
    assert (args.returncode, args.stdout) == (0, "ep x y\n"), args.stderr


@pytest.mark.root
def test_minict_shell_is_bin_sh_reading_stdin(minict_env):
    result = shim(minict_env, "shell", "--runtime", "minict", "epimg",
                  input="echo in-shell $(readlink /proc/$$/exe); exit 7\n")
    assert (result.returncode, result.stdout) == (7, "in-shell /bin/busybox\n"), result.stderr


@pytest.mark.unit
def test_doctor_flags_a_low_memlock_limit(shim_env):
    result = subprocess.run(["prlimit", "--memlock=65536:65536", HPCSHIM, "doctor"], env=shim_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "  ! memlock: 64 KiB (hard limit 64 KiB): NCCL and InfiniBand want unlimited" in result.stdout


@pytest.mark.root
def test_doctor_flags_an_unwritable_dev_shm(shim_env):
    script = 'mount -t tmpfs -o ro tmpfs /dev/shm && exec "$0" doctor'
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, HPCSHIM], env=shim_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "  ! /dev/shm is not writable: NCCL and MPI cannot create their shared segments" in result.stdout
    ok = subprocess.run([HPCSHIM, "doctor"], env=shim_env, capture_output=True, text=True, timeout=60)
    assert "  ok /dev/shm: a writable tmpfs" in ok.stdout
