"""The hostile-tarball suite: each attack is built here, unpacked, and must
either be refused (UnsafeLayer) or contained inside the layer directory. In
every case the "host" outside the layer dir is compared before and after.

The layer is unpacked to tmp/layers/x/fs, so `../../host` from inside the
layer is the bait directory tmp/host.
"""

import os
import tarfile

import pytest

from minicontainer.errors import LayerTooLarge, UnsafeLayer
from minicontainer.image.extract import LayerExtractor
from tests.helpers.images import Entry, tar_of
from tests.helpers.trees import snapshot
from tests.images.unpack_helpers import make_host, unpack

pytestmark = pytest.mark.root  # chown, mknod and trusted.* xattrs need root


@pytest.fixture
def scene(tmp_path):
    host = make_host(tmp_path)
    layer = tmp_path / "layers/x/fs"
    layer.parent.mkdir(parents=True)
    before = snapshot(host)

    class Scene:
        def __init__(self):
            self.host, self.layer = host, layer

        def host_untouched(self):
            assert snapshot(host) == before
            # nothing new next to the layer dir or the host either
            assert sorted(p.name for p in tmp_path.iterdir()) == ["host", "layers"]
            assert sorted(p.name for p in layer.parent.parent.iterdir()) == ["x"]
            return True

    return Scene()


def refused(scene, entries, fragment):
    with pytest.raises(UnsafeLayer) as info:
        unpack(tar_of(entries), scene.layer)
    assert fragment in info.value.one_line()
    assert info.value.exit_code == 16
    assert scene.host_untouched()


# ---- names that climb out --------------------------------------------------------

def test_dotdot_entry_refused(scene):
    refused(scene, [Entry.file("../../host/victim/file", b"pwned")], "climbs out")


def test_dotdot_in_the_middle_refused(scene):
    refused(scene, [Entry.dir("a"), Entry.file("a/../../../host/etc/passwd", b"x")], "climbs out")


def test_absolute_name_is_contained(scene):
    unpack(tar_of([Entry.file(f"{scene.host}/victim/file", b"pwned")]), scene.layer)
    inside = scene.layer / str(scene.host).lstrip("/") / "victim/file"
    assert inside.read_bytes() == b"pwned"
    assert scene.host_untouched()


def test_nul_byte_in_name_refused(scene):
    entry = Entry.file("innocent", b"x", pax={"path": "etc/pass\x00wd"})
    refused(scene, [entry], "NUL byte")


# ---- symlinks ------------------------------------------------------------------------

def test_write_through_absolute_symlink_refused(scene):
    refused(scene, [Entry.symlink("evil", str(scene.host / "victim")),
                    Entry.file("evil/file", b"pwned")], "through the symlink")


def test_write_through_relative_symlink_refused(scene):
    refused(scene, [Entry.symlink("evil", "../../../host/victim"),
                    Entry.file("evil/new", b"pwned")], "through the symlink")


def test_write_through_symlink_to_inside_dir_is_refused_too(scene):
    # Even a link to a directory inside the layer: writing through symlinks
    # is how every escape starts, and no image tool produces it.
    refused(scene, [Entry.dir("real"), Entry.symlink("alias", "real"),
                    Entry.file("alias/f", b"x")], "through the symlink")


def test_directory_replaced_by_symlink_then_written_through(scene):
    refused(scene, [Entry.dir("d"), Entry.file("d/a", b"1"),
                    Entry.symlink("d", str(scene.host / "victim")),
                    Entry.file("d/file", b"pwned")], "through the symlink")


def test_symlink_chain_refused(scene):
    refused(scene, [Entry.symlink("a", "b"), Entry.symlink("b", str(scene.host)),
                    Entry.file("a/etc/passwd", b"pwned")], "through the symlink")


def test_absolute_symlinks_themselves_are_normal(scene):
    unpack(tar_of([Entry.symlink("passwd-link", "/etc/passwd")]), scene.layer)
    assert os.readlink(scene.layer / "passwd-link") == "/etc/passwd"
    assert scene.host_untouched()


# ---- hardlinks -----------------------------------------------------------------------

def test_hardlink_to_absolute_host_path_refused(scene):
    refused(scene, [Entry.hardlink("stolen", str(scene.host / "etc/passwd"))],
            "not in this layer")


def test_hardlink_with_dotdot_refused(scene):
    refused(scene, [Entry.hardlink("stolen", "../../../host/etc/passwd")], "climbs out")


def test_hardlink_through_symlink_refused(scene):
    refused(scene, [Entry.symlink("etc", str(scene.host / "etc")),
                    Entry.hardlink("stolen", "etc/passwd")], "through the symlink")


def test_hardlink_to_symlink_links_the_symlink_not_its_target(scene):
    unpack(tar_of([Entry.symlink("s", str(scene.host / "etc/passwd")),
                   Entry.hardlink("h", "s")]), scene.layer)
    assert os.path.islink(scene.layer / "h")
    assert (scene.layer / "h").lstat().st_ino == (scene.layer / "s").lstat().st_ino
    assert scene.host_untouched()  # passwd's link count unchanged


def test_hardlink_to_directory_refused(scene):
    refused(scene, [Entry.dir("d"), Entry.hardlink("h", "d")], "directory")


# ---- the root, whiteouts ---------------------------------------------------------------

@pytest.mark.parametrize("name", [".", "./", "/"])
def test_root_cannot_become_a_symlink(scene, name):
    refused(scene, [Entry.symlink(name, str(scene.host))], "root directory")


def test_root_cannot_become_a_file(scene):
    refused(scene, [Entry.file(".", b"x")], "root directory")


@pytest.mark.parametrize("name", [".wh.", "dir/.wh.", "dir/.wh..", "dir/.wh..."])
def test_bad_whiteout_names_refused(scene, name):
    refused(scene, [Entry.dir("dir"), Entry.file(name)], "whiteout with an invalid name")


def test_whiteout_through_symlink_refused(scene):
    refused(scene, [Entry.symlink("lnk", str(scene.host / "victim")),
                    Entry.whiteout("lnk/file")], "through the symlink")


def test_opaque_marker_through_symlink_refused(scene):
    refused(scene, [Entry.symlink("lnk", str(scene.host / "victim")),
                    Entry.opaque("lnk")], "through the symlink")


def test_forged_overlay_xattrs_are_dropped(scene):
    forged = {"SCHILY.xattr.trusted.overlay.opaque": "y",
              "SCHILY.xattr.trusted.overlay.redirect": "/etc"}
    unpack(tar_of([Entry.dir("d", pax=forged), Entry.file("f", b"x", pax=forged)]), scene.layer)
    for name in ("d", "f"):
        assert not [x for x in os.listxattr(scene.layer / name) if x.startswith("trusted.")]
    assert scene.host_untouched()


# ---- bombs -----------------------------------------------------------------------------

def test_decompression_bomb_stops_at_the_cap(scene):
    bomb = tar_of([Entry.file(f"zeros{i}", bytes(4 << 20)) for i in range(8)])  # 32 MiB
    with pytest.raises(LayerTooLarge) as info:
        unpack(bomb, scene.layer, compression="gzip", max_bytes=8 << 20)
    assert "more than 8388608 bytes" in info.value.one_line()
    assert info.value.exit_code == 17
    assert scene.host_untouched()
    # it stopped early: not all 32 MiB were written
    written = sum(p.stat().st_size for p in scene.layer.rglob("*") if p.is_file())
    assert written <= 8 << 20


def test_entry_count_cap(scene, tmp_path):
    data = tar_of([Entry.file(f"f{i}") for i in range(50)])
    scene.layer.mkdir()
    import io
    with LayerExtractor(str(scene.layer), max_entries=20) as ex:
        with pytest.raises(UnsafeLayer) as info:
            ex.extract_all(tarfile.open(fileobj=io.BytesIO(data)))
    assert "more than 20 entries" in info.value.one_line()
    assert scene.host_untouched()
