"""`minict pull` as an ordinary user, from a real registry on loopback.

nobody (65534) pulls into a store of its own, once with subordinate ids
granted (tests/helpers/subids.py: the image's owners are kept) and once
without (squashed), then runs the image.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers.images import Entry, ImageBuilder, tar_from_dir, tar_of
from tests.helpers.subids import NOBODY, SUB_START, Nobody
from tests.registry.conftest import needs_registry
from tests.registry.pushing import skopeo_push

pytestmark = [
    needs_registry,
    pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody with setpriv: needs root"),
    pytest.mark.skipif(shutil.which("newuidmap") is None, reason="needs newuidmap (apt: uidmap)"),
]


@pytest.fixture
def owned_image_in_registry(fresh_registry, busybox_rootfs, tmp_path):
    """test/owned:latest: busybox plus a file of uid 1000, pushed by skopeo."""
    image = ImageBuilder().add_layer(tar_from_dir(busybox_rootfs), "gzip")
    image.add_layer(tar_of([Entry.dir("srv", uid=1000, gid=1000),
                            Entry.file("srv/data", b"d\n", mode=0o640, uid=1000, gid=1000)]), "zstd")
    image.write_oci_layout(tmp_path / "owned", ref_name="latest")
    skopeo_push(tmp_path / "owned", f"{fresh_registry.host}/test/owned:latest")
    return f"{fresh_registry.host}/test/owned:latest"


@pytest.fixture
def nobody():
    base = Path(tempfile.mkdtemp(prefix="minict-pull-rootless-"))
    base.chmod(0o755)
    os.chown(base, NOBODY, NOBODY)
    user = Nobody(base)
    user.env["MINICT_INSECURE_REGISTRIES"] = "127.0.0.1,localhost"
    yield user
    subprocess.run(["rm", "-rf", str(base)], check=False)


@pytest.mark.parametrize("granted, inside", [(True, "1000:1000 640"), (False, "0:0 640")])
def test_pull_and_run_as_a_user(nobody, owned_image_in_registry, granted, inside):
    pulled = nobody.minict("pull", owned_image_in_registry, granted=granted)
    assert pulled.returncode == 0, pulled.stderr
    ran = nobody.minict("run", "--rm", owned_image_in_registry, "stat", "-c", "%u:%g %a", "/srv/data",
                        granted=granted)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == inside
    stored = list((nobody.base / "root" / "layers").glob("*/fs/srv/data"))
    assert [p.stat().st_uid for p in stored] == [SUB_START + 999 if granted else NOBODY]
    removed = nobody.minict("rmi", owned_image_in_registry, granted=granted)
    assert removed.returncode == 0, removed.stderr
    assert list((nobody.base / "root" / "layers").iterdir()) == []
