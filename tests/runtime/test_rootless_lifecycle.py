"""A rootless container's life as a user lives it: run -d, logs, exec, stop, rm.

As `nobody`, with subordinate ids granted (tests/helpers/subids.py) and
without. `minict exec` joins the container's user namespace first
(runtime/exec.py); a user the id map lacks is one clear line.
"""

import os
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers.images import busybox_image
from tests.helpers.rootless import nobody_dir
from tests.helpers.subids import NOBODY, Nobody

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody with setpriv: needs root"),
    pytest.mark.skipif(shutil.which("newuidmap") is None, reason="needs newuidmap (apt: uidmap)"),
]


@pytest.fixture(params=[True, False], ids=["ranges", "one-id"])
def nobody(request, busybox_rootfs):
    base = Path(tempfile.mkdtemp(prefix="minict-rootless-life-"))
    base.chmod(0o755)
    archive = busybox_image(busybox_rootfs).write_docker_archive(base / "b.tar", ["busybox:latest"])
    os.chown(archive, NOBODY, NOBODY)
    os.chown(base, NOBODY, NOBODY)
    user = Nobody(base)
    user.granted = request.param
    loaded = user.minict("load", "-i", archive, granted=user.granted)
    assert loaded.returncode == 0, loaded.stderr
    yield user
    subprocess.run(["rm", "-rf", str(base)], check=False)


def own_processes(base: Path) -> list[str]:
    """nobody's processes started for this store (other tests may run as nobody too)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == NOBODY and \
                    str(base).encode() in (entry / "environ").read_bytes():
                found.append(entry.name)
        except OSError:
            continue
    return found


def test_detached_container_exec_stop_and_rm(nobody):
    def minict(*args):
        return nobody.minict(*args, granted=nobody.granted)
    started = minict("run", "-d", "--name", "life", "busybox", "sh", "-c",
                     "echo started > /tmp/mark; echo hello; exec sleep 60")
    assert started.returncode == 0, started.stderr
    assert len(started.stdout.strip()) == 64
    for _ in range(50):
        if "hello" in minict("logs", "life").stdout:
            break
        time.sleep(0.1)
    assert "life" in minict("ps").stdout
    inside = minict("exec", "life", "sh", "-c", "id -u; cat /tmp/mark; ps -o pid,comm | grep -c sleep")
    assert inside.returncode == 0, inside.stderr
    assert inside.stdout.split() == ["0", "started", "1"]
    as_1000 = minict("exec", "-u", "1000:1000", "life", "id", "-u")
    if nobody.granted:
        assert (as_1000.returncode, as_1000.stdout.strip()) == (0, "1000")
    else:       # only root exists in a one-id map
        assert as_1000.returncode == 35, as_1000.stderr
        assert as_1000.stderr.count("\n") == 1 and "does not exist" in as_1000.stderr
    stopped = minict("stop", "-t", "1", "life")
    assert stopped.returncode == 0, stopped.stderr
    assert "Exited" in minict("ps", "-a").stdout
    removed = minict("rm", "life")
    assert removed.returncode == 0, removed.stderr
    assert list((nobody.base / "root" / "containers").iterdir()) == []
    for _ in range(50):      # the supervisor's last moments
        if not own_processes(nobody.base):
            break
        time.sleep(0.1)
    assert own_processes(nobody.base) == []


def test_run_as_a_user_the_map_lacks(nobody):
    ran = nobody.minict("run", "--rm", "--user", "1000", "busybox", "id", "-u", granted=nobody.granted)
    if nobody.granted:
        assert (ran.returncode, ran.stdout.strip()) == (0, "1000")
    else:
        assert ran.returncode == 35
        assert ran.stderr.count("\n") == 1 and "/etc/subuid" in ran.stderr
        assert list((nobody.base / "root" / "containers").iterdir()) == []


def test_a_failed_first_run_makes_no_store(nobody):
    fresh = dict(nobody.env, MINICT_ROOT=str(nobody.base / "never"),
                 MINICT_STATE=str(nobody.base / "never-state"))
    user = Nobody(nobody_dir(nobody.base / "other"))
    user.env = fresh
    failed = user.minict("run", "--rm", "127.0.0.1:9/nosuch:latest", "true", granted=nobody.granted)
    assert failed.returncode == 18, failed.stderr              # RegistryUnreachable
    assert failed.stderr.splitlines()[-1].startswith("minict: image 127.0.0.1:9/nosuch")
    assert not (nobody.base / "never").exists()


def test_device_is_the_host_node_bound(nobody):
    used = nobody.minict("run", "--rm", "--network", "none", "--device", "/dev/null:/dev/mynull:rw",
                         "busybox", "sh", "-c", "stat -c '%F %t:%T' /dev/mynull; echo x > /dev/mynull",
                         granted=nobody.granted)
    assert used.returncode == 0, used.stderr
    assert used.stdout.strip() == "character special file 1:3"
    private = nobody.base / "private-node"
    os.mknod(private, 0o600 | stat.S_IFCHR, os.makedev(1, 3))      # root's, mode 0600
    refused = nobody.minict("run", "--rm", "--device", f"{private}:/dev/p", "busybox", "true",
                            granted=nobody.granted)
    assert refused.returncode == 27 and refused.stderr.count("\n") == 1
    assert "may not open it" in refused.stderr
    assert list((nobody.base / "root" / "containers").iterdir()) == []
