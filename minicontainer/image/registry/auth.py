"""Registry authentication: challenges, Basic auth, bearer tokens.

A registry says how it wants to be authenticated in the WWW-Authenticate
header of a 401 answer (RFC 7235 section 4.1), first on `GET /v2/` (OCI
distribution-spec, "Determining Support"):

- `Basic realm="..."` (RFC 7617): send `Authorization: Basic
  base64(user:password)` with every request. Debian's docker-registry with
  `auth: htpasswd` works this way.
- `Bearer realm="https://auth.example/token",service="...",scope="..."`
  (distribution's "Token Authentication Specification", docs/spec/auth/
  token.md, and RFC 6750): ask the token server at `realm` for a token,
  `GET realm?service=SERVICE&scope=repository:NAME:pull` (`:pull,push`
  for a push), sending Basic credentials when we have some, and
  anonymously otherwise (Docker Hub gives anonymous tokens for public
  images). Then send `Authorization:
  Bearer TOKEN` to the registry. Tokens are cached per scope until they
  expire (`expires_in`, 60 s when absent, as the spec says).

Credentials never travel over plain HTTP to a host that is not allowed
plain HTTP anyway (see endpoint.py), so a registry cannot redirect our
password to an http:// token realm on the open internet.
"""

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.utils import parse_dict_header

from ...errors import AuthenticationRequired, InsecureRegistry, RegistryError, RegistryUnreachable
from .credentials import Credentials
from .endpoint import plain_http_allowed
from .transport import TIMEOUT

DEFAULT_TOKEN_LIFETIME = 60  # seconds; token.md: "defaults to 60 seconds"
EXPIRY_MARGIN = 10           # renew a little early: clocks and latency


@dataclass(frozen=True)
class Challenge:
    scheme: str              # "basic" or "bearer" (lower case)
    params: dict             # realm, service, scope, error...


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse one WWW-Authenticate value, e.g.
    `Bearer realm="https://auth.docker.io/token",service="registry.docker.io"`."""
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in parse_dict_header(rest).items() if v is not None}
    return Challenge(scheme.lower(), params)


def pull_scope(repository: str) -> str:
    """The token scope for reading a repository (token.md, "Requesting a Token")."""
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    """The token scope for writing a repository. A push also reads (it asks
    which blobs are there already), so it asks for both, as docker does."""
    return f"repository:{repository}:pull,push"


class Authenticator:
    """Adds the Authorization header a registry asked for, fetching tokens."""

    def __init__(self, session: requests.Session, registry: str,
                 credentials: Credentials | None, insecure=()):
        self.session = session
        self.registry = registry
        self.credentials = credentials
        self.insecure = tuple(insecure)
        self.challenge: Challenge | None = None
        self._tokens: dict[str | None, tuple[str, float]] = {}  # scope -> (token, expiry)

    # -- what to send ----------------------------------------------------------

    def learn(self, response: requests.Response) -> None:
        """Remember the challenge a 401 answer carries."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))
        if challenge:
            self.challenge = challenge

    def headers(self, scope: str | None) -> dict:
        """The Authorization header for a request needing `scope`, if any."""
        if self.challenge is None:
            return {}
        if self.challenge.scheme == "basic":
            return {"Authorization": self.credentials.basic_header()} if self.credentials else {}
        if self.challenge.scheme == "bearer":
            return {"Authorization": f"Bearer {self.token(scope)}"}
        raise RegistryError(f"registry {self.registry} asks for {self.challenge.scheme!r} "
                            f"authentication, which minict does not speak",
                            "only Basic and Bearer (token) authentication are supported")

    def renew(self, response: requests.Response, scope: str | None) -> bool:
        """After a 401: learn its challenge and say whether trying again
        could succeed (a fresh token might; the same password will not)."""
        had = self.challenge
        self.learn(response)
        if self.challenge is None:
            return False
        if self.challenge.scheme == "bearer":
            # The token may have expired early, or the registry wants another
            # scope: fetch a fresh one. The client tries again only once.
            self._tokens.pop(scope, None)
            return True
        # Basic: worth one more try only if we have a password we did not send.
        return bool(self.credentials) and (had is None or had.scheme != "basic")

    # -- bearer tokens -----------------------------------------------------------

    def token(self, scope: str | None) -> str:
        cached = self._tokens.get(scope)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        token, lifetime = self._fetch_token(scope)
        self._tokens[scope] = (token, time.monotonic() + max(lifetime - EXPIRY_MARGIN, 1))
        return token

    def _fetch_token(self, scope: str | None) -> tuple[str, int]:
        """token.md "Requesting a Token": GET realm?service=..&scope=.."""
        realm = self.challenge.params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.registry} asked for a bearer token "
                                f"but named no token server (realm)",
                                "the registry is misconfigured; tell its operator")
        url = urlsplit(realm)
        if url.scheme not in ("https", "http") or not url.netloc:
            raise RegistryError(f"registry {self.registry} names an invalid token server {realm!r}",
                                "the registry is misconfigured; tell its operator")
        if url.scheme == "http" and not plain_http_allowed(url.netloc, self.insecure):
            raise InsecureRegistry(
                f"registry {self.registry} sends us to a token server over plain HTTP ({realm})",
                f"if you trust the network, name it insecure: --insecure-registry {url.netloc}")
        params = {}
        if self.challenge.params.get("service"):
            params["service"] = self.challenge.params["service"]
        if scope:
            params["scope"] = scope
        headers = {}
        if self.credentials:
            params["account"] = self.credentials.username
            headers["Authorization"] = self.credentials.basic_header()
        try:
            resp = self.session.get(realm, params=params, headers=headers, timeout=TIMEOUT,
                                    verify=not plain_http_allowed(url.netloc, self.insecure))
        except requests.exceptions.RequestException as exc:
            raise RegistryUnreachable(f"cannot reach the token server {url.netloc} of registry "
                                      f"{self.registry} ({type(exc).__name__})",
                                      "check your network and proxy settings") from exc
        with resp:
            if resp.status_code in (401, 403):
                if self.credentials:
                    source = self.credentials.source
                    raise AuthenticationRequired(
                        f"registry {self.registry} rejected the username or password of "
                        f"{self.credentials.username!r}" + (f" (from {source})" if source else ""),
                        f"check them, then run: minict login {self.registry}")
                raise AuthenticationRequired(
                    f"registry {self.registry} requires a login for {scope or 'access'}",
                    f"run: minict login {self.registry}")
            if resp.status_code != 200:
                raise RegistryError(f"token server of {self.registry} answered "
                                    f"{resp.status_code} {resp.reason}",
                                    "try again later; if it persists, tell the registry's operator")
            try:
                body = resp.json()
                token = body.get("token") or body.get("access_token")
                lifetime = int(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
            except (ValueError, AttributeError, TypeError):
                token = None
            if not token or not isinstance(token, str):
                raise RegistryError(f"token server of {self.registry} sent no token",
                                    "the registry is misconfigured; tell its operator")
        return token, lifetime
