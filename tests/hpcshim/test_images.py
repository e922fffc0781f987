"""hpcshim exec/run on archives, OCI layouts and minict images, per runtime.

One image in three formats (OCI archive, docker archive, OCI layout): the
busybox rootfs, then a layer adding /etc/motd and /etc/doomed, then a layer
whose whiteout deletes /etc/doomed. ch-run runs the real unpack (umoci) into
hpcshim's cache; minict loads/saves for real; so does the real Apptainer with
a minict image (each archive kind runs in test_apptainer_real.py); the URI
forms for Singularity are checked against the stand-ins of test_backends.py.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hpcshim.conftest import minict_store_env
from tests.helpers.apptainer import find_apptainer
from tests.helpers.images import Entry, ImageBuilder, tar_from_dir, tar_of, write_tar
from tests.hpcshim.test_backends import read_record, stub_path  # noqa: F401 (fixture)

BIN = Path(sys.executable).parent
HPCSHIM = str(BIN / "hpcshim")
CONFIG = {"Cmd": ["cat", "/etc/motd"], "WorkingDir": "/etc",
          "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH=/opt/imglib"]}
PROBE = ("cat /etc/motd; test -e /etc/doomed && echo doomed-present || echo doomed-absent; "
         "echo LDP=$LD_LIBRARY_PATH; pwd")


def builder(rootfs) -> ImageBuilder:
    img = ImageBuilder(CONFIG).add_layer(tar_from_dir(rootfs))
    img.add_layer(tar_of([Entry.file("etc/motd", b"hello from layer 2\n"),
                          Entry.file("etc/doomed", b"deleted above\n")]))
    return img.add_layer(tar_of([Entry.whiteout("etc/doomed")]), compression=None)


@pytest.fixture(scope="module")
def images(tmp_path_factory, busybox_rootfs) -> dict:
    d = tmp_path_factory.mktemp("shim-images")
    img = builder(busybox_rootfs)
    paths = {"oci-archive": img.write_oci_archive(d / "demo-oci.tar", "demo:1"),
             "docker-archive": img.write_docker_archive(d / "demo-docker.tar", ["demo:1"]),
             "oci-layout": img.write_oci_layout(d / "layout", "demo:1")}
    two = ImageBuilder(CONFIG).add_layer(tar_of([Entry.file("a", b"a")]))
    files = two.layout_files(["one:1", "two:1"])
    paths["two-images"] = write_tar(d / "two.tar", files)
    broken = {k: v for k, v in img.layout_files(["demo:1"]).items()
              if not k.endswith(img.layers[0]["digest"][7:])}
    paths["broken"] = write_tar(d / "broken.tar", broken)
    (d / "notes.tar").write_text("not a tar\n")
    paths["not-a-tar"] = d / "notes.tar"
    paths["plain-tar"] = write_tar(d / "plain.tar", {"hello.txt": b"hi"})
    paths["config_digest"] = json.loads(img.manifest_bytes())["config"]["digest"]
    return paths


def shim(env, *args, **kw):
    return subprocess.run([HPCSHIM, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=180, **kw)


def cache_leftovers(env) -> list:
    """Temporary directories or files left anywhere in hpcshim's cache."""
    root = Path(env["HPCSHIM_CACHE_DIR"])
    return [p for p in root.rglob(".tmp-*")] if root.exists() else []


def spelled(images, kind) -> str:
    return {"oci-archive": str(images["oci-archive"]),               # plain .tar: found by content
            "docker-archive": str(images["docker-archive"]),
            "oci-layout": f"oci:{images['oci-layout']}"}[kind]


# ---- ch-run: a real unpack into the cache ---------------------------------------

needs_chrun = pytest.mark.skipif(shutil.which("ch-run") is None or shutil.which("umoci") is None,
                                 reason="ch-run or umoci missing")


@pytest.mark.root
@needs_chrun
@pytest.mark.parametrize("kind", ["oci-archive", "docker-archive", "oci-layout"])
def test_chrun_unpacks_once_and_honours_whiteouts(images, shim_env, kind):
    image = spelled(images, kind)
    first = shim(shim_env, "exec", "-v", "--runtime", "ch-run", image, "sh", "-c", PROBE)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["hello from layer 2", "doomed-absent",
                                         "LDP=/opt/imglib", "/etc"]   # image Env and WorkingDir
    digest = images["config_digest"]
    cached = Path(shim_env["HPCSHIM_CACHE_DIR"]) / "images" / digest[7:]
    assert f"hpcshim: image: unpacked {digest} at {cached}\n" in first.stderr
    before = cached.stat()
    again = shim(shim_env, "run", "-v", "--runtime", "ch-run", image)     # the image's CMD
    assert (again.returncode, again.stdout) == (0, "hello from layer 2\n"), again.stderr
    assert f"hpcshim: image: cached unpack of {digest} at {cached}\n" in again.stderr
    after = cached.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)   # not unpacked again
    assert sorted(os.listdir(cached.parent)) == [digest[7:]] and not cache_leftovers(shim_env)


@pytest.mark.root
@needs_chrun
def test_chrun_concurrent_first_runs_share_one_unpack(images, shim_env):
    runs = [subprocess.Popen([HPCSHIM, "exec", "--runtime", "ch-run", str(images["oci-archive"]),
                              "cat", "/etc/motd"], env=shim_env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=180) for p in runs]
    assert [p.returncode for p in runs] == [0, 0, 0], outs
    assert all(out == "hello from layer 2\n" for out, _ in outs)
    assert os.listdir(Path(shim_env["HPCSHIM_CACHE_DIR"]) / "images") == [images["config_digest"][7:]]


@pytest.mark.root
@needs_chrun
def test_chrun_broken_archive_leaves_nothing(images, shim_env):
    result = shim(shim_env, "exec", "--runtime", "ch-run", images["broken"], "true")
    assert result.returncode == 41 and "is missing from the archive" in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1
    images_dir = Path(shim_env["HPCSHIM_CACHE_DIR"]) / "images"
    assert os.listdir(images_dir) == []


# ---- minict: its own references, and archives loaded into its store ----------------

@pytest.fixture
def minict_env(shim_env, tmp_path, images):
    env = minict_store_env(shim_env, tmp_path, images["docker-archive"])
    subprocess.run([str(BIN / "minict"), "tag", "demo:1", "busybox:latest"], env=env, check=True)
    return env


@pytest.mark.root
def test_minict_backend_takes_minict_refs(minict_env):
    result = shim(minict_env, "exec", "--runtime", "minict", "minict:busybox", "sh", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["hello from layer 2", "doomed-absent", "LDP=/opt/imglib", "/etc"]
    dry = shim(minict_env, "exec", "--dry-run", "--runtime", "minict", "minict:busybox", "true")
    assert dry.stdout.split()[-2:] == ["busybox", "true"]          # minict gets its own name


@pytest.mark.root
def test_minict_backend_loads_an_archive(minict_env, images, tmp_path):
    minict_env["MINICT_ROOT"] = str(tmp_path / "fresh-root")        # the image is not there yet
    result = shim(minict_env, "run", "-v", "--runtime", "minict", images["oci-archive"])
    assert (result.returncode, result.stdout) == (0, "hello from layer 2\n"), result.stderr
    assert f"hpcshim: image: loaded {images['oci-archive']} into minict's store" in result.stderr
    listed = subprocess.run([str(BIN / "minict"), "images", "--format", "json"], env=minict_env,
                            capture_output=True, text=True, check=True).stdout
    assert '"demo"' in listed                                         # the side effect, as announced


@pytest.mark.root
@needs_chrun
def test_chrun_with_a_minict_ref_saves_and_unpacks(minict_env, images):
    result = shim(minict_env, "exec", "-v", "--runtime", "ch-run", "minict:busybox", "sh", "-c", PROBE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["hello from layer 2", "doomed-absent"]
    assert f"unpacked {images['config_digest']} (minict's busybox)" in result.stderr
    assert not cache_leftovers(minict_env)


# ---- Apptainer / Singularity: URIs they take natively -----------------------------

@pytest.mark.unit
@pytest.mark.parametrize("flavour, line", [("apptainer", "apptainer version 1.2.5"),
                                           ("singularity", "singularity-ce version 3.11.4")])
def test_apptainer_golden_argv_per_kind(stub_path, images, flavour, line):  # noqa: F811
    make, env, record = stub_path
    make(flavour, line)
    oci, docker, layout = images["oci-archive"], images["docker-archive"], images["oci-layout"]
    cases = [(str(oci), f"oci-archive:{oci}"),                       # a plain .tar gets its prefix
             (str(docker), f"docker-archive:{docker}"),
             (f"oci-archive:{oci}", f"oci-archive:{oci}"),            # given URIs pass through
             (f"docker-archive:{docker}:demo:1", f"docker-archive:{docker}:demo:1"),
             (f"oci:{layout}", f"oci:{layout}"),
             (f"oci-archive:{images['two-images']}:two:1", f"oci-archive:{images['two-images']}:two:1")]
    for given, expected in cases:
        result = shim(env, "exec", "--runtime", flavour, given, "true")
        assert result.returncode == 0, (given, result.stderr)
        assert read_record(record)[0] == ["exec", expected, "true"], given


@pytest.mark.root
def test_apptainer_gets_a_minict_image_as_a_cached_oci_archive(minict_env, tmp_path):
    env = find_apptainer().env(minict_env, tmp_path)          # the real Apptainer
    first = shim(env, "exec", "-v", "--runtime", "apptainer", "minict:busybox", "sh", "-c", PROBE)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[:2] == ["hello from layer 2", "doomed-absent"]
    saved = [line for line in first.stderr.splitlines() if "hpcshim: image: saved minict's busybox" in line]
    assert len(saved) == 1, first.stderr
    archive = Path(saved[0].rsplit(" as ", 1)[1])
    assert archive.parent == Path(env["HPCSHIM_CACHE_DIR"]) / "minict"
    index = subprocess.run(["tar", "xOf", archive, "index.json"], capture_output=True, text=True, check=True)
    assert len(json.loads(index.stdout)["manifests"]) == 1
    mtime = archive.stat().st_mtime_ns
    again = shim(env, "exec", "-v", "--runtime", "apptainer", "minict:busybox", "cat", "/etc/motd")
    assert (again.returncode, again.stdout) == (0, "hello from layer 2\n"), again.stderr
    assert "image: cached archive of minict's busybox" in again.stderr
    assert archive.stat().st_mtime_ns == mtime


# ---- bad inputs: one line, a code of their own, nothing left in the cache --------------

@pytest.mark.unit
def test_bad_images(stub_path, images, tmp_path):  # noqa: F811
    make, env, _record = stub_path
    make("apptainer", "apptainer version 1.2.5")
    env["HPCSHIM_CACHE_DIR"] = str(tmp_path / "cache")
    cases = [
        (str(tmp_path / "missing.tar"), 40, "does not exist"),
        (f"oci-archive:{tmp_path}/missing", 40, "does not exist"),
        (f"oci:{images['oci-archive']}", 41, "is not a directory"),
        (str(images["not-a-tar"]), 41, "is not a tar archive"),
        (str(images["plain-tar"]), 41, "neither an OCI archive"),
        (str(images["two-images"]), 42, "holds 2 images (one:1, two:1): say which"),
        (f"oci-archive:{images['two-images']}:three", 43, "no image 'three'"),
        ("minict:busybox", 44, "`minict` is not on PATH"),
    ]
    for image, code, words in cases:
        result = shim(env, "exec", "--runtime", "apptainer", image, "true")
        assert (result.returncode, len(result.stderr.splitlines())) == (code, 1), (image, result.stderr)
        assert words in result.stderr, (image, result.stderr)
    assert not cache_leftovers(env)


@pytest.mark.root
def test_unknown_minict_image(minict_env):
    for runtime in ("minict", "ch-run", "apptainer"):
        result = shim(minict_env, "exec", "--runtime", runtime, "minict:nosuch", "true")
        if result.returncode == 20:          # that runtime is not installed here
            continue
        assert result.returncode == 43 and "minict has no image 'nosuch'" in result.stderr, result.stderr
    assert not cache_leftovers(minict_env)
