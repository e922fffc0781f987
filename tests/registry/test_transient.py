"""Transient network trouble is retried; lasting trouble fails cleanly.

The real registry never misbehaves on cue, so these use FakeRegistry, a
hand-written server speaking just enough of the distribution API.
"""

import signal
import subprocess

import pytest

from minicontainer import errors
from minicontainer.image.registry import RegistryClient
from minicontainer.image.store import Store
from tests.conftest import VENV_BIN
from tests.helpers.images import Entry, ImageBuilder, sha256, tar_of
from tests.helpers.trees import snapshot
from tests.helpers.waiting import wait_for
from tests.registry.servers import FakeRegistry

pytestmark = pytest.mark.unit


def serve_image(fake: FakeRegistry) -> ImageBuilder:
    image = ImageBuilder()
    image.add_layer(tar_of([Entry.dir("etc"),
                            Entry.file("etc/big", bytes(range(256)) * 4096)]), "gzip")
    image.add_layer(tar_of([Entry.file("hello", b"hello\n")]), None)
    fake.add_image("test/thing", "latest", image)
    return image


@pytest.fixture
def fake_registry(request):
    fake = FakeRegistry(**getattr(request, "param", {})).start()
    serve_image(fake)
    yield fake
    fake.stop()


def pulled(minict, minict_root, fake):
    ref = f"{fake.host}/test/thing:latest"
    done = minict("pull", ref)
    assert done.returncode == 0, done.stderr
    image = Store(minict_root).resolve(ref)
    assert (image.layer_dirs[1] / "hello").read_text() == "hello\n"
    return image


@pytest.mark.parametrize("fake_registry", [{"fail_first": 3}], indirect=True)
def test_503s_are_retried(minict, minict_root, fake_registry):
    pulled(minict, minict_root, fake_registry)
    statuses = [status for _, _, status in fake_registry.log]
    assert statuses[:3] == [503, 503, 503] and statuses[3:] and set(statuses[3:]) == {200}


@pytest.mark.parametrize("fake_registry", [{"drop_connection_first": 2}], indirect=True)
def test_connections_dropped_before_an_answer_are_retried(minict, minict_root, fake_registry):
    pulled(minict, minict_root, fake_registry)
    assert [status for _, _, status in fake_registry.log][:2] == [0, 0]


@pytest.mark.parametrize("fake_registry", [{"drop_first_blob": True}], indirect=True)
def test_a_blob_cut_off_midway_resumes_with_range(minict, minict_root, fake_registry):
    pulled(minict, minict_root, fake_registry)
    resumed = [(path, wanted, status) for path, wanted, status in fake_registry.log
               if "/blobs/" in path and wanted]
    assert resumed and all(status == 206 for _, _, status in resumed)


@pytest.mark.parametrize("fake_registry", [{"drop_first_blob": True, "honour_range": False}],
                         indirect=True)
def test_a_server_ignoring_range_is_read_again_from_the_start(minict, minict_root,
                                                              fake_registry):
    pulled(minict, minict_root, fake_registry)
    resumed = [status for path, wanted, status in fake_registry.log if "/blobs/" in path and wanted]
    assert resumed and set(resumed) == {200}


@pytest.mark.parametrize("fake_registry", [{"fail_first": 1000}], indirect=True)
def test_a_registry_that_stays_down_fails_cleanly(minict, minict_root, fake_registry):
    Store(minict_root)   # an existing store; it must not change
    before = snapshot(minict_root)
    done = minict("pull", f"{fake_registry.host}/test/thing:latest")
    assert done.returncode == errors.RegistryError.exit_code, done.stderr
    assert done.stderr.count("\n") == 1 and "unavailable" in done.stderr and "503" in done.stderr
    assert snapshot(minict_root) == before
    assert 3 <= len(fake_registry.log) <= 10      # retried, but not forever


def test_loopback_plain_http_after_https_fails(fake_registry):
    # FakeRegistry speaks plain HTTP only: HTTPS is tried, then HTTP.
    with RegistryClient(fake_registry.host) as client:
        assert client.ping() == 200 and client.base_url == f"http://{fake_registry.host}"


def test_a_pull_killed_midway_resumes_and_leaves_nothing_behind(minict, minict_env, minict_root):
    """SIGKILL during a download; the next pull asks only for what is missing
    (the first layer not at all, the second from where it stopped), cleans
    up, and the store then holds exactly what a clean pull leaves."""
    fake = FakeRegistry().start()
    try:
        image = serve_image(fake)
        fake.stall_blobs.add(image.layers[1]["digest"])    # the first layer gets unpacked
        ref = f"{fake.host}/test/thing:latest"
        victim = subprocess.Popen([str(VENV_BIN / "minict"), "pull", ref], env=minict_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert fake.stalled.wait(timeout=60), "the pull never started a blob"
            first, second = (Store(minict_root).download_path(layer["digest"]) for layer in image.layers)
            wait_for(lambda: second.exists() and second.stat().st_size, 30, "the half blob on disk")
            victim.send_signal(signal.SIGKILL)
        finally:
            victim.wait(timeout=30)
        assert victim.returncode == -signal.SIGKILL
        # It died holding work in progress: the first layer, half the second.
        assert any((minict_root / "layers").iterdir()) and any((minict_root / "tmp").iterdir())
        held = second.stat().st_size
        assert first.stat().st_size == image.layers[0]["size"] and 0 < held < image.layers[1]["size"]
        fake.release.set()
        fake.log.clear()
        done = minict("pull", ref)
        assert done.returncode == 0, done.stderr
    finally:
        fake.release.set()
        fake.stop()
    blob_requests = [(path.rsplit("/", 1)[1], wanted, status) for path, wanted, status in fake.log
                     if "/blobs/" in path]
    assert blob_requests == [(sha256(image.config_bytes()), "", 200),
                             (image.layers[1]["digest"], f"bytes={held}-", 206)], blob_requests
    assert f"Resuming from byte {held}" in done.stdout
    image = Store(minict_root).resolve(ref)
    assert list((minict_root / "tmp").iterdir()) == []
    assert list((minict_root / "downloads/sha256").iterdir()) == []
    assert sorted(p.name for p in (minict_root / "layers").iterdir()) == \
        sorted(d[7:] for d in image.diff_ids)
    expected_blobs = {image.manifest_digest, image.config_digest,
                      *(layer["digest"] for layer in image.manifest["layers"])}
    assert sorted(p.name for p in (minict_root / "blobs/sha256").iterdir()) == \
        sorted(d[7:] for d in expected_blobs)


@pytest.mark.parametrize("held", ["wrong start", "longer than the blob"])
def test_bytes_held_that_are_not_the_blob_s_start_are_fetched_again_whole(minict, minict_root, held):
    """A download whose bytes are not the blob's (a disk that lost a write, a
    file of another size): the digest check at the end catches them, and the
    blob is fetched whole once more, not trusted and not a failed pull."""
    fake = FakeRegistry().start()
    try:
        image = serve_image(fake)
        layer = image.layers[0]
        download = Store(minict_root).download_path(layer["digest"])
        download.parent.mkdir(parents=True)
        download.write_bytes(b"\0" * (layer["size"] // 2) if held == "wrong start"
                             else b"\0" * (layer["size"] + 1))
        pulled(minict, minict_root, fake)
    finally:
        fake.stop()
    asked = [wanted for path, wanted, status in fake.log if path.endswith(layer["digest"])]
    # the wrong start: the rest of it asked for, then the whole; too long: the whole at once
    assert asked == ([f"bytes={layer['size'] // 2}-", ""] if held == "wrong start" else [""])
    assert list(download.parent.iterdir()) == []
