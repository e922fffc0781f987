"""The store: listing, inspect, sharing, rmi's garbage collection, and
safety under concurrent loads and SIGKILL."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.conftest import VENV_BIN
from tests.helpers.images import Entry, ImageBuilder, busybox_image, tar_of
from tests.images.conftest import index_names, store_state

pytestmark = pytest.mark.root


def load(minict, path):
    result = minict("load", "-i", path)
    assert result.returncode == 0, result.stderr
    return result


def test_images_table_json_and_inspect(tmp_path, minict, busybox_rootfs):
    busybox_image(busybox_rootfs).write_docker_archive(tmp_path / "a.tar", ["busybox:1.36"])
    load(minict, tmp_path / "a.tar")
    assert minict("import", busybox_rootfs, "localhost:5000/course/bb:v2").returncode == 0
    lines = minict("images").stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:2]) for line in lines[1:]}
    assert rows == {("busybox", "1.36"), ("localhost:5000/course/bb", "v2")}
    assert lines[1].startswith("localhost:5000/course/bb")  # newest first
    js = [json.loads(line) for line in minict("images", "--format", "json").stdout.splitlines()]
    bb = next(r for r in js if r["Repository"] == "busybox")
    assert len(bb["ID"]) == 12 and bb["Size"].endswith("MB") and bb["CreatedSince"].endswith("ago")
    info = json.loads(minict("image", "inspect", "busybox:1.36").stdout)[0]
    assert info["RepoTags"] == ["busybox:1.36"]
    assert info["Id"].startswith("sha256:") and info["Id"][7:19] == bb["ID"]
    assert info["Manifest"]["config"]["digest"] == info["Id"]
    # an ID prefix resolves too
    assert json.loads(minict("image", "inspect", bb["ID"][:6]).stdout)[0]["Id"] == info["Id"]
    assert minict("images", "-q").stdout.split() == [r["ID"] for r in js]


def test_shared_layers_and_rmi_collects_only_what_is_unused(tmp_path, minict, minict_root,
                                                           two_layer_image, busybox_rootfs):
    two_layer_image().write_oci_archive(tmp_path / "two.tar", ref_name="bb:two")
    busybox_image(busybox_rootfs).write_oci_archive(tmp_path / "one.tar", ref_name="bb:one")
    load(minict, tmp_path / "two.tar")
    load(minict, tmp_path / "one.tar")
    layers = minict_root / "layers"
    assert len(os.listdir(layers)) == 2  # bb:one's only layer is bb:two's base
    base = json.loads(minict("image", "inspect", "bb:one").stdout)[0]["Layers"][0]["DiffID"]

    result = minict("rmi", "bb:two")
    assert result.stdout.splitlines() == ["Untagged: bb:two", "Deleted: bb:two"]
    assert os.listdir(layers) == [base[7:]]
    assert minict("image", "inspect", "bb:one").returncode == 0
    assert minict("rmi", "bb:one").returncode == 0
    assert os.listdir(layers) == [] and os.listdir(minict_root / "blobs/sha256") == []
    assert index_names(minict_root) == {}


def test_rmi_of_one_name_untags_and_keeps_the_image(tmp_path, minict, minict_root, busybox_rootfs):
    busybox_image(busybox_rootfs).write_docker_archive(tmp_path / "a.tar", ["bb:1", "bb:2"])
    load(minict, tmp_path / "a.tar")
    image_id = json.loads(minict("image", "inspect", "bb:1").stdout)[0]["Id"]
    assert minict("rmi", "bb:1").stdout == "Untagged: bb:1\n"
    assert minict("image", "inspect", "bb:2").returncode == 0
    load(minict, tmp_path / "a.tar")
    refused = minict("rmi", image_id[7:19])
    assert refused.returncode == 23 and "several names" in refused.stderr
    forced = minict("rmi", "-f", image_id[7:19])
    assert forced.returncode == 0 and "Deleted" in forced.stdout
    assert os.listdir(minict_root / "layers") == []


def test_two_loads_at_once_both_succeed_and_share_layers(tmp_path, minict_env, minict_root,
                                                        two_layer_image):
    path = two_layer_image().write_docker_archive(tmp_path / "a.tar", ["bb:race"])
    procs = [subprocess.Popen([str(VENV_BIN / "minict"), "load", "-i", str(path)],
                              env=minict_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(3)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert all(rc == 0 for _, _, rc in results), results
    assert len(os.listdir(minict_root / "layers")) == 2
    assert os.listdir(minict_root / "tmp") == []
    assert list(index_names(minict_root)) == ["docker.io/library/bb:race"]


@pytest.fixture(scope="module")
def slow_archive(tmp_path_factory, busybox_rootfs):
    """Three layers, the last ones large and uncompressed, so a load takes a
    while and can be killed in the middle of it."""
    img = busybox_image(busybox_rootfs, None)
    for i in range(2):
        img.add_layer(tar_of([Entry.file(f"big{i}/blob{j}", os.urandom(8 << 20)) for j in range(8)]),
                      None)
    return img.write_docker_archive(tmp_path_factory.mktemp("slow") / "slow.tar", ["bb:slow"])


@pytest.mark.slow
@pytest.mark.parametrize("wait_for", ["first-layer-renamed", "second-layer-renamed"])
def test_sigkill_during_load_leaves_no_half_image(tmp_path, minict, minict_env, minict_root,
                                                 busybox_rootfs, slow_archive, wait_for):
    busybox_image(busybox_rootfs).write_oci_archive(tmp_path / "small.tar", ref_name="bb:small")
    load(minict, tmp_path / "small.tar")
    before = store_state(minict_root)
    before_index = index_without_times(minict_root)
    want = {"first-layer-renamed": 2, "second-layer-renamed": 3}[wait_for]
    proc = subprocess.Popen([str(VENV_BIN / "minict"), "load", "-i", str(slow_archive)],
                            env=minict_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(os.listdir(minict_root / "layers")) < want and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # No half image is visible, at once: the load either committed whole
    # (if the kill came a moment too late) or not at all.
    names = list(index_names(minict_root))
    if "docker.io/library/bb:slow" in names:
        info = json.loads(minict("image", "inspect", "bb:slow").stdout)[0]
        assert all(os.path.isdir(layer["Directory"]) for layer in info["Layers"])
        assert minict("rmi", "bb:slow").returncode == 0
    else:
        assert names == ["docker.io/library/bb:small"]
        assert minict("image", "inspect", "bb:slow").returncode == 11
    # The next command that writes cleans up orphan layers and temp files:
    assert minict("rmi", "bb:small").returncode == 0
    load(minict, tmp_path / "small.tar")
    # Everything is as before, but the re-load's own timestamp in the index.
    after = store_state(minict_root)
    assert {k: v for k, v in after.items() if k != "index.json"} == \
        {k: v for k, v in before.items() if k != "index.json"}
    assert index_without_times(minict_root) == before_index
    # And the interrupted load simply works when run again.
    load(minict, slow_archive)
    assert len(os.listdir(minict_root / "layers")) == 3


def index_without_times(root):
    index = json.loads((root / "index.json").read_text())
    for record in index["images"].values():
        record.pop("added")
    return index


def test_untagged_image_is_shown_and_removable_by_id(tmp_path, minict, minict_root, busybox_rootfs):
    img = ImageBuilder().add_layer(tar_of([Entry.file("a", b"x")]), "gzip")
    load(minict, img.write_oci_layout(tmp_path / "l", ref_name=None))
    image_id = minict("images", "-q").stdout.strip()
    assert minict("rmi", image_id).returncode == 0
    assert minict("images", "-q").stdout == ""
    assert os.listdir(minict_root / "layers") == []
