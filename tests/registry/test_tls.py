"""HTTPS registries: verified by default, trusted the way the system says.

The real registry serves TLS with a self-signed certificate made here, for
this machine's name and 127.0.0.1. REQUESTS_CA_BUNDLE stands in for a
system CA store that trusts it.
"""

import pytest

from minicontainer import errors
from minicontainer.image.registry import RegistryClient
from minicontainer.image.store import Store
from tests.registry.conftest import loopback_hostname, needs_registry
from tests.helpers.trees import snapshot
from tests.registry.pushing import skopeo_push
from tests.registry.servers import DockerRegistry, self_signed_certificate

pytestmark = [pytest.mark.unit, needs_registry]


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory, test_images):
    name, address = loopback_hostname()
    if not name:
        pytest.skip("this machine's hostname does not resolve to a loopback address")
    work = tmp_path_factory.mktemp("tls-registry")
    cert, key = self_signed_certificate(work, [name, "localhost"], [address])
    registry = DockerRegistry(work / "registry", bind=address, tls=(cert, key)).start()
    try:
        skopeo_push(test_images.busybox, f"{registry.host}/test/busybox:latest")
        registry.name, registry.cert = name, cert
        yield registry
    finally:
        registry.stop()


def test_https_with_a_trusted_certificate(minict, tls_registry, minict_root):
    ref = f"{tls_registry.name}:{tls_registry.port}/test/busybox:latest"
    done = minict("pull", ref, env={"REQUESTS_CA_BUNDLE": str(tls_registry.cert)})
    assert done.returncode == 0, done.stderr
    assert Store(minict_root).resolve(ref).names == [ref]


def test_https_with_an_untrusted_certificate_is_refused(minict, tls_registry, populated_store):
    before = snapshot(populated_store)
    done = minict("pull", f"{tls_registry.name}:{tls_registry.port}/test/busybox")
    assert done.returncode == errors.RegistryUnreachable.exit_code, done.stderr
    assert done.stderr.count("\n") == 1 and "TLS" in done.stderr
    assert "certificate" in done.stderr
    assert snapshot(populated_store) == before


def test_untrusted_certificate_accepted_for_a_registry_named_insecure(minict, tls_registry):
    host = f"{tls_registry.name}:{tls_registry.port}"
    done = minict("pull", "--insecure-registry", host, f"{host}/test/busybox")
    assert done.returncode == 0, done.stderr
    # HTTPS (unverified) worked, so plain HTTP was never used.
    with RegistryClient(host, insecure=[host]) as client:
        assert client.ping() == 200 and client.base_url == f"https://{host}"


def test_loopback_https_is_tried_first(minict, tls_registry, minict_root):
    ref = f"{tls_registry.host}/test/busybox:latest"      # 127.x.x.x:port
    done = minict("pull", ref)
    assert done.returncode == 0, done.stderr
    with RegistryClient(tls_registry.host) as client:
        assert client.ping() == 200 and client.base_url == f"https://{tls_registry.host}"
