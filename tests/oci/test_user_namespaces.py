"""minict-oci with a user namespace: as root with a range of ids, and as a
user (nobody) with its own id, from `minict-oci spec --rootless`."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers.rootless import NOBODY, nobody_argv, user_namespaces_allowed
from .conftest import MINICT_OCI

pytestmark = pytest.mark.root


@pytest.fixture
def open_bundle(bundle, busybox_rootfs):
    """The bundle's rootfs where uid 200000 can reach it (pytest's tmp dir is
    root's alone), owned by the ids it is mapped to, as an engine's would be
    (a directory of an unmapped owner cannot even get a new entry: EOVERFLOW)."""
    base = Path(tempfile.mkdtemp(prefix="minict-oci-userns-"))
    os.chmod(base, 0o755)
    shutil.copytree(busybox_rootfs, base / "rootfs", symlinks=True)
    subprocess.run(["chown", "-hR", "200000:200000", str(base / "rootfs")], check=True)
    bundle.config["root"]["path"] = str(base / "rootfs")
    yield bundle
    bundle.oci("delete", "--force", "c1")
    shutil.rmtree(base)


def test_root_maps_a_range_of_ids(open_bundle):
    bundle = open_bundle
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] not in ("/sys", "/sys/fs/cgroup")]
    del bundle.config["linux"]["resources"]
    bundle.process("sh", "-c", "cat /proc/self/uid_map; id -u; sleep 5")
    bundle.oci("create", "-b", str(bundle.path), "c1", check=True)
    pid = bundle.state()["pid"]
    with open(f"/proc/{pid}/status") as f:
        uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
    assert uids == ["200000"] * 4     # root inside is 200000 outside
    bundle.oci("delete", "--force", "c1", check=True)


def test_in_a_user_namespace_the_cgroup_mount_binds_the_host_s_tree(open_bundle):
    """Without a cgroup namespace, a new cgroup2 mount is refused in a user
    namespace (it is the host's tree); the bind of it is not (oci/mounts.py)."""
    bundle = open_bundle
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/sys"]
    del bundle.config["linux"]["resources"]
    bundle.process("sh", "-c", "cat /sys/fs/cgroup/cgroup.controllers >/dev/null && echo read; "
                               "grep ' /sys/fs/cgroup ' /proc/self/mountinfo")
    result = bundle.run()
    assert result.returncode == 0, result.stderr
    read, mount = result.stdout.splitlines()
    assert read == "read" and mount.split()[5].startswith("ro,") and " - cgroup2 " in mount


@pytest.mark.skipif(user_namespaces_allowed() is not None, reason="no unprivileged user namespaces")
def test_a_user_runs_the_rootless_spec(busybox_rootfs):
    base = Path(tempfile.mkdtemp(prefix="minict-oci-rootless-"))
    try:
        shutil.copytree(busybox_rootfs, base / "rootfs", symlinks=True)
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(base)], check=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(base), "XDG_RUNTIME_DIR": str(base / "run")}
        os.makedirs(base / "run", exist_ok=True)
        os.chown(base / "run", NOBODY, NOBODY)
        subprocess.run(nobody_argv(env, MINICT_OCI, "spec", "--rootless", "-b", str(base)),
                       check=True)
        config = json.loads((base / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; echo pid $$"]
        (base / "config.json").write_text(json.dumps(config))
        result = subprocess.run(nobody_argv(env, MINICT_OCI, "run", "-b", str(base), "r1"),
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.split("\n")
        assert lines[0] == "0" and lines[1].split() == ["0", str(NOBODY), "1"]
        assert lines[2] == "pid 1"
        assert list((base / "run" / "minict-oci").iterdir()) == []   # run deleted it
    finally:
        shutil.rmtree(base)
