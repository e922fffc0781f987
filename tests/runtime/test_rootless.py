"""minict without root (runtime/rootless.py), for real on this host.

The tests run as root (the suite does) and drop to `nobody` (65534) with
setpriv for every minict command: a store and state dir in a tmp directory
that user owns. They need unprivileged user namespaces and overlayfs with
userxattr (Linux >= 5.11; the whiteout test, xattr whiteouts: >= 6.7).
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from minicontainer.config import Config
from minicontainer.runtime.rootless import kernel_version
from tests.helpers.images import Entry, busybox_image, tar_of

NOBODY = 65534
MINICT = str(Path(sys.executable).parent / "minict")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody with setpriv: needs root")


def as_nobody(env: dict, *args, timeout=60):
    cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
           "env", "-i", *[f"{k}={v}" for k, v in env.items()], MINICT, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def userland(busybox_rootfs):
    """nobody's home: a store with busybox:latest (loaded as nobody) and a
    state dir, all owned by nobody. Skips when the host forbids the basics."""
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            "unshare", "-U", "-r", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are forbidden here: {probe.stderr!r}")
    # Not under pytest's tmp dir: /tmp/pytest-of-root is root's alone (0700).
    base = Path(tempfile.mkdtemp(prefix="minict-rootless-"))
    base.chmod(0o755)
    archive = busybox_image(busybox_rootfs).write_docker_archive(base / "busybox.tar",
                                                                  ["busybox:latest"])
    env = {"PATH": os.environ["PATH"], "HOME": str(base), "MINICT_ROOT": str(base / "root"),
           "MINICT_STATE": str(base / "state")}
    for path in (base, archive):
        os.chown(path, NOBODY, NOBODY)
    loaded = as_nobody(env, "load", "-i", archive)
    assert loaded.returncode == 0, loaded.stderr
    yield base, env
    shutil.rmtree(base, ignore_errors=True)


def test_store_and_state_default_to_the_users_places(monkeypatch):
    monkeypatch.delenv("MINICT_ROOT", raising=False)
    monkeypatch.delenv("MINICT_STATE", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", "/home/u/.data")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    config = Config.from_env()
    assert (str(config.root), str(config.state)) == ("/home/u/.data/minict", "/run/user/1000/minict")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    config = Config.from_env()
    assert (str(config.root), str(config.state)) == ("/home/u/.local/share/minict", "/tmp/minict-1000")
    assert str(Config.from_env(root="/x").root) == "/x"


def test_root_inside_is_the_caller_outside(userland, tmp_path):
    base, env = userland
    volume = base / "vol"
    volume.mkdir()
    os.chown(volume, NOBODY, NOBODY)
    result = as_nobody(env, "run", "--rm", "--network", "none", "-v", f"{volume}:/data", "busybox",
                       "sh", "-c", "id -u; echo hi > /data/made-inside")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"]
    made = volume / "made-inside"
    assert made.read_text() == "hi\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (NOBODY, NOBODY)


def test_security_holds_inside(userland):
    _, env = userland
    result = as_nobody(env, "run", "--rm", "busybox", "sh", "-c",
                       "mknod /tmp/n c 1 3 2>&1; echo mknod=$?; "
                       "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/keys | wc -c")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Operation not permitted" in out and "mknod=1" in out
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    assert out.split()[-1] == "0"          # /proc/keys masked


def test_whiteouts_are_honoured(userland, busybox_rootfs):
    if kernel_version() < (6, 7):
        pytest.skip("xattr whiteouts need Linux >= 6.7")
    base, env = userland
    built = busybox_image(busybox_rootfs)
    built.add_layer(tar_of([Entry.dir("home"), Entry.file("home/old", b"o")]))
    built.add_layer(tar_of([Entry.whiteout("etc/os-release"), Entry.opaque("home"),
                            Entry.file("home/new", b"n")]))
    archive = built.write_docker_archive(base / "wh.tar", ["wh:latest"])
    os.chown(archive, NOBODY, NOBODY)
    loaded = as_nobody(env, "load", "-i", archive)
    assert loaded.returncode == 0, loaded.stderr
    result = as_nobody(env, "run", "--rm", "wh", "sh", "-c",
                       "ls /etc/os-release 2>&1; ls /home; rm /bin/true && ls /bin/true")
    assert "No such file" in result.stdout, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "new" in lines and "old" not in lines
    assert result.returncode != 0                           # /bin/true removed in the container


def test_what_it_cannot_do_is_one_clear_line(userland):
    _, env = userland
    memory = as_nobody(env, "run", "--rm", "--memory", "64m", "busybox", "true")
    assert memory.returncode == 40
    assert memory.stderr.count("\n") == 1 and "--memory needs a cgroup" in memory.stderr
    bridge = as_nobody(env, "run", "--rm", "--network", "bridge", "busybox", "true")
    assert bridge.returncode != 0 and "--network none" in bridge.stderr


def test_ten_runs_leave_nothing(userland):
    base, env = userland
    before_mounts = Path("/proc/self/mounts").read_text().count(str(base))
    for _ in range(10):
        result = as_nobody(env, "run", "--rm", "busybox", "true")
        assert result.returncode == 0, result.stderr
    assert Path("/proc/self/mounts").read_text().count(str(base)) == before_mounts == 0
    assert list((base / "root" / "containers").iterdir()) == []
    leftovers = subprocess.run(["pgrep", "-u", str(NOBODY), "-f", "minict"], capture_output=True,
                               text=True).stdout.split()
    assert leftovers == []
    assert not [p for p in (base / "state").rglob("*") if p.is_file() and "lock" not in str(p)]
