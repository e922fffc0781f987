"""config.json's "cgroup" mount, as init makes it (a recording kernel: no root)."""

import pytest

from minicontainer import syscalls as sc
from minicontainer.oci import init, mounts
from tests.helpers.kernels import TreeKernel

pytestmark = pytest.mark.unit

CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}


def cgroup_mounts(tmp_path, monkeypatch, namespaces, hierarchy):
    """The mount calls that put something at /sys/fs/cgroup, with the host's
    whole cgroup v2 tree at `hierarchy` (None: none to be seen)."""
    monkeypatch.setattr(mounts, "whole_hierarchy_mountpoint", lambda: hierarchy)
    root = tmp_path / "rootfs"
    (root / "sys" / "fs" / "cgroup").mkdir(parents=True, exist_ok=True)
    config = {"root": {"path": str(root)}, "mounts": [CGROUP_MOUNT],
              "linux": {"namespaces": [{"type": t} for t in namespaces]}}
    kernel = TreeKernel()
    init.build_root(kernel, config, str(tmp_path), False, init.Engine())
    return [m for m in kernel.named("mount") if m[1] == str(root / "sys" / "fs" / "cgroup")]


def test_without_a_cgroup_namespace_the_host_s_tree_is_bound_not_mounted_anew(
        tmp_path, monkeypatch):
    """A new cgroup2 mount in the host's cgroup namespace would reset the
    tree's system-wide options (nsdelegate...) for the whole host."""
    tree = tmp_path / "host-cgroup2"
    tree.mkdir()
    bind, flags = cgroup_mounts(tmp_path, monkeypatch, ["pid", "mount"], str(tree))
    assert bind[0] == str(tree) and bind[3] == sc.MS_BIND
    wanted = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_NODEV | sc.MS_RELATIME
    assert flags[3] & (sc.MS_BIND | sc.MS_REMOUNT | wanted) == sc.MS_BIND | sc.MS_REMOUNT | wanted


@pytest.mark.parametrize("namespaces, hierarchy", [
    (["pid", "mount", "cgroup"], "/tree"),    # its own namespace: the mount shows its part only
    (["pid", "mount"], None),                 # no tree to bind: a new mount, as runc does
])
def test_otherwise_cgroup2_is_mounted(tmp_path, monkeypatch, namespaces, hierarchy):
    [mount] = cgroup_mounts(tmp_path, monkeypatch, namespaces, hierarchy)
    assert mount[0] == mount[2] == "cgroup2" and mount[3] & sc.MS_RDONLY
