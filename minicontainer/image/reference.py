"""Image references, parsed the way docker parses them.

    alpine                          -> docker.io/library/alpine:latest
    user/app:1.0                    -> docker.io/user/app:1.0
    localhost:5000/ns/repo:tag      -> localhost:5000/ns/repo:tag
    quay.io/org/img@sha256:<64 hex> -> quay.io/org/img@sha256:...

The grammar is the one in distribution's `reference` package
(github.com/distribution/reference, reference.go):

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [domain "/"] path-component ["/" path-component]*
    domain     := host [":" port]      (recognised only if the first component
                                        has a "." or a ":", or is "localhost")
    tag        := [\\w][\\w.-]{0,127}
    digest     := algorithm ":" hex     (sha256: exactly 64 lowercase hex)
"""

import re
from collections import namedtuple

from ..errors import BadReference

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
OFFICIAL_NAMESPACE = "library"

# docker's grammar for references (distribution/reference, regexp.go).
_PATH_COMPONENT = r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$"
_TAG = r"^[\w][\w.-]{0,127}$"
_DIGEST = r"^sha256:[a-f0-9]{64}$"
_DOMAIN = (r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
           r"(?::[0-9]+)?$|^\[[0-9a-fA-F:.]+\](?::[0-9]+)?$")

_HINT = "use NAME[:TAG] or NAME@sha256:DIGEST, e.g. busybox:latest or localhost:5000/team/app:1.0"


class Reference(namedtuple("Reference", "registry repository tag digest", defaults=(None, None))):
    """registry ("docker.io", "localhost:5000"), repository ("library/alpine"),
    tag (None only when a digest pins the image), digest. Immutable and
    hashable, so it can key a dict."""

    __slots__ = ()

    @property
    def name(self) -> str:
        """registry/repository, the part before tag or digest."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar_name(self) -> str:
        """The short form docker shows: docker.io/library/alpine -> alpine."""
        if self.registry == DEFAULT_REGISTRY:
            repo = self.repository
            if repo.startswith(OFFICIAL_NAMESPACE + "/"):
                repo = repo[len(OFFICIAL_NAMESPACE) + 1:]
            return repo
        return self.name

    def familiar(self) -> str:
        text = self.familiar_name()
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _split_domain(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DEFAULT_REGISTRY, name


def parse(text: str) -> Reference:
    """Parse an image reference; raise BadReference with the reason."""
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise BadReference(f"invalid image reference {text!r}: empty or contains spaces", _HINT)
    if len(text) > 4096:
        raise BadReference("invalid image reference: longer than 4096 characters", _HINT)

    remainder, digest = text, None
    if "@" in text:
        remainder, _, digest = text.partition("@")
        if not re.match(_DIGEST, digest):
            raise BadReference(f"invalid digest {digest!r} in {text!r}",
                               "a digest is sha256: followed by 64 lowercase hex digits")

    tag = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:            # a colon after the last slash is a tag, not a port
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not re.match(_TAG, tag):
            raise BadReference(f"invalid tag {tag!r} in {text!r}",
                               "tags are letters, digits, '_', '.', '-' (at most 128)")

    registry, path = _split_domain(remainder)
    if registry != DEFAULT_REGISTRY and not re.match(_DOMAIN, registry):
        raise BadReference(f"invalid registry {registry!r} in {text!r}", _HINT)
    if registry in ("index.docker.io", "registry-1.docker.io"):
        registry = DEFAULT_REGISTRY
    if not path:
        raise BadReference(f"invalid image reference {text!r}: no repository name", _HINT)
    for component in path.split("/"):
        if not re.match(_PATH_COMPONENT, component):
            why = "must be lowercase" if component.lower() != component else "has invalid characters"
            raise BadReference(f"invalid repository name {path!r} in {text!r}: "
                               f"component {component!r} {why}", _HINT)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry, path, tag, digest)
