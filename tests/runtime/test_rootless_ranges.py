"""minict without root, with subordinate ids (minicontainer/idmap.py), for real.

The tests run as root and give `nobody` (65534) subordinate ids the way an
administrator would, in /etc/subuid and /etc/subgid, but without touching
the host's files: each minict command runs in a mount namespace of its own
where two temporary files are bound over them. newuidmap and newgidmap
(setuid root, Debian's uidmap) read the files there, check the grant and
write the ranges. Then uid 1000 in an image is uid 1000 inside, owned by
SUB_START + 999 on the host.
"""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from minicontainer.syscalls import kernel_version
from tests.helpers.images import Entry, busybox_image, tar_of
from tests.helpers.subids import NOBODY, SUB_COUNT, SUB_START, Nobody


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody with setpriv: needs root"),
    pytest.mark.skipif(shutil.which("newuidmap") is None, reason="needs newuidmap (apt: uidmap)"),
]

OWNED_LAYER = [
    Entry.dir("home/u", mode=0o750, uid=1000, gid=1000),
    Entry.file("home/u/secret", b"only u\n", mode=0o600, uid=1000, gid=1000),
    Entry.file("usr/local/bin/tool", b"#!/bin/sh\n", mode=0o2755, uid=0, gid=50),
    Entry.symlink("home/u/link", "secret", uid=1000, gid=1000),
    Entry.file("beyond", b"x", uid=SUB_COUNT + 10, gid=SUB_COUNT + 10),
    Entry.chardev("dev/console", 5, 1),          # no mknod without root: skipped, and said
]


@pytest.fixture
def nobody(busybox_rootfs):
    probe = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                            "unshare", "-U", "-r", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are forbidden here: {probe.stderr!r}")
    if kernel_version() < (6, 7):
        pytest.skip("the image's layers need xattr whiteouts without root: Linux >= 6.7")
    # Not under pytest's tmp dir: /tmp/pytest-of-root is root's alone (0700).
    base = Path(tempfile.mkdtemp(prefix="minict-ranges-"))
    base.chmod(0o755)
    user = Nobody(base)
    image = busybox_image(busybox_rootfs)
    image.add_layer(tar_of(OWNED_LAYER))
    archive = image.write_docker_archive(base / "owned.tar", ["owned:latest"])
    os.chown(archive, NOBODY, NOBODY)
    os.chown(base, NOBODY, NOBODY)
    yield user
    # What a test leaves is the store's business to remove (as its owner would).
    user.minict("rmi", "-f", "owned", timeout=60)
    subprocess.run(["rm", "-rf", str(base)], check=False)


def test_the_images_owners_are_kept_with_ranges(nobody):
    loaded = nobody.minict("load", "-i", nobody.base / "owned.tar")
    assert loaded.returncode == 0, loaded.stderr
    layer_files = list((nobody.base / "root" / "layers").glob("*/fs/home/u/secret"))
    assert len(layer_files) == 1
    on_host = layer_files[0].stat()
    assert (on_host.st_uid, on_host.st_gid) == (SUB_START + 999, SUB_START + 999)
    shown = nobody.minict("--explain", "run", "--rm", "owned", "sh", "-c",
                          "stat -c '%n %u:%g %a' /home/u /home/u/secret /usr/local/bin/tool /beyond;"
                          " stat -c '%n %u:%g' /home/u/link; id -u")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines == ["/home/u 1000:1000 750", "/home/u/secret 1000:1000 600",
                     "/usr/local/bin/tool 0:50 2755",     # setgid bit set again after chown
                     "/beyond 0:0 644",                   # outside the map: root's (squashed)
                     "/home/u/link 1000:1000", "0"]
    assert "newuidmap" in shown.stderr and f"1 {SUB_START} {SUB_COUNT}" in shown.stderr
    assert "ranges" in shown.stderr


def test_user_1000_reads_its_file_and_its_files_are_removable(nobody):
    assert nobody.minict("load", "-i", nobody.base / "owned.tar").returncode == 0
    made = nobody.minict("run", "--name", "as-u", "--user", "1000:1000", "owned", "sh", "-c",
                         "cat /home/u/secret; mkdir -p /home/u/new/deep; echo x > /home/u/new/deep/f;"
                         " chmod 500 /home/u/new; id -u")
    assert made.returncode == 0, made.stderr
    assert made.stdout.split("\n")[:2] == ["only u", "1000"]
    upper = list((nobody.base / "root" / "containers").glob("*/upper/home/u/new"))
    assert len(upper) == 1 and upper[0].stat().st_uid == SUB_START + 999
    removed = nobody.minict("rm", "as-u")
    assert removed.returncode == 0, removed.stderr
    assert list((nobody.base / "root" / "containers").iterdir()) == []
    gone = nobody.minict("rmi", "owned")
    assert gone.returncode == 0, gone.stderr
    assert list((nobody.base / "root" / "layers").iterdir()) == []


def test_inspect_says_what_became_of_the_owners(nobody):
    assert nobody.minict("load", "-i", nobody.base / "owned.tar").returncode == 0
    inspected = nobody.minict("image", "inspect", "owned")
    assert inspected.returncode == 0, inspected.stderr
    rootless = json.loads(inspected.stdout)[0]["Rootless"]
    assert rootless["Owners"].startswith("kept") and str(SUB_COUNT + 10) in rootless["Owners"]
    assert f"{SUB_START}-{SUB_START + SUB_COUNT - 1}" in rootless["IdMap"]
    assert rootless["Skipped"] == ["device node dev/console (needs root)"]


def test_without_ranges_the_owners_are_squashed_and_inspect_says_so(nobody):
    loaded = nobody.minict("load", "-i", nobody.base / "owned.tar", granted=False)
    assert loaded.returncode == 0, loaded.stderr
    rootless = json.loads(nobody.minict("image", "inspect", "owned", granted=False).stdout)[0]["Rootless"]
    assert rootless["Owners"].startswith("squashed") and "1000" in rootless["Owners"]
    assert rootless["IdMap"].startswith("one id")
    shown = nobody.minict("--explain", "run", "--rm", "owned", "stat", "-c", "%u", "/home/u/secret",
                          granted=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["0"]
    assert "subordinate ids" in shown.stderr and "newuidmap" not in shown.stderr.split("Why:")[0]


def test_a_ranged_store_without_its_ranges_is_one_clear_line(nobody):
    assert nobody.minict("load", "-i", nobody.base / "owned.tar").returncode == 0
    refused = nobody.minict("run", "--rm", "owned", "true", granted=False)
    assert refused.returncode == 34
    assert refused.stderr.count("\n") == 1 and "id map" in refused.stderr
    assert not (nobody.base / "root" / "containers").exists()      # refused before any change
