"""Real runs through Charliecloud's ch-run: injection seen from inside the container."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hpcshim.drivertree import DRIVER_VERSION, LIB64_DIR

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(shutil.which("ch-run") is None, reason="ch-run (charliecloud-runtime) missing")]

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")


@pytest.fixture
def image(tmp_path, busybox_rootfs):
    """A private copy of the busybox rootfs: hpcshim adds mount points to it."""
    dest = tmp_path / "img"
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    return dest


def run(args, env, **kw):
    return subprocess.run([HPCSHIM, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120, **kw)


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def test_injection_is_visible_inside(driver_tree, image, shim_env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("from the host\n")
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(driver_tree.root), CUDA_VISIBLE_DEVICES="3,1",
               SLURM_JOB_ID="1234", UNRELATED="drop-me")
    script = ("md5sum /.hpcshim/lib/libcuda.so.1; echo CVD=$CUDA_VISIBLE_DEVICES; echo ORDER=$CUDA_DEVICE_ORDER; "
              "echo LDP=$LD_LIBRARY_PATH; echo JOB=$SLURM_JOB_ID; echo UNREL=${UNRELATED:-unset}; "
              "echo MINE=$MINE; cat /data/input.txt; nvidia-smi -L | head -1; "
              "ls /.hpcshim/lib; test -S /run/nvidia-persistenced/socket && echo SOCKET; exit 42")
    result = run(["exec", "--gpu", "--runtime", "ch-run", "--cleanenv", "--env", "MINE=yes",
                  "-B", f"{data}:/data", image, "sh", "-c", script], env)
    assert result.returncode == 42, result.stderr            # exit status passed through
    out = result.stdout
    host_md5 = md5(driver_tree.root / LIB64_DIR / f"libcuda.so.{DRIVER_VERSION}")
    assert f"{host_md5}  /.hpcshim/lib/libcuda.so.1" in out   # the 64-bit file, under its soname
    assert "CVD=3,1" in out                 # ch-run shares the host /dev: host numbering
    assert "ORDER=PCI_BUS_ID" in out and "LDP=/.hpcshim/lib" in out
    assert "JOB=1234" in out and "UNREL=unset" in out       # --cleanenv keeps Slurm's, drops the rest
    assert "MINE=yes" in out and "from the host" in out
    assert "GPU 0: Tesla V100-PCIE-16GB" in out              # nvidia-smi bound at /usr/bin
    assert "libnvidia-futurething.so.1" in out and "SOCKET" in out
    # mount points were created once; a second run needs none and still works
    assert (image / ".hpcshim/lib/libcuda.so.1").stat().st_size == 0
    again = run(["exec", "--gpu", "--runtime", "ch-run", "--dry-run", image, "true"], env)
    assert again.returncode == 0 and again.stdout.startswith(shutil.which("ch-run"))


def test_no_gpu_flag_runs_plain_ch_run(image, shim_env):
    result = run(["exec", "--runtime", "ch-run", image, "sh", "-c", "ls /; exit 3"], shim_env)
    assert result.returncode == 3
    assert ".hpcshim" not in result.stdout and not (image / ".hpcshim").exists()


def test_dry_run_prints_and_changes_nothing(driver_tree, image, shim_env):
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(driver_tree.root))
    before = sorted(os.listdir(image))
    result = run(["exec", "--gpu", "--runtime", "ch-run", "--dry-run", image, "echo", "a b"], env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"mkdir -p {image}/.hpcshim/lib"
    assert f"touch {image}/.hpcshim/lib/libcuda.so.1" in lines
    assert lines[-1].endswith(f"{image} -- echo 'a b'")          # shell-quoted
    assert sorted(os.listdir(image)) == before                   # ran nothing


def test_read_only_image_is_a_clear_error(driver_tree, image, shim_env):
    # A read-only bind of the image in a private mount namespace: even root cannot
    # create the mount points there (EROFS), like a site-wide image directory.
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(driver_tree.root))
    script = ('mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
              'exec "$2" exec --gpu --runtime ch-run "$1" true')
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(image), HPCSHIM],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 22, result.stderr
    assert result.stderr.startswith("hpcshim: ch-run refuses binds to destinations missing in the image")
    assert "/.hpcshim/lib" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (image / ".hpcshim").exists()


def test_non_directory_image_with_gpu_is_refused(driver_tree, tmp_path, shim_env):
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(driver_tree.root))
    sqfs = tmp_path / "image.sqfs"
    sqfs.write_bytes(b"hsqs")
    result = run(["exec", "--gpu", "--runtime", "ch-run", sqfs, "true"], env)
    assert result.returncode == 21 and "is not a directory" in result.stderr


def test_the_image_s_ch_environment_is_applied(image, shim_env):
    """A directory from ch-image/ch-convert records its ENV in /ch/environment,
    which ch-run 0.31 applies only with a bare --set-env: hpcshim asks for it,
    before --env, which wins."""
    (image / "ch").mkdir()
    (image / "ch/environment").write_text("PATH=/imgbin:/bin\nFROM_IMAGE=image\nMINE=image\n")
    (image / "imgbin").mkdir()
    (image / "imgbin/hello").write_text("#!/bin/sh\necho hello from the image PATH\n")
    (image / "imgbin/hello").chmod(0o755)
    result = run(["exec", "--runtime", "ch-run", "--env", "MINE=flag", image, "sh", "-c",
                  "hello; echo $FROM_IMAGE $MINE"], shim_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from the image PATH\nimage flag\n", result.stderr
    dry = run(["exec", "--runtime", "ch-run", "--dry-run", image, "true"], shim_env)
    assert " --set-env " in dry.stdout


def test_the_image_s_ld_library_path_is_kept_after_the_injected_libraries(driver_tree, image, shim_env):
    """--set-env=LD_LIBRARY_PATH=... replaces what the bare --set-env read from
    /ch/environment: hpcshim reads the image's value and keeps it, after its own
    directory (a CUDA image lists /usr/local/cuda/lib64 there)."""
    (image / "ch").mkdir()
    (image / "ch/environment").write_text("LD_LIBRARY_PATH=/usr/local/cuda/lib64:/opt/img/lib\n")
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(driver_tree.root))
    result = run(["exec", "--gpu", "--runtime", "ch-run", "--cleanenv", image, "sh", "-c",
                  "echo LDP=$LD_LIBRARY_PATH"], env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "LDP=/.hpcshim/lib:/usr/local/cuda/lib64:/opt/img/lib\n"

