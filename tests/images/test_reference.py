"""Image references parse the way docker parses them."""

import pytest

from minicontainer.errors import BadReference
from minicontainer.image.reference import parse

pytestmark = pytest.mark.unit

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, canonical, familiar", [
    ("alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("alpine:3.19", "docker.io/library/alpine:3.19", "alpine:3.19"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("library/alpine:edge", "docker.io/library/alpine:edge", "alpine:edge"),
    ("docker.io/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("index.docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/ns/repo:tag", "localhost:5000/ns/repo:tag", "localhost:5000/ns/repo:tag"),
    ("127.0.0.1:5000/a/b/c:1.0", "127.0.0.1:5000/a/b/c:1.0", "127.0.0.1:5000/a/b/c:1.0"),
    ("quay.io/org/img@" + DIGEST, "quay.io/org/img@" + DIGEST, "quay.io/org/img@" + DIGEST),
    ("alpine:3@" + DIGEST, "docker.io/library/alpine:3@" + DIGEST, "alpine:3@" + DIGEST),
    ("a_b-c__d/x.y", "docker.io/a_b-c__d/x.y:latest", "a_b-c__d/x.y:latest"),
])
def test_parse_like_docker(text, canonical, familiar):
    ref = parse(text)
    assert str(ref) == canonical
    assert ref.familiar() == familiar


def test_digest_only_reference_has_no_default_tag():
    ref = parse("alpine@" + DIGEST)
    assert ref.tag is None and ref.digest == DIGEST


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("Alpine", "lowercase"),
    ("alpine:", "invalid tag"),
    ("alpine:-x", "invalid tag"),
    ("alpine@sha256:abc", "invalid digest"),
    ("alpine@md5:" + "a" * 32, "invalid digest"),
    ("a b", "spaces"),
    ("host:5000/", "no repository"),
    ("bad..name", "invalid characters"),
    ("-leading", "invalid characters"),
    ("x:" + "a" * 129, "invalid tag"),
])
def test_bad_references_say_why(text, fragment):
    with pytest.raises(BadReference) as info:
        parse(text)
    assert fragment in info.value.one_line()
    assert info.value.exit_code == 10
