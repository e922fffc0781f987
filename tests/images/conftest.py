import json
from pathlib import Path

import pytest

from tests.helpers.images import Entry, busybox_image, tar_of
from tests.helpers.trees import snapshot


@pytest.fixture(scope="session")
def two_layer_image(busybox_rootfs):
    """busybox + a layer that adds /etc/motd, whites out /bin/vi, makes /home opaque."""
    def build(compression="gzip", second="gzip"):
        img = busybox_image(busybox_rootfs, compression)
        img.add_layer(tar_of([Entry.file("etc/motd", b"hello from layer 2\n"),
                              Entry.whiteout("bin/vi"), Entry.opaque("home")]), second)
        return img
    return build


def store_state(root: Path) -> dict:
    """The whole image store, for 'exactly as before' checks. Lock files are
    left out (created once, no content), and so is containers/, the
    runtime's records, which image commands never change."""
    return {k: v for k, v in snapshot(root).items()
            if not k.startswith(("locks", "containers"))}


def index_names(root: Path) -> dict:
    path = root / "index.json"
    return json.loads(path.read_text())["names"] if path.exists() else {}
