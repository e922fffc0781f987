"""`minict load` and `minict import`, in every format, including images
made by tools we did not write (skopeo, umoci)."""

import gzip
import json
import os
import subprocess

import pytest

from tests.helpers.images import ImageBuilder, busybox_image, tar_from_dir, write_tar
from tests.conftest import VENV_BIN
from tests.images.conftest import index_names

pytestmark = pytest.mark.root


def check_two_layer_image(minict, root, ref):
    info = json.loads(minict("image", "inspect", ref, check=True).stdout)[0]
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"
    assert info["Config"]["config"]["Cmd"] == ["sh"]
    base, top = [layer["Directory"] for layer in info["Layers"]]
    assert os.path.isfile(f"{base}/bin/busybox")
    assert open(f"{top}/etc/motd").read() == "hello from layer 2\n"
    assert os.stat(f"{top}/bin/vi", follow_symlinks=False).st_rdev == os.makedev(0, 0)
    assert os.getxattr(f"{top}/home", "trusted.overlay.opaque") == b"y"
    assert not os.listdir(root / "tmp")


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
@pytest.mark.parametrize("fmt", ["oci-layout", "oci-archive"])
def test_load_oci(tmp_path, minict, minict_root, two_layer_image, fmt, compression):
    img = two_layer_image(compression, compression)
    path = tmp_path / "busybox.tar"
    if fmt == "oci-layout":
        path = img.write_oci_layout(tmp_path / "busybox", ref_name="busybox:1.36")
    else:
        img.write_oci_archive(path, ref_name="busybox:1.36")
    result = minict("load", "-i", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Loaded image: busybox:1.36\n"
    check_two_layer_image(minict, minict_root, "busybox:1.36")


@pytest.mark.parametrize("oci_layout", [False, True], ids=["classic", "docker25"])
def test_load_docker_save(tmp_path, minict, minict_root, two_layer_image, oci_layout):
    path = two_layer_image().write_docker_archive(tmp_path / "d.tar", ["busybox:latest"],
                                                  oci_layout=oci_layout)
    result = minict("load", "-i", path)
    assert result.stdout == "Loaded image: busybox:latest\n", result.stderr
    check_two_layer_image(minict, minict_root, "busybox")


@pytest.mark.parametrize("compress", ["gzip", "zstd"])
def test_load_from_stdin_compressed_whole(tmp_path, minict, minict_root, two_layer_image, compress):
    path = two_layer_image().write_docker_archive(tmp_path / "d.tar", ["busybox:stdin"])
    data = path.read_bytes()
    if compress == "gzip":
        data = gzip.compress(data)
    else:
        import zstandard
        data = zstandard.ZstdCompressor().compress(data)
    result = subprocess.run([str(VENV_BIN / "minict"), "load"], input=data,
                            capture_output=True, env={**os.environ, "MINICT_ROOT": str(minict_root)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Loaded image: busybox:stdin\n"
    check_two_layer_image(minict, minict_root, "busybox:stdin")


def test_multi_image_archive_loads_every_tag(tmp_path, minict, minict_root, busybox_rootfs):
    a = busybox_image(busybox_rootfs, None)
    b = ImageBuilder({"Cmd": ["echo", "b"]}).add_layer(a.layer_tars[0], None)
    files_a = a.docker_archive_files(["team/a:1", "team/a:latest"])
    files_b = b.docker_archive_files(["team/b:1"])
    merged = {**files_a, **files_b}
    merged["manifest.json"] = json.dumps(json.loads(files_a["manifest.json"])
                                         + json.loads(files_b["manifest.json"])).encode()
    path = write_tar(tmp_path / "multi.tar", merged)
    result = minict("load", "-i", path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        "Loaded image: team/a:1", "Loaded image: team/a:latest", "Loaded image: team/b:1"]
    rows = [json.loads(line) for line in minict("images", "--format", "json").stdout.splitlines()]
    assert {(r["Repository"], r["Tag"]) for r in rows} == {("team/a", "1"), ("team/a", "latest"),
                                                           ("team/b", "1")}
    # the two images share their one layer
    assert len(os.listdir(minict_root / "layers")) == 1


def test_oci_layout_tag_only_names_use_file_name_or_name_flag(tmp_path, minict, busybox_rootfs):
    img = busybox_image(busybox_rootfs)
    path = img.write_oci_archive(tmp_path / "classroom.tar", ref_name="v1")
    assert minict("load", "-i", path).stdout == "Loaded image: classroom:v1\n"
    result = minict("load", "-i", path, "--name", "registry.example/course/demo")
    assert result.stdout == "Loaded image: registry.example/course/demo:v1\n"


def test_unnamed_image_loads_untagged(tmp_path, minict, minict_root, busybox_rootfs):
    img = busybox_image(busybox_rootfs)
    path = img.write_oci_layout(tmp_path / "x", ref_name=None)
    result = minict("load", "-i", path)
    assert result.stdout.startswith("Loaded image ID: sha256:")
    table = minict("images").stdout.splitlines()
    assert table[1].split()[:2] == ["<none>", "<none>"]


def test_import_directory_and_tar(tmp_path, minict, minict_root, busybox_rootfs):
    result = minict("import", "-c", 'CMD ["sh"]', "-c", "ENV GREETING=hello", "-c", "WORKDIR /root",
                    busybox_rootfs, "busybox:imported")
    assert result.returncode == 0, result.stderr
    info = json.loads(minict("image", "inspect", "busybox:imported").stdout)[0]
    cfg = info["Config"]["config"]
    assert cfg["Cmd"] == ["sh"] and cfg["WorkingDir"] == "/root"
    assert "GREETING=hello" in cfg["Env"] and any(e.startswith("PATH=") for e in cfg["Env"])
    (layer,) = info["Layers"]
    assert os.readlink(os.path.join(layer["Directory"], "bin/sh")) == "/bin/busybox"
    # the same tree as a gzipped tar gives the same layer (same diff id)
    tgz = tmp_path / "rootfs.tar.gz"
    tgz.write_bytes(gzip.compress(tar_from_dir(busybox_rootfs)))
    assert minict("import", tgz, "classroom/bb").returncode == 0
    assert info["Id"] != json.loads(minict("image", "inspect", "classroom/bb").stdout)[0]["Id"]


# ---- images made by tools we did not write ------------------------------------------------------

def skopeo(*args):
    subprocess.run(["skopeo", "copy", "-q", *args], check=True, capture_output=True)


@pytest.fixture
def source_layout(tmp_path, two_layer_image):
    return two_layer_image("gzip", "gzip").write_oci_layout(tmp_path / "src", ref_name="latest")


@pytest.mark.parametrize("dest, ref", [
    ("docker-archive:{tmp}/d.tar:skopeo/busybox:1", "skopeo/busybox:1"),
    ("oci-archive:{tmp}/o.tar:skopeo/busybox:2", "skopeo/busybox:2"),
    ("oci:{tmp}/layout:skopeo/busybox:3", "skopeo/busybox:3"),
])
def test_load_what_skopeo_made(tmp_path, minict, minict_root, source_layout, dest, ref):
    dest = dest.format(tmp=tmp_path)
    skopeo(f"oci:{source_layout}:latest", dest)
    path = dest.split(":")[1]
    result = minict("load", "-i", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Loaded image: {ref}\n"
    check_two_layer_image(minict, minict_root, ref)


def test_load_skopeo_multi_arch_index(tmp_path, minict, minict_root, busybox_rootfs):
    from tests.helpers.images import OCI_INDEX, sha256, write_tree
    amd = busybox_image(busybox_rootfs)
    arm = ImageBuilder(architecture="arm64").add_layer(amd.layer_tars[0], "gzip")
    arm.run_config = {"Cmd": ["echo", "arm"]}
    manifests = [amd.manifest_descriptor(), arm.manifest_descriptor()]
    manifests[1]["platform"]["variant"] = "v8"
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()
    files = {**amd.layout_files([]), **arm.layout_files([])}
    files[f"blobs/sha256/{sha256(index)[7:]}"] = index
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": OCI_INDEX, "digest": sha256(index), "size": len(index),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}).encode()
    write_tree(tmp_path / "src", files)
    skopeo("--all", f"oci:{tmp_path}/src:multi", f"oci:{tmp_path}/copy:multi/arch:1")
    assert minict("load", "-i", tmp_path / "copy").stdout == "Loaded image: multi/arch:1\n"
    info = json.loads(minict("image", "inspect", "multi/arch:1").stdout)[0]
    assert info["Architecture"] == "amd64"
    assert minict("load", "-i", tmp_path / "copy", "--platform", "linux/arm64").returncode == 0
    info = json.loads(minict("image", "inspect", "multi/arch:1").stdout)[0]
    assert info["Architecture"] == "arm64" and info["Config"]["config"]["Cmd"] == ["echo", "arm"]
    result = minict("load", "-i", tmp_path / "copy", "--platform", "linux/s390x")
    assert result.returncode == 21
    assert "no image for linux/s390x (it has: linux/amd64, linux/arm64/v8)" in result.stderr


def test_load_what_umoci_made(tmp_path, minict, minict_root, busybox_rootfs):
    layout = tmp_path / "um"

    def umoci(*args):
        subprocess.run(["umoci", *args], check=True, capture_output=True)

    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:base")
    umoci("unpack", "--image", f"{layout}:base", str(tmp_path / "bundle"))
    subprocess.run(["cp", "-a", f"{busybox_rootfs}/.", str(tmp_path / "bundle/rootfs/")], check=True)
    (tmp_path / "bundle/rootfs/etc/motd").write_text("made by umoci\n")
    umoci("repack", "--image", f"{layout}:base", str(tmp_path / "bundle"))
    umoci("config", "--image", f"{layout}:base", "--config.cmd", "sh", "--tag", "course/umoci:1")
    result = minict("load", "-i", layout)
    assert result.returncode == 0, result.stderr
    assert "Loaded image: course/umoci:1" in result.stdout.splitlines()
    info = json.loads(minict("image", "inspect", "course/umoci:1").stdout)[0]
    top = info["Layers"][-1]["Directory"]
    assert open(f"{top}/etc/motd").read() == "made by umoci\n"
    assert info["Config"]["config"]["Cmd"] == ["sh"]
    assert index_names(minict_root)
