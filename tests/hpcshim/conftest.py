"""Fixtures for hpcshim's tests: the fake driver tree (see drivertree.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hpcshim.drivertree import LibraryStore, build_driver_tree


@pytest.fixture(scope="session")
def library_store(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the fake driver tree needs root (mknod)")
    return LibraryStore(tmp_path_factory.mktemp("nvlibs"))


@pytest.fixture
def driver_tree(tmp_path, library_store):
    """A 4-GPU host root with a loaded driver, libraries, ld.so.cache and nodes."""
    return build_driver_tree(tmp_path / "host", library_store)


@pytest.fixture
def make_tree(tmp_path, library_store):
    """Build a variant: make_tree(name, gpus=..., with_uvm=False, mig=True, ...)."""
    def make(name="host", **options):
        return build_driver_tree(tmp_path / name, library_store, **options)
    return make


@pytest.fixture
def shim_env(tmp_path):
    """An environment with no GPU variables and a private discovery cache."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS",
                        "SLURM_JOB_GPUS", "GPU_DEVICE_ORDINAL", "SLURM_JOB_ID")}
    env["HPCSHIM_CACHE_DIR"] = str(tmp_path / "cache")
    env.setdefault("USER", "root")
    return env


def minict_store_env(shim_env, tmp_path, archive) -> dict:
    """shim_env with a minict store of its own (MINICT_ROOT under tmp_path)
    holding `archive`, loaded with `minict load`, and the venv's minict on PATH."""
    bin_dir = Path(sys.executable).parent
    env = dict(shim_env, MINICT_ROOT=str(tmp_path / "minict-root"),
               MINICT_STATE=str(tmp_path / "state"), PATH=f"{bin_dir}:{shim_env.get('PATH', '')}")
    env.pop("MINICT_EXPLAIN", None)
    loaded = subprocess.run([str(bin_dir / "minict"), "load", "-q", "-i", str(archive)],
                            env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    return env
