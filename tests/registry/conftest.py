"""Fixtures for the pull/login tests: real registries on loopback, test images.

Session-wide, started once and only read by the tests:
- anon_registry: no auth; test/busybox, test/busybox-plus (adds a zstd
  layer on top of the same base), test/multi (amd64 + arm64 index).
- basic_registry: htpasswd Basic auth (user bob); private/busybox.
- token_registry: token auth with the TokenServer; pub/busybox (anyone may
  pull) and priv/busybox (alice only).
Per test: fresh_registry, for tests that damage the registry's storage.

Every test here gets its own credential files (MINICT_AUTH_FILE, and an
empty DOCKER_CONFIG) and no MINICT_INSECURE_REGISTRIES, so nothing on the
machine leaks in and nothing leaks out.
"""

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.images import ImageBuilder, tar_from_dir, tar_of, Entry
from tests.registry.pushing import multiarch_layout, skopeo_push
from tests.registry.servers import DockerRegistry, TokenServer

needs_registry = pytest.mark.skipif(
    not (shutil.which("docker-registry") and shutil.which("skopeo") and shutil.which("htpasswd")),
    reason="docker-registry, skopeo and htpasswd are installed by scripts/setup.sh")

BASIC_USERS = {"bob": "hunter2"}
TOKEN_USERS = {"alice": "wonderland"}


@dataclass
class RegistryImages:
    """OCI layouts on disk and the digests tests check against."""
    busybox: Path
    busybox_plus: Path
    multi: Path
    base_blob: str            # the busybox layer blob (gzip)
    base_diff_id: str
    plus_blob: str            # the zstd layer busybox-plus adds
    multi_digests: dict       # index / amd64 / arm64 manifest digests


@pytest.fixture(scope="session")
def test_images(busybox_rootfs, tmp_path_factory) -> RegistryImages:
    work = tmp_path_factory.mktemp("registry-images")
    base_tar = tar_from_dir(busybox_rootfs)
    busybox = ImageBuilder().add_layer(base_tar, "gzip")
    busybox.write_oci_layout(work / "busybox", ref_name="latest")
    plus = ImageBuilder().add_layer(base_tar, "gzip")
    plus.add_layer(tar_of([Entry.dir("etc"), Entry.file("etc/motd", b"zstd layer\n")]), "zstd")
    plus.write_oci_layout(work / "busybox-plus", ref_name="latest")
    multi = multiarch_layout(work / "multi", base_tar)
    return RegistryImages(busybox=work / "busybox", busybox_plus=work / "busybox-plus",
                      multi=work / "multi", base_blob=busybox.layers[0]["digest"],
                      base_diff_id=busybox.diff_ids[0], plus_blob=plus.layers[1]["digest"],
                      multi_digests=multi)


def push_all(registry: DockerRegistry, images: RegistryImages, creds=None, prefix="test"):
    skopeo_push(images.busybox, f"{registry.host}/{prefix}/busybox:latest", creds)
    skopeo_push(images.busybox_plus, f"{registry.host}/{prefix}/busybox-plus:1.0", creds)
    skopeo_push(images.multi, f"{registry.host}/{prefix}/multi:latest", creds, all_images=True)


@pytest.fixture(scope="session")
def anon_registry(tmp_path_factory, test_images):
    registry = DockerRegistry(tmp_path_factory.mktemp("anon-registry")).start()
    try:
        push_all(registry, test_images)
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def fresh_registry(tmp_path, test_images):
    """A registry of this test's own, which it may damage."""
    registry = DockerRegistry(tmp_path / "fresh-registry").start()
    try:
        push_all(registry, test_images)
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory, test_images):
    registry = DockerRegistry(tmp_path_factory.mktemp("basic-registry"), auth="htpasswd",
                              users=BASIC_USERS).start()
    try:
        skopeo_push(test_images.busybox, f"{registry.host}/private/busybox:latest",
                    creds="bob:hunter2")
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory, test_images):
    work = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(work, TOKEN_USERS, public={"pub/busybox"}).start()
    registry = DockerRegistry(work / "registry", auth="token", token_server=tokens)
    try:
        registry.start()
        for repo in ("pub/busybox", "priv/busybox"):
            skopeo_push(test_images.busybox, f"{registry.host}/{repo}:latest",
                        creds="alice:wonderland")
        registry.tokens = tokens
        yield registry
    finally:
        registry.stop()
        tokens.stop()


@pytest.fixture(autouse=True)
def private_credentials(tmp_path, monkeypatch):
    """Credential files of this test only (see the module docstring)."""
    auth = tmp_path / "config" / "minict" / "auth.json"
    docker = tmp_path / "docker-config"
    docker.mkdir()
    monkeypatch.setenv("MINICT_AUTH_FILE", str(auth))
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    monkeypatch.delenv("MINICT_INSECURE_REGISTRIES", raising=False)
    return auth


def loopback_hostname() -> tuple[str | None, str | None]:
    """(name, address): this machine's name, if it resolves to a loopback
    address (usual: /etc/hosts maps it to 127.0.1.1 on Debian). minict
    judges loopback by the name as written, so to minict this name is a
    remote registry, while the traffic still stays on this machine."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        return None, None
    if not address.startswith("127.") or name.lower() == "localhost":
        return None, None
    return name, address


@pytest.fixture
def populated_store(minict, anon_registry, minict_root):
    """A store that already holds one pulled image, and its listing."""
    done = minict("pull", f"{anon_registry.host}/test/busybox:latest")
    assert done.returncode == 0, done.stderr
    return minict_root
