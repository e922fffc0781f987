"""Escapes through what containers share with the host: a volume another
container rewrites while minict mounts into it (CVE-2021-30465), and the
store's filesystem, which a container can fill. Host tier only: the
race needs many container starts, and the VM's /tmp is itself an overlay.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import MINICT, Minict, make_env, mount_table

pytestmark = pytest.mark.root


def test_a_symlink_swapped_into_a_shared_volume_never_redirects_a_mount(box, tmp_path):
    """One container swaps /data/a between a directory and a symlink to "/"
    as fast as it can; meanwhile containers sharing the volume mount a
    host directory at /data/a/target. A runtime that followed the symlink
    on the host would mount over (or create) the host's /target."""
    volume = tmp_path / "volume"
    (volume / "a").mkdir(parents=True)
    source = tmp_path / "source"
    source.mkdir()
    (source / "file").write_text("mounted\n")
    host_target = Path("/target")
    assert not host_target.exists()
    swapper = box.popen("run", "--rm", "--name", "swapper", "-v", f"{volume}:/data", "escape", "sh",
                        "-c", "while :; do mv /data/a /data/a.d; ln -s / /data/a; rm /data/a; "
                              "mv /data/a.d /data/a; done 2>/dev/null")
    try:
        time.sleep(0.5)
        before = mount_table()
        outcomes = []
        for _ in range(25):
            result = box("run", "--rm", "-v", f"{volume}:/data", "-v", f"{source}:/data/a/target",
                         "escape", "cat", "/data/a/target/file")
            outcomes.append(result)
            assert not host_target.exists(), "a mount point was made on the host"
        assert mount_table() == before
    finally:
        box("rm", "-f", "swapper")
        swapper.wait(timeout=30)
    for result in outcomes:
        if result.returncode == 125:   # minict saw the swap: one clear line, and no container
            assert len(result.stderr.splitlines()) == 1, result.stderr
            assert "while minict was mounting /data/a/target" in result.stderr or \
                "not a directory" in result.stderr, result.stderr
        elif result.returncode == 1:   # mounted, then the swapper moved the directory away
            assert "can't open '/data/a/target/file'" in result.stderr
        else:
            assert (result.returncode, result.stdout) == (0, "mounted\n"), result
    assert any(r.returncode == 0 for r in outcomes)        # the race was run, not refused outright


@pytest.fixture
def small_store(tmp_path, busybox_rootfs):
    """A store on a 48 MiB tmpfs of its own, holding busybox."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mountpoint)], check=True)
    try:
        m = Minict(mountpoint / "root", tmp_path / "state")
        m.out("import", busybox_rootfs, "busybox:latest")
        yield m, mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_filling_the_upper_dir_fills_only_the_store(small_store):
    m, mountpoint = small_store
    m.out("run", "--rm", "busybox", "true")   # the store's first run writes its network's record
    used = os.statvfs(mountpoint).f_bfree
    host_free = os.statvfs("/").f_bavail * os.statvfs("/").f_frsize
    out = m.out("run", "--rm", "busybox", "sh", "-c",
                "dd if=/dev/zero of=/big bs=1M 2>&1 | grep -c 'No space left'; echo still-running")
    assert out.splitlines() == ["1", "still-running"]
    assert os.statvfs(mountpoint).f_bfree == used          # the upper dir went with the container
    assert abs(os.statvfs("/").f_bavail * os.statvfs("/").f_frsize - host_free) < 32 << 20


OVERLAY_STORE = """
set -e
mkdir -p "$BASE/lower" "$BASE/upper" "$BASE/work" "$BASE/merged"
mount -t overlay overlay -o "lowerdir=$BASE/lower,upperdir=$BASE/upper,workdir=$BASE/work" "$BASE/merged"
export MINICT_ROOT="$BASE/merged/root"
minict import "$ROOTFS" busybox:latest >/dev/null
set +e
minict run --rm busybox true
echo "exit=$?"
ls "$BASE/merged/root/containers"
"""


def test_a_store_on_overlayfs_is_one_clear_line(tmp_path, busybox_rootfs):
    """overlayfs cannot use another overlay as its writable layer: say which
    filesystem and what to do, not `mount(...) failed: Invalid argument`."""
    env = dict(make_env(tmp_path / "unused", tmp_path / "state"), BASE=str(tmp_path / "o"),
               ROOTFS=str(busybox_rootfs), PATH=f"{Path(MINICT).parent}:{os.environ['PATH']}")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             OVERLAY_STORE], env=env, capture_output=True, text=True, timeout=120)
    assert result.stdout.splitlines() == ["exit=125"], (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("minict: the container's writable layer would be on overlay")
    assert "MINICT_ROOT" in line and "ext4" in line
