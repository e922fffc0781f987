"""Fixtures for hpcshim's tests: the fake driver tree (see drivertree.py)."""

import os

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
