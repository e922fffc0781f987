"""Fixtures for the build tests: minict with busybox in a store of the
test's own (builds add layers and cache entries that other tests must not see)."""

import shutil

import pytest

from tests.runtime import conftest as runtime_fixtures
from tests.runtime.conftest import Minict

image_root = runtime_fixtures.image_root   # the runtime tests' busybox store, made once a session


@pytest.fixture
def mt(tmp_path, image_root) -> Minict:
    m = Minict(tmp_path / "root", tmp_path / "state")
    shutil.copytree(image_root, m.root, symlinks=True,
                    ignore=lambda d, names: ["containers"] if d == str(image_root) else [])
    return m


@pytest.fixture
def context(tmp_path):
    """A build context directory; write(name, text) puts a file in it."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()

    class Context:
        path = ctx

        @staticmethod
        def write(name: str, text: str = "", mode: int | None = None):
            path = ctx / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if mode is not None:
                path.chmod(mode)
            return path

    return Context
