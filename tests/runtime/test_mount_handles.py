"""Mounting through a handle (rootfs.mountpoint), with the real kernel.

The unit tests (test_rootfs_plan.py) show that minict refuses a symlink
swapped in before it opens a mount point. These show the other half, the
one the defence against CVE-2021-30465 rests on: once the handle is open,
a swap no longer matters, because mount(2) on /proc/self/fd/N lands on the
directory the handle holds, not on whatever the path names by then.
"""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.root

# Runs in a mount namespace of its own (unshare --mount), so the test's
# mounts vanish with it and the host's mount table never sees them.
SWAP_AFTER_OPEN = """
import os, sys
from minicontainer import syscalls as sc
from minicontainer.runtime import rootfs
root, outside = sys.argv[1:3]
kernel = sc.Kernel()
with rootfs.mountpoint(kernel, root, "/data/sub", True) as target:
    os.rename(f"{root}/data/sub", f"{root}/data/moved")   # another container's swap,
    os.symlink(outside, f"{root}/data/sub")                # a moment too late
    kernel.mount("tmpfs", target, "tmpfs", 0, "size=1m", "test")
for line in open("/proc/self/mountinfo"):
    if " - tmpfs " in line and "size=1024k" in line:
        print(line.split()[4])
"""


def test_a_mount_lands_on_the_held_directory_whatever_the_path_names_later(tmp_path):
    root = tmp_path / "root"
    (root / "data/sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c",
                             SWAP_AFTER_OPEN, str(root), str(outside)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"{root}/data/moved"]
    assert list(outside.iterdir()) == []
