"""The user-namespaces lesson runs as written and its checks pass: started
by root (it drops to nobody itself) and started by an ordinary user."""

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from minicontainer.runtime.rootless import OVERLAY_USERXATTR_KERNEL
from minicontainer.syscalls import kernel_version
from tests.helpers.lessons import EXAMPLES, readme_and_script, run_walkthrough
from tests.runtime.conftest import MINICT, VENV_BIN, mounts_under

NOBODY = 65534
# Where the walk-through, started as root, keeps nobody's store (it removes it).
ITS_TEMP_STORES = "/tmp/minict-user-namespaces.*"

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture(autouse=True)
def host_allows_it():
    """The lesson drops to nobody (needs root), and nobody must be allowed a
    user namespace and an overlay in it."""
    if os.geteuid() != 0:
        pytest.skip("drops to nobody with setpriv: needs root")
    if kernel_version() < OVERLAY_USERXATTR_KERNEL:
        pytest.skip("overlayfs in a user namespace needs Linux >= 5.11")
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            "unshare", "-U", "-r", "true"], check=False, capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are forbidden here: {probe.stderr!r}")


def test_walkthrough_started_by_root_runs_as_nobody(tmp_path):
    stores_before = set(glob.glob(ITS_TEMP_STORES))
    out = run_walkthrough("user-namespaces", tmp_path, min_checks=16, owned_mounts=[ITS_TEMP_STORES])
    assert "every step below runs as nobody (uid 65534)" in out
    assert "uid=0(root)" in out
    # the narration shown by the lesson comes from the real calls
    assert "clone(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|SIGCHLD" in out
    assert '/uid_map", O_WRONLY); write(fd, "0 65534 1")' in out
    assert '/setgroups", O_WRONLY); write(fd, "deny")' in out
    assert set(glob.glob(ITS_TEMP_STORES)) == stores_before      # nobody's store is gone


def test_walkthrough_started_by_an_ordinary_user():
    """No drop: the script runs as it is started, in that user's own store."""
    # Not under pytest's tmp dir: /tmp/pytest-of-root is root's alone (0700).
    home = Path(tempfile.mkdtemp(prefix="minict-lesson-userns-"))
    try:
        home.chmod(0o755)
        os.chown(home, NOBODY, NOBODY)
        env = {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": str(home), "MINICT": MINICT,
               "MINICT_ROOT": str(home / "root"), "MINICT_STATE": str(home / "state")}
        mounts = mounts_under(home)
        result = subprocess.run(
            ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "env", "-i",
             *[f"{k}={v}" for k, v in env.items()],
             str(EXAMPLES / "user-namespaces" / "walkthrough.sh")],
            check=False, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        out = result.stdout
        assert "started as root" not in out
        assert "FAILED" not in out and out.rstrip().endswith("all checks passed")
        assert list((home / "root" / "containers").iterdir()) == []
        assert mounts_under(home) == mounts
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script("user-namespaces")
    for text in ("busybox id", "/proc/self/uid_map", "readlink /proc/self/ns/user", "--explain",
                 "/etc/shadow:/shadow:ro", "chown 1000", "mknod /tmp/null c 1 3", "mkfifo",
                 "--cap-add NET_ADMIN", "ip link set lo mtu 1280", "--cap-add SYS_TIME",
                 'date -s "2001-01-01 00:00"', "--memory 64m", "--network bridge"):
        assert text in readme and text in script, text
