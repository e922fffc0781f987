"""Multi-layer images: whiteouts and opaque directories as overlayfs shows
them, and images with more layers than one mount(2) page can name."""

import pytest

from tests.helpers.images import Entry, ImageBuilder, tar_from_dir, tar_of
from tests.runtime.conftest import Minict, container_dirs

pytestmark = pytest.mark.root

LAYERS = 60


@pytest.fixture
def layered(tmp_path, busybox_rootfs) -> Minict:
    """A store, under a deliberately long path, holding a 62-layer image."""
    deep = tmp_path / ("a-long-directory-name-" * 4)
    mt = Minict(deep / "root", tmp_path / "state")
    image = ImageBuilder()
    image.add_layer(tar_from_dir(busybox_rootfs))
    image.add_layer(tar_of([Entry.dir("opaque"), Entry.file("opaque/old-a", b"a"),
                            Entry.file("opaque/old-b", b"b"), Entry.file("etc/motd", b"base\n")]))
    for i in range(LAYERS):
        image.add_layer(tar_of([Entry.dir("layers"), Entry.file(f"layers/{i:02d}", f"{i}\n".encode())]),
                        compression=None)
    image.add_layer(tar_of([Entry.whiteout("bin/vi"), Entry.whiteout("layers/07"),
                            Entry.dir("opaque"), Entry.opaque("opaque"),
                            Entry.file("opaque/new", b"new"), Entry.file("etc/motd", b"top\n")]))
    archive = image.write_oci_archive(tmp_path / "layered.tar", ref_name="layered:latest")
    mt.out("load", "-i", archive)
    return mt


def test_whiteouts_and_opaque_directories(layered):
    out = layered.out("run", "--rm", "layered", "sh", "-c",
                      "ls /bin/vi 2>&1; ls /opaque; cat /etc/motd; ls /layers | wc -l; "
                      "cat /layers/07 2>&1; cat /layers/59")
    lines = out.splitlines()
    assert "No such file" in lines[0]
    assert lines[1:] == ["new", "top", str(LAYERS - 1), lines[4], "59"] and "No such file" in lines[4]


def test_too_many_layers_for_one_page_use_short_links(layered):
    result = layered("--explain", "run", "--rm", "layered", "cat", "/layers/00")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0\n"
    assert "Too many layers for one mount(2) page" in result.stderr
    assert '"lowerdir=lower/0:lower/1:' in result.stderr
    assert container_dirs(layered.root) == []
