"""Bundles for minict-oci's tests: a busybox rootfs and `minict-oci spec`'s config."""

import copy
import json
import os
import shutil
import subprocess
import tempfile
import sys
from pathlib import Path

import prctl
import pytest

from minicontainer.oci.defaults import default_spec

MINICT_OCI = str(Path(sys.executable).parent / "minict-oci")


class Bundle:
    """A bundle directory (config.json + rootfs) and a state root of its own."""

    def __init__(self, path: Path, rootfs: Path, state_root: Path):
        self.path, self.state_root = path, state_root
        self.config = default_spec()
        self.config["root"] = {"path": str(rootfs), "readonly": False}
        self.config["process"]["terminal"] = False
        self.config["process"]["args"] = ["true"]

    def process(self, *args, **changes):
        self.config["process"]["args"] = list(args)
        self.config["process"].update(changes)
        return self

    def write(self):
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.json").write_text(json.dumps(self.config))
        return self

    def oci(self, *args, check=False, timeout=30, input=None, **kw):
        """Run minict-oci --root STATE ARGS (the bundle is written first).
        Its output goes to files, not pipes, as an engine's does: a container
        that create leaves running holds them open, and a pipe would never
        reach end-of-file."""
        self.write()
        if input is None:
            kw["stdin"] = subprocess.DEVNULL
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            finished = subprocess.run([MINICT_OCI, "--root", str(self.state_root), *args],
                                      cwd=self.path, timeout=timeout, stdout=out, stderr=err,
                                      input=input, text=True, **kw)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(finished.args, finished.returncode,
                                                 out.read(), err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"minict-oci {' '.join(args)}: {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def run(self, container_id="c1", **kw):
        return self.oci("run", "-b", str(self.path), container_id, **kw)

    def state(self, container_id="c1") -> dict:
        return json.loads(self.oci("state", container_id, check=True).stdout)

    def delete(self, container_id="c1"):
        return self.oci("delete", "--force", container_id)


@pytest.fixture(autouse=True)
def subreaper():
    """While a test runs, it is what conmon or containerd's shim is to a
    container: the child subreaper that create's orphaned init is
    reparented to, so the test can wait for it. Reaps whatever is left."""
    prctl.set_child_subreaper(1)
    try:
        yield
    finally:
        prctl.set_child_subreaper(0)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


@pytest.fixture
def bundle(tmp_path, busybox_rootfs):
    """A bundle of its own: runtimes create missing mount points in the rootfs."""
    rootfs = tmp_path / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    made = Bundle(tmp_path / "bundle", rootfs, tmp_path / "state")
    yield made
    for container_id in (os.listdir(made.state_root) if made.state_root.exists() else []):
        made.oci("delete", "--force", container_id)


def reaped(pid: int) -> None:
    """Our tests are the parent of what `create` leaves (the engine would be):
    reap it so that no zombie stays behind."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


@pytest.fixture
def spec():
    return copy.deepcopy(default_spec())
