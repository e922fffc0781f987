"""Every bad input: one line on stderr naming the problem and what to do, a
distinct exit code, and the store exactly as before (byte for byte)."""

import json
import os
import subprocess

import pytest

from tests.helpers.images import (ImageBuilder, Entry, busybox_image, compress, sha256, tar_of,
                                  write_tar, write_tree)
from tests.images.conftest import store_state

pytestmark = pytest.mark.root


@pytest.fixture
def populated(tmp_path, minict, minict_root, busybox_rootfs):
    """A store that already holds an image, so 'as before' is not 'empty'."""
    busybox_image(busybox_rootfs).write_oci_archive(tmp_path / "ok.tar", ref_name="ok:1")
    assert minict("load", "-i", tmp_path / "ok.tar").returncode == 0
    return store_state(minict_root)


def fails(minict, minict_root, before, args, code, fragment, env=None):
    result = minict(*args, env=env)
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("minict: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "(" in lines[0]  # the hint: what to do
    assert store_state(minict_root) == before
    assert os.listdir(minict_root / "tmp") == []
    return lines[0]


def layout_with(tmp_path, mutate, name="bad"):
    """An OCI layout of a one-layer image, changed by mutate(files, image)."""
    img = ImageBuilder().add_layer(tar_of([Entry.file("etc/hello", b"hi " * 1000)]), "gzip")
    files = img.layout_files(["bad:1"])
    mutate(files, img)
    return write_tree(tmp_path / name, files)


def relink(files, img, manifest: dict):
    """Rewrite the manifest blob and index.json after a change to manifest."""
    data = json.dumps(manifest).encode()
    files[f"blobs/sha256/{sha256(data)[7:]}"] = data
    index = json.loads(files["index.json"])
    index["manifests"][0].update(digest=sha256(data), size=len(data))
    files["index.json"] = json.dumps(index).encode()


def current_manifest(files):
    index = json.loads(files["index.json"])
    return json.loads(files[f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"])


def test_truncated_archive(tmp_path, minict, minict_root, populated, two_layer_image):
    path = two_layer_image().write_docker_archive(tmp_path / "t.tar", ["bb:t"])
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * 0.6)])
    fails(minict, minict_root, populated, ["load", "-i", path], 12, "truncated")


def test_not_an_archive(tmp_path, minict, minict_root, populated):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(10_000))
    fails(minict, minict_root, populated, ["load", "-i", junk], 12, "not a readable tar")


def test_tar_that_is_no_image(tmp_path, minict, minict_root, populated):
    path = write_tar(tmp_path / "x.tar", {"hello.txt": b"hi"})
    fails(minict, minict_root, populated, ["load", "-i", path], 12, "no index.json or manifest.json")


def test_corrupt_layer_with_matching_digest(tmp_path, minict, minict_root, populated):
    def corrupt(files, img):
        manifest = current_manifest(files)
        layer = manifest["layers"][0]
        blob = bytearray(files.pop(f"blobs/sha256/{layer['digest'][7:]}"))
        blob[len(blob) // 2:len(blob) // 2 + 16] = b"\xff" * 16
        files[f"blobs/sha256/{sha256(bytes(blob))[7:]}"] = bytes(blob)
        layer.update(digest=sha256(bytes(blob)), size=len(blob))
        relink(files, img, manifest)
    path = layout_with(tmp_path, corrupt)
    fails(minict, minict_root, populated, ["load", "-i", path], 12, "truncated or corrupt")


def test_layer_digest_mismatch(tmp_path, minict, minict_root, populated):
    def tamper(files, img):
        layer = current_manifest(files)["layers"][0]
        other = compress(tar_of([Entry.file("etc/hello", b"evil")]), "gzip")
        files[f"blobs/sha256/{layer['digest'][7:]}"] = other
    path = layout_with(tmp_path, tamper)
    fails(minict, minict_root, populated, ["load", "-i", path], 13, "expected sha256:")


def test_diff_id_mismatch(tmp_path, minict, minict_root, populated):
    def wrong_diff_id(files, img):
        manifest = current_manifest(files)
        config = json.loads(files[f"blobs/sha256/{manifest['config']['digest'][7:]}"])
        config["rootfs"]["diff_ids"] = ["sha256:" + "1" * 64]
        data = json.dumps(config).encode()
        files[f"blobs/sha256/{sha256(data)[7:]}"] = data
        manifest["config"].update(digest=sha256(data), size=len(data))
        relink(files, img, manifest)
    path = layout_with(tmp_path, wrong_diff_id)
    fails(minict, minict_root, populated, ["load", "-i", path], 13, "diff id")


def test_manifest_blob_mismatch(tmp_path, minict, minict_root, populated):
    def tamper(files, img):
        index = json.loads(files["index.json"])
        name = f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"
        files[name] = files[name].replace(b'"schemaVersion": 2', b'"schemaVersion":2 ')
    path = layout_with(tmp_path, tamper)
    fails(minict, minict_root, populated, ["load", "-i", path], 13, "does not match its digest")


@pytest.mark.parametrize("where", ["layer", "config"])
def test_unknown_media_type(tmp_path, minict, minict_root, populated, where):
    def retype(files, img):
        manifest = current_manifest(files)
        if where == "layer":
            manifest["layers"][0]["mediaType"] = "application/vnd.example.weird"
        else:
            manifest["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
        relink(files, img, manifest)
    path = layout_with(tmp_path, retype)
    fails(minict, minict_root, populated, ["load", "-i", path], 14,
          "weird" if where == "layer" else "not a container image")


def test_schema1_manifest(tmp_path, minict, minict_root, populated):
    def schema1(files, img):
        relink(files, img, {"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []})
    path = layout_with(tmp_path, schema1)
    fails(minict, minict_root, populated, ["load", "-i", path], 14, "schema 1")


def test_missing_blob(tmp_path, minict, minict_root, populated):
    def drop_layer(files, img):
        del files[f"blobs/sha256/{current_manifest(files)['layers'][0]['digest'][7:]}"]
    path = layout_with(tmp_path, drop_layer)
    fails(minict, minict_root, populated, ["load", "-i", path], 15, "lacks blob")


def test_hostile_layer_in_an_archive(tmp_path, minict, minict_root, populated):
    img = ImageBuilder().add_layer(tar_of([Entry.file("ok", b"1"), Entry.symlink("x", "/etc"),
                                           Entry.file("x/cron.d/evil", b"* * * * * root sh")]))
    path = img.write_oci_archive(tmp_path / "evil.tar", ref_name="evil:1")
    fails(minict, minict_root, populated, ["load", "-i", path], 16, "through the symlink")
    assert not os.path.exists("/etc/cron.d/evil")


def test_decompression_bomb(tmp_path, minict, minict_root, populated):
    img = ImageBuilder().add_layer(tar_of([Entry.file("zeros", bytes(32 << 20))]), "gzip")
    path = img.write_oci_archive(tmp_path / "bomb.tar", ref_name="bomb:1")
    assert path.stat().st_size < 1 << 20  # 32 MiB of zeros fits in well under 1 MiB
    fails(minict, minict_root, populated, ["load", "-i", path], 17, "more than",
          env={"MINICT_MAX_UNPACK": str(16 << 20)})


def test_empty_docker_manifest(tmp_path, minict, minict_root, populated):
    path = write_tar(tmp_path / "e.tar", {"manifest.json": b"[]"})
    fails(minict, minict_root, populated, ["load", "-i", path], 12, "holds no images")


def test_bad_reference_on_import(tmp_path, minict, minict_root, populated, busybox_rootfs):
    fails(minict, minict_root, populated, ["import", busybox_rootfs, "Bad/Name"], 10,
          "must be lowercase")


def test_bad_change_on_import(tmp_path, minict, minict_root, populated, busybox_rootfs):
    fails(minict, minict_root, populated, ["import", "-c", "RUN rm -rf /", busybox_rootfs, "x"],
          27, "RUN is not supported")


@pytest.mark.parametrize("args, code, fragment", [
    (["image", "inspect", "nope:1"], 11, "no image nope:1 in the store"),
    (["rmi", "nope"], 11, "minict pull nope"),
    (["image", "inspect", "UPPER"], 11, "no image 'UPPER'"),
])
def test_unknown_images(minict, minict_root, populated, args, code, fragment):
    fails(minict, minict_root, populated, args, code, fragment)


def test_disk_full(tmp_path, minict, busybox_rootfs):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(small)], check=True)
    try:
        root = small / "root"
        env = {"MINICT_ROOT": str(root)}
        ok = busybox_image(busybox_rootfs).write_oci_archive(tmp_path / "ok.tar", ref_name="ok:1")
        assert minict("load", "-i", ok, env=env).returncode == 0
        before = store_state(root)
        big = ImageBuilder().add_layer(tar_of([Entry.file("random", os.urandom(5 << 20))]), None)
        path = big.write_oci_archive(tmp_path / "big.tar", ref_name="big:1")
        result = minict("load", "-i", path, env=env)
        assert result.returncode == 22, result.stderr
        assert result.stderr.count("\n") == 1 and "no space left on device" in result.stderr
        assert store_state(root) == before
        assert os.listdir(root / "tmp") == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_failed_load_into_a_new_root_leaves_no_store(tmp_path, minict):
    root = tmp_path / "never-used"
    assert minict("images", env={"MINICT_ROOT": str(root)}).returncode == 0
    assert not root.exists()  # reading creates nothing
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar")
    result = minict("load", "-i", junk, env={"MINICT_ROOT": str(root)})
    assert result.returncode == 12
    assert not root.exists()
