"""Bad input to `minict pull`: one line on stderr, a distinct exit code, and
the store exactly as it was (every file compared, content included)."""

import json

import pytest

from minicontainer import errors
from tests.helpers.images import OCI_MANIFEST, ImageBuilder, tar_of, Entry
from tests.registry.conftest import loopback_hostname, needs_registry
from tests.helpers.trees import snapshot
from tests.registry.pushing import raw_push, sha256
from tests.registry.servers import FakeRegistry, closed_port

pytestmark = [pytest.mark.unit, needs_registry]


def fails_cleanly(minict, root, args, error, words, env=None):
    """Run `minict ARGS`; check the exit code, the one stderr line, and that
    the store did not change."""
    before = snapshot(root)
    done = minict(*args, env=env)
    assert done.returncode == error.exit_code, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    print(lines[0] if lines else "<nothing on stderr>")
    assert len(lines) == 1 and lines[0].startswith("minict: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert snapshot(root) == before
    return lines[0]


def test_unreachable_registry(minict, populated_store):
    port = closed_port()
    fails_cleanly(minict, populated_store, ["pull", f"127.0.0.1:{port}/test/busybox"],
                  errors.RegistryUnreachable, [f"127.0.0.1:{port}", "Connection refused"])


def test_401_without_credentials(minict, populated_store, basic_registry):
    fails_cleanly(minict, populated_store, ["pull", f"{basic_registry.host}/private/busybox"],
                  errors.AuthenticationRequired, ["requires authentication", "minict login"])


def test_401_from_token_registry_for_a_private_repo(minict, populated_store, token_registry):
    fails_cleanly(minict, populated_store, ["pull", f"{token_registry.host}/priv/busybox"],
                  errors.AuthenticationRequired, ["requires authentication", "priv/busybox"])


def test_unknown_tag(minict, populated_store, anon_registry):
    fails_cleanly(minict, populated_store, ["pull", f"{anon_registry.host}/test/busybox:nope"],
                  errors.ManifestUnknown, ["no tag 'nope' in test/busybox", "check the tag"])


def test_unknown_repository(minict, populated_store, anon_registry):
    fails_cleanly(minict, populated_store, ["pull", f"{anon_registry.host}/test/nothing"],
                  errors.ManifestUnknown, ["test/nothing"])


def test_no_manifest_for_the_platform(minict, populated_store, anon_registry):
    line = fails_cleanly(minict, populated_store,
                         ["pull", "--platform", "linux/s390x", f"{anon_registry.host}/test/multi"],
                         errors.NoMatchingPlatform, ["linux/s390x", "--platform"])
    assert "linux/amd64" in line and "linux/arm64" in line   # says what there is


def test_single_platform_image_of_another_platform(minict, populated_store, anon_registry):
    fails_cleanly(minict, populated_store,
                  ["pull", "--platform", "linux/arm64", f"{anon_registry.host}/test/busybox"],
                  errors.NoMatchingPlatform, ["linux/amd64", "not linux/arm64"])


def test_bad_platform_argument(minict, populated_store, anon_registry):
    fails_cleanly(minict, populated_store,
                  ["pull", "--platform", "arm64", f"{anon_registry.host}/test/busybox"],
                  errors.BadArgument, ["invalid platform"])


def test_bad_reference(minict, populated_store):
    fails_cleanly(minict, populated_store, ["pull", "localhost:5000/Test/busybox"],
                  errors.BadReference, ["must be lowercase"])


def test_layer_digest_mismatch(minict, populated_store, fresh_registry, test_images):
    # The registry serves what is on disk: flip bytes, keep the length.
    blob = fresh_registry.blob_file(test_images.plus_blob)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    fails_cleanly(minict, populated_store,
                  ["pull", f"{fresh_registry.host}/test/busybox-plus:1.0"],
                  errors.DigestMismatch, [test_images.plus_blob, "corrupt"])


def test_config_digest_mismatch(minict, populated_store, fresh_registry, test_images):
    manifest = json.loads((test_images.busybox_plus / "index.json").read_text())
    manifest_digest = manifest["manifests"][0]["digest"]
    body = json.loads((test_images.busybox_plus / "blobs/sha256" / manifest_digest[7:])
                      .read_bytes())
    config = fresh_registry.blob_file(body["config"]["digest"])
    config.write_bytes(config.read_bytes().replace(b'"sh"', b'"ls"'))
    fails_cleanly(minict, populated_store,
                  ["pull", f"{fresh_registry.host}/test/busybox-plus:1.0"],
                  errors.DigestMismatch, [body["config"]["digest"]])


def test_blob_missing_from_the_registry(minict, populated_store, fresh_registry, test_images):
    fresh_registry.blob_file(test_images.plus_blob).unlink()
    fails_cleanly(minict, populated_store,
                  ["pull", f"{fresh_registry.host}/test/busybox-plus:1.0"],
                  errors.MissingBlob, ["has no layer"])


def test_artifact_that_is_not_an_image(minict, populated_store, fresh_registry):
    # What `helm push` stores: an OCI manifest whose config is no image config.
    config = b'{"name":"chart","version":"1.0.0"}'
    chart = b"not really a chart"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": sha256(chart), "size": len(chart)}]}).encode()
    raw_push(fresh_registry.host, "charts/thing", "1.0.0", manifest, OCI_MANIFEST,
             [config, chart])
    fails_cleanly(minict, populated_store, ["pull", f"{fresh_registry.host}/charts/thing:1.0.0"],
                  errors.UnsupportedMediaType, ["application/vnd.cncf.helm.config.v1+json"])


def test_unknown_manifest_media_type(minict, populated_store):
    fake = FakeRegistry().start()
    try:
        fake.add_manifest("odd/thing", "latest", b'{"schemaVersion":2,"mediaType":'
                          b'"application/vnd.example.weird+json","stuff":[]}',
                          "application/vnd.example.weird+json")
        fails_cleanly(minict, populated_store, ["pull", f"{fake.host}/odd/thing"],
                      errors.UnsupportedMediaType, ["application/vnd.example.weird+json"])
    finally:
        fake.stop()


def test_manifest_that_does_not_match_its_digest(minict, populated_store, busybox_rootfs):
    fake = FakeRegistry().start()
    try:
        honest = ImageBuilder().add_layer(tar_of([Entry.file("a", b"a")]))
        fake.add_image("odd/thing", "latest", honest)
        other = ImageBuilder().add_layer(tar_of([Entry.file("b", b"b")]))
        lie = "sha256:" + "0" * 64
        fake.manifests[("odd/thing", lie)] = (other.manifest_bytes(), OCI_MANIFEST)
        fails_cleanly(minict, populated_store, ["pull", f"{fake.host}/odd/thing@{lie}"],
                      errors.DigestMismatch, [lie])
    finally:
        fake.stop()


def test_layer_that_does_not_match_the_configs_diff_id(minict, populated_store):
    fake = FakeRegistry().start()
    try:
        image = ImageBuilder().add_layer(tar_of([Entry.file("a", b"a")]))
        image.diff_ids[0] = "sha256:" + "1" * 64      # the config lies about the layer
        fake.add_image("odd/thing", "latest", image)
        fails_cleanly(minict, populated_store, ["pull", f"{fake.host}/odd/thing"],
                      errors.DigestMismatch, ["diff id"])
    finally:
        fake.stop()


def test_plain_http_to_a_non_loopback_name_is_refused(minict, populated_store):
    name, address = loopback_hostname()
    if not name:
        pytest.skip("this machine's hostname does not resolve to a loopback address")
    fake = FakeRegistry(bind=address).start()
    try:
        fake.add_image("test/thing", "latest", ImageBuilder().add_layer(
            tar_of([Entry.file("a", b"a")])))
        port = fake.httpd.server_address[1]
        ref = f"{name}:{port}/test/thing"
        fails_cleanly(minict, populated_store, ["pull", ref], errors.InsecureRegistry,
                      ["plain HTTP", f"--insecure-registry {name}:{port}"])
        assert fake.log == []          # not one plain-HTTP request was sent
        # Named insecure, by flag or by the environment, it works.
        done = minict("pull", "--insecure-registry", f"{name}:{port}", ref)
        assert done.returncode == 0, done.stderr
        done = minict("pull", ref, env={"MINICT_INSECURE_REGISTRIES": f"example.org,{name}"})
        assert done.returncode == 0, done.stderr
    finally:
        fake.stop()
