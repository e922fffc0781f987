"""The registry client's pure parts: names, challenges, credential files."""

import base64
import json
import stat

import pytest

from minicontainer.errors import BadArgument, RegistryError
from minicontainer.image.registry import credentials
from minicontainer.image.registry.auth import parse_challenge, pull_scope
from minicontainer.image.registry.client import check_descriptor
from minicontainer.image.registry.endpoint import (api_host, is_loopback, normalize_server,
                                             plain_http_allowed)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("server, loopback", [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:5000", True),
    ("127.1.2.3", True), ("[::1]:5000", True), ("::1", True),
    ("registry.example.org", False), ("10.0.0.1:5000", False), ("192.0.2.7", False),
    ("localhost.example.org:5000", False), ("[fd00::1]:5000", False),
    ("vm:5000", False),                       # even if /etc/hosts says 127.0.0.1
])
def test_loopback_is_judged_by_the_name_as_written(server, loopback):
    assert is_loopback(server) is loopback


def test_plain_http_needs_loopback_or_an_insecure_name(monkeypatch):
    monkeypatch.delenv("MINICT_INSECURE_REGISTRIES", raising=False)
    assert plain_http_allowed("localhost:5000")
    assert not plain_http_allowed("registry.lan:5000")
    assert plain_http_allowed("registry.lan:5000", ["registry.lan:5000"])
    assert plain_http_allowed("registry.lan:5000", ["registry.lan"])      # any port
    assert not plain_http_allowed("registry.lan:5000", ["registry.lan:6000"])
    assert plain_http_allowed("registry.lan:5000", ["http://registry.lan:5000/"])
    monkeypatch.setenv("MINICT_INSECURE_REGISTRIES", "a.lan, registry.lan:5000")
    assert plain_http_allowed("registry.lan:5000")
    assert not plain_http_allowed("b.lan")


@pytest.mark.parametrize("written, normal", [
    ("https://index.docker.io/v1/", "docker.io"), ("registry-1.docker.io", "docker.io"),
    ("docker.io", "docker.io"), ("http://localhost:5000/v2/", "localhost:5000"),
    ("Quay.IO", "quay.io"),
])
def test_normalize_server(written, normal):
    assert normalize_server(written) == normal


def test_docker_hub_api_host():
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("localhost:5000") == "localhost:5000"


def test_parse_bearer_challenge():
    c = parse_challenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                        'scope="repository:library/alpine:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/alpine:pull"}


def test_parse_challenge_with_commas_in_a_quoted_scope():
    c = parse_challenge('Bearer realm="https://a/token",scope="repository:x:pull,push",'
                        'error="insufficient_scope"')
    assert c.params["scope"] == "repository:x:pull,push"
    assert c.params["error"] == "insufficient_scope"


def test_parse_basic_challenge_and_nothing():
    assert parse_challenge('Basic realm="minict-tests"').scheme == "basic"
    assert parse_challenge("") is None and parse_challenge(None) is None


def test_pull_scope():
    assert pull_scope("library/alpine") == "repository:library/alpine:pull"


@pytest.mark.parametrize("descriptor", [
    {"digest": "sha512:" + "a" * 128, "size": 1},
    {"digest": "sha256:../../etc/passwd", "size": 1},
    {"digest": "sha256:" + "A" * 64, "size": 1},
    {"digest": "sha256:" + "a" * 64, "size": -1},
    {"digest": "sha256:" + "a" * 64, "size": "12"},
    {"digest": "sha256:" + "a" * 64},
])
def test_descriptors_are_checked_before_use(descriptor):
    with pytest.raises(RegistryError):
        check_descriptor(descriptor, "layer")


def test_credentials_round_trip(private_credentials):
    path = credentials.save("localhost:5000", "bob", "pa:ss")
    assert path == private_credentials
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    found = credentials.lookup("localhost:5000")
    assert (found.username, found.password) == ("bob", "pa:ss")
    assert "pa:ss" not in repr(found)
    credentials.save("https://index.docker.io/v1/", "carol", "x")
    assert credentials.lookup("docker.io").username == "carol"
    assert credentials.remove("localhost:5000") is True
    assert credentials.remove("localhost:5000") is False
    assert credentials.lookup("localhost:5000") is None
    assert credentials.lookup("docker.io").username == "carol"


def test_auth_file_location(monkeypatch, tmp_path):
    monkeypatch.delenv("MINICT_AUTH_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert credentials.auth_file() == tmp_path / "xdg/minict/auth.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert credentials.auth_file() == tmp_path / "home/.config/minict/auth.json"


def test_docker_config_fallback_forms(tmp_path):
    config = tmp_path / "docker-config" / "config.json"
    config.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "plain.example:5000": {"username": "u", "password": "p"},
        "broken.example": {"auth": "%%%not base64"},
    }, "credsStore": "desktop"}))
    assert credentials.lookup("docker.io").username == "hub"
    assert credentials.lookup("plain.example:5000").password == "p"
    assert credentials.lookup("broken.example") is None
    assert credentials.lookup("unknown.example") is None


def test_our_file_wins_over_dockers(tmp_path):
    (tmp_path / "docker-config" / "config.json").write_text(json.dumps({"auths": {
        "localhost:5000": {"auth": base64.b64encode(b"docker:pw").decode()}}}))
    credentials.save("localhost:5000", "minict", "pw")
    assert credentials.lookup("localhost:5000").username == "minict"


def test_a_broken_auth_file_is_reported_not_overwritten(private_credentials):
    private_credentials.parent.mkdir(parents=True)
    private_credentials.write_text("{not json")
    with pytest.raises(BadArgument, match="not JSON"):
        credentials.save("localhost:5000", "bob", "pw")
    assert private_credentials.read_text() == "{not json"
