"""`minict save`: archives that the tools we did not write accept (skopeo,
umoci, podman, Charliecloud's ch-run), that `minict load` brings back as
the same images, and bad input that leaves nothing behind."""

import hashlib
import json
import os
import pty
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from tests.conftest import VENV_BIN
from tests.helpers.images import Entry, ImageBuilder, tar_of
from tests.images.conftest import store_state

pytestmark = pytest.mark.root

APP_LAYER_2 = "hello from layer 2\n"  # /etc/motd in two_layer_image's top layer


def inspect(minict, ref, env=None) -> dict:
    result = minict("image", "inspect", ref, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def save(minict, *args, env=None):
    result = minict("save", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result


def members(path) -> dict[str, bytes]:
    """The regular files of a tar, by name."""
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_rows(minict, env=None) -> set:
    out = minict("images", "--format", "json", env=env).stdout
    return {(r["Repository"], r["Tag"], r["ID"]) for r in map(json.loads, out.splitlines())}


@pytest.fixture
def images(tmp_path, minict, minict_root, two_layer_image, busybox_rootfs):
    """A store with: course/app (two gzip layers) named course/app:1,
    course/app:latest and localhost:5000/mirror/app:v1; busybox:plain (made
    by minict import, one uncompressed layer); and an untagged image."""
    two_layer_image().write_oci_archive(tmp_path / "app.tar", ref_name="course/app:1")
    assert minict("load", "-i", tmp_path / "app.tar").returncode == 0
    for name in ("course/app:latest", "localhost:5000/mirror/app:v1"):
        assert minict("tag", "course/app:1", name).returncode == 0
    assert minict("import", busybox_rootfs, "busybox:plain").returncode == 0
    untagged = ImageBuilder({"Cmd": ["cat", "/c.txt"]}).add_layer(
        tar_of([Entry.file("c.txt", b"untagged\n")]), "gzip")
    loaded = minict("load", "-i", untagged.write_oci_layout(tmp_path / "c", ref_name=None))
    assert loaded.stdout.startswith("Loaded image ID: sha256:"), loaded.stderr
    return {"app": inspect(minict, "course/app:1"), "plain": inspect(minict, "busybox:plain"),
            "untagged": inspect(minict, loaded.stdout.split()[-1])}


# ---- the docker format (docker save since Docker 25) --------------------------------

def test_docker_format_layout(tmp_path, minict, minict_root, images):
    app, untagged = images["app"], images["untagged"]
    out = tmp_path / "out.tar"
    save(minict, "-o", out, "course/app:1", "localhost:5000/mirror/app:v1", untagged["Id"][7:19])
    files = members(out)
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} < set(files)
    blobs = {name: data for name, data in files.items() if name.startswith("blobs/")}
    assert len(blobs) == len(files) - 4
    for name, data in blobs.items():  # content-addressed
        assert sha256(data) == "sha256:" + name.removeprefix("blobs/sha256/")

    entries = json.loads(files["manifest.json"])
    assert [e["RepoTags"] for e in entries] == [
        ["course/app:1", "localhost:5000/mirror/app:v1"], None]
    assert entries[0]["Config"] == f"blobs/sha256/{app['Id'][7:]}"
    assert entries[1]["Config"] == f"blobs/sha256/{untagged['Id'][7:]}"
    # the layers are the store's blobs, byte for byte (still gzip: not recompressed)
    stored = [layer["digest"][7:] for layer in app["Manifest"]["layers"]]
    assert entries[0]["Layers"] == [f"blobs/sha256/{h}" for h in stored]
    for h in stored:
        assert files[f"blobs/sha256/{h}"] == (minict_root / "blobs/sha256" / h).read_bytes()
        assert files[f"blobs/sha256/{h}"][:2] == b"\x1f\x8b"

    index = json.loads(files["index.json"])
    assert [(d["digest"], d.get("annotations")) for d in index["manifests"]] == [
        (app["ManifestDigest"], {"io.containerd.image.name": "docker.io/course/app:1",
                                 "org.opencontainers.image.ref.name": "1"}),
        (app["ManifestDigest"], {"io.containerd.image.name": "localhost:5000/mirror/app:v1",
                                 "org.opencontainers.image.ref.name": "v1"}),
        (untagged["ManifestDigest"], None)]
    assert index["manifests"][0]["platform"] == {"architecture": "amd64", "os": "linux"}
    assert json.loads(files["repositories"]) == {"course/app": {"1": stored[-1]},
                                                 "localhost:5000/mirror/app": {"v1": stored[-1]}}
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}


def test_skopeo_reads_the_docker_format(tmp_path, minict, images):
    app = images["app"]
    out = tmp_path / "out.tar"
    save(minict, "-o", out, "course/app:1", "localhost:5000/mirror/app:v1", "busybox:plain")
    for name in ("course/app:1", "localhost:5000/mirror/app:v1"):
        info = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{out}:{name}"],
                                         check=True, capture_output=True, text=True).stdout)
        assert info["Layers"] == [layer["DiffID"] for layer in app["Layers"]]
    config = subprocess.run(["skopeo", "inspect", "--config", "--raw",
                             f"docker-archive:{out}:busybox:plain"],
                            check=True, capture_output=True).stdout
    assert sha256(config) == images["plain"]["Id"]
    # only the names asked for: course/app:latest was not
    missing = subprocess.run(["skopeo", "inspect", f"docker-archive:{out}:course/app:latest"],
                             capture_output=True, text=True)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_a_name_without_tag_saves_every_tag(tmp_path, minict, images):
    save(minict, "-o", tmp_path / "out.tar", "course/app")
    entries = json.loads(members(tmp_path / "out.tar")["manifest.json"])
    assert [e["RepoTags"] for e in entries] == [["course/app:1", "course/app:latest"]]


@pytest.fixture
def podman(tmp_path):
    """podman on a throwaway store under tmp_path (vfs: no mounts to undo).
    Its runroot must be shorter than 50 characters, so it lives in /tmp."""
    conf = tmp_path / "containers.conf"
    conf.write_text("[containers]\ndefault_ulimits = []\n")
    (tmp_path / "podman-tmp").mkdir()
    runroot = tempfile.mkdtemp(prefix="minict-podman-", dir="/tmp")
    env = dict(os.environ, CONTAINERS_CONF=str(conf), TMPDIR=str(tmp_path / "podman-tmp"))

    def run(*args):
        return subprocess.run(["podman", "--root", str(tmp_path / "podman-root"),
                               "--runroot", runroot, "--cgroup-manager=cgroupfs",
                               "--storage-driver", "vfs", "--events-backend", "none",
                               *map(str, args)],
                              env=env, capture_output=True, text=True, timeout=180)
    yield run
    shutil.rmtree(runroot)


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman missing")
def test_podman_loads_the_docker_format(tmp_path, minict, images, podman):
    out = tmp_path / "out.tar"
    save(minict, "-o", out, "course/app:1", "localhost:5000/mirror/app:v1", "busybox:plain")
    loaded = podman("load", "-i", out)
    assert loaded.returncode == 0, loaded.stderr
    # With several images podman reads the archive as a docker archive (as
    # an oci-archive it would need a name to choose one), and puts the short
    # names found there under localhost/, as podman does (libimage NormalizeName).
    listed = podman("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert set(listed) == {"localhost/course/app:1", "localhost:5000/mirror/app:v1",
                           "localhost/busybox:plain"}
    for name, image in (("localhost:5000/mirror/app:v1", "app"), ("localhost/busybox:plain", "plain")):
        pid = podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip()
        assert f"sha256:{pid}" == images[image]["Id"]


# ---- the oci format (an oci-archive) ----------------------------------------------------

def unpack(tmp_path, archive, ref) -> Path:
    """umoci's view of an oci-archive: the layout extracted, then the image
    `ref` unpacked into a runtime bundle. Returns the bundle's rootfs."""
    layout = tmp_path / "layout"
    layout.mkdir()
    subprocess.run(["tar", "-xf", str(archive), "-C", str(layout)], check=True)
    bundle = tmp_path / "bundle"
    result = subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return bundle / "rootfs"


def test_oci_format_for_skopeo_and_umoci(tmp_path, minict, images):
    app, untagged = images["app"], images["untagged"]
    out = tmp_path / "out.tar"
    save(minict, "--format", "oci", "-o", out, "course/app:1", untagged["Id"])
    files = members(out)
    assert not {"manifest.json", "repositories"} & set(files)
    index = json.loads(files["index.json"])
    assert [(d["digest"], d.get("annotations")) for d in index["manifests"]] == [
        (app["ManifestDigest"], {"org.opencontainers.image.ref.name": "docker.io/course/app:1"}),
        (untagged["ManifestDigest"], None)]
    info = json.loads(subprocess.run(
        ["skopeo", "inspect", f"oci-archive:{out}:docker.io/course/app:1"],
        check=True, capture_output=True, text=True).stdout)
    assert info["Digest"] == app["ManifestDigest"]
    assert info["Layers"] == [layer["digest"] for layer in app["Manifest"]["layers"]]

    rootfs = unpack(tmp_path, out, "docker.io/course/app:1")
    assert (rootfs / "etc/motd").read_text() == APP_LAYER_2
    assert (rootfs / "bin/busybox").is_file()
    assert not os.path.lexists(rootfs / "bin/vi")  # the top layer's whiteout applied


def test_oci_format_rewrites_a_docker_manifest(tmp_path, minict, two_layer_image):
    # A classic docker save archive loads with a Docker v2 manifest
    # (uncompressed layers). Its own store: a layer shared with an image
    # loaded in another compression would have no blob of this one's.
    two_layer_image().write_docker_archive(tmp_path / "classic.tar", ["classic:1"])
    assert minict("load", "-i", tmp_path / "classic.tar").returncode == 0
    image = inspect(minict, "classic:1")
    assert image["Manifest"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"

    save(minict, "-o", tmp_path / "docker.tar", "classic:1")
    index = json.loads(members(tmp_path / "docker.tar")["index.json"])
    assert index["manifests"][0]["digest"] == image["ManifestDigest"]  # kept as it is

    out = tmp_path / "oci.tar"
    save(minict, "--format", "oci", "-o", out, "classic:1")
    files = members(out)
    (desc,) = json.loads(files["index.json"])["manifests"]
    manifest = json.loads(files[f"blobs/sha256/{desc['digest'][7:]}"])
    assert desc["mediaType"] == manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"] == dict(image["Manifest"]["config"],
                                      mediaType="application/vnd.oci.image.config.v1+json")
    assert [(layer["mediaType"], layer["digest"]) for layer in manifest["layers"]] == [
        ("application/vnd.oci.image.layer.v1.tar", layer["digest"])
        for layer in image["Manifest"]["layers"]]
    rootfs = unpack(tmp_path, out, "docker.io/library/classic:1")
    assert (rootfs / "etc/motd").read_text() == APP_LAYER_2


@pytest.mark.skipif(shutil.which("ch-run") is None, reason="ch-run (charliecloud-runtime) missing")
def test_charliecloud_runs_what_was_saved(tmp_path, minict, images):
    # No ch-convert here (it reads no OCI archive anyway): umoci unpacks the
    # image into a directory, which is what ch-run runs.
    out = tmp_path / "out.tar"
    save(minict, "--format", "oci", "-o", out, "course/app")
    rootfs = unpack(tmp_path, out, "docker.io/course/app:latest")
    result = subprocess.run(["ch-run", str(rootfs), "--", "/bin/cat", "/etc/motd"],
                            env=dict(os.environ, USER="root"), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == APP_LAYER_2


# ---- round trips --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_round_trip_into_an_empty_store(tmp_path, minict, images, fmt):
    out = tmp_path / "all.tar"
    save(minict, "--format", fmt, "-o", out, "course/app", "localhost:5000/mirror/app:v1",
         "busybox:plain", images["untagged"]["Id"])
    empty = {"MINICT_ROOT": str(tmp_path / "empty-root")}
    result = minict("load", "-i", out, env=empty)
    assert result.returncode == 0, result.stderr
    assert image_rows(minict, env=empty) == image_rows(minict)  # names, and IDs
    assert len(image_rows(minict)) == 5  # 3 names of app, busybox:plain, <none>
    for ref, image in (("course/app:1", "app"), ("busybox:plain", "plain")):
        assert inspect(minict, ref, env=empty)["ManifestDigest"] == images[image]["ManifestDigest"]


def test_standard_output_gives_the_same_bytes(tmp_path, minict, minict_env, images):
    save(minict, "-o", tmp_path / "file.tar", "course/app:1", "busybox:plain")
    with open(tmp_path / "piped.tar", "wb") as piped:
        result = subprocess.run([str(VENV_BIN / "minict"), "save", "course/app:1", "busybox:plain"],
                                stdout=piped, stderr=subprocess.PIPE, env=minict_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "piped.tar").read_bytes() == (tmp_path / "file.tar").read_bytes()
    assert (tmp_path / "file.tar").stat().st_mode & 0o777 == 0o600  # as docker's


def test_o_replaces_an_existing_file(tmp_path, minict, images):
    out = tmp_path / "out.tar"
    out.write_bytes(b"an older archive")
    save(minict, "-o", out, "busybox:plain")
    assert json.loads(members(out)["manifest.json"])[0]["RepoTags"] == ["busybox:plain"]
    assert sorted(os.listdir(tmp_path)).count("out.tar") == 1
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".out.tar")]


# ---- bad input --------------------------------------------------------------------------------

def fails(minict, minict_root, args, code, fragment, out_dir):
    """One line naming the problem and what to do, the code, the store as it
    was, and nothing (no archive, no temp file) left in out_dir."""
    before, listing = store_state(minict_root), sorted(os.listdir(out_dir))
    result = minict(*args)
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("minict: ") and "(" in lines[0], result.stderr
    assert fragment in lines[0], lines[0]
    assert result.stdout == ""
    assert store_state(minict_root) == before
    assert sorted(os.listdir(out_dir)) == listing


@pytest.mark.parametrize("args, code, fragment", [
    (["save", "-o", "{out}/x.tar", "nope:1"], 11, "no image nope:1 in the store"),
    (["save", "-o", "{out}/x.tar", "busybox:plain", "nope:1"], 11, "no image nope:1"),
    (["save", "-o", "{out}/missing/x.tar", "busybox:plain"], 72,
     "directory {out}/missing does not exist"),
    (["save", "-o", "{out}", "busybox:plain"], 72, "is a directory"),
    (["save", "--format", "zip", "-o", "{out}/x.tar", "busybox:plain"], 27,
     "unknown archive format 'zip'"),
])
def test_bad_input(tmp_path, minict, minict_root, images, args, code, fragment):
    out = tmp_path / "out"
    out.mkdir()
    args = [a.format(out=out) for a in args]
    fails(minict, minict_root, args, code, fragment.format(out=out), out)


def test_a_failed_save_keeps_the_old_file(tmp_path, minict, minict_root, images):
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.tar").write_bytes(b"an older archive")
    fails(minict, minict_root, ["save", "-o", out / "x.tar", "nope:1"], 11, "nope:1", out)
    assert (out / "x.tar").read_bytes() == b"an older archive"


def test_a_blob_missing_from_the_store(tmp_path, minict, minict_root, images):
    layer = images["app"]["Manifest"]["layers"][0]["digest"]
    (minict_root / "blobs/sha256" / layer[7:]).unlink()
    out = tmp_path / "out"
    out.mkdir()
    fails(minict, minict_root, ["save", "-o", out / "x.tar", "course/app:1"], 15,
          f"blob {layer} of image course/app:1 is not in the store", out)


def test_refuses_a_terminal(minict_env, images):
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([str(VENV_BIN / "minict"), "save", "busybox:plain"],
                                stdout=terminal, stderr=subprocess.PIPE, text=True,
                                env=minict_env, timeout=60)
        os.set_blocking(controller, False)
        try:
            shown = os.read(controller, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(controller)
        os.close(terminal)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "minict: refusing to write an image archive to a terminal: give -o FILE or redirect "
        "standard output (see minict save --help)"]
    assert shown == b""  # not a byte of tar on the screen


def test_disk_full(tmp_path, minict, minict_root, images):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        fails(minict, minict_root, ["save", "-o", small / "x.tar", "course/app:1"], 22,
              "no space left on device while writing", small)
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


@pytest.mark.parametrize("form", ["oci", "docker-classic"])
def test_a_layer_unpacked_before_from_another_blob_keeps_this_images_blob(
        tmp_path, minict, images, two_layer_image, form):
    # The same layers (same diff ids), but stored uncompressed: other blobs.
    same = two_layer_image(compression=None, second=None)
    if form == "oci":
        archive = same.write_oci_archive(tmp_path / "plain.tar", ref_name="course/plain:1")
    else:
        archive = same.write_docker_archive(tmp_path / "plain.tar", ["course/plain:1"])
    assert minict("load", "-i", archive).returncode == 0
    plain = inspect(minict, "course/plain:1")
    assert [x["DiffID"] for x in plain["Layers"]] == [x["DiffID"] for x in images["app"]["Layers"]]
    out = tmp_path / "out.tar"
    save(minict, "-o", out, "course/plain:1")
    files = members(out)
    for layer in plain["Manifest"]["layers"]:
        data = files[f"blobs/sha256/{layer['digest'][7:]}"]
        assert sha256(data) == layer["digest"] and data[:2] != b"\x1f\x8b"   # its own, not gzip
