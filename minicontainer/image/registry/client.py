"""The registry API calls a pull, a push and a login need, with every answer checked.

OCI Distribution Specification v1.1 (spec.md), client side of "Pull":

    GET /v2/                              "Determining Support" (end-1)
    GET /v2/<name>/manifests/<reference>  "Pulling manifests" (end-3)
    GET /v2/<name>/blobs/<digest>         "Pulling blobs" (end-2)

of "Push":

    HEAD /v2/<name>/blobs/<digest>        "Checking if content exists" (end-2)
    POST /v2/<name>/blobs/uploads/        open an upload session (end-4a)
    PATCH <location>                      "Pushing a blob in chunks" (end-5)
    PUT <location>?digest=<digest>        close it: "monolithically" (end-6)
    PUT /v2/<name>/manifests/<reference>  "Pushing Manifests" (end-7)

and the "Error Codes" section for what a failure's JSON body says.

Nothing a registry sends is trusted: a manifest fetched by digest must hash
to that digest; a blob must be exactly the size its descriptor declares and
hash to its digest, checked while it streams to disk, so a lying registry
costs us at most `size` bytes of disk, never a wrong image.
"""

import hashlib
import io
import json
import re
import time
import warnings
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from urllib3.exceptions import InsecureRequestWarning

from .. import mediatypes as mt
from ...errors import (AuthenticationRequired, DigestMismatch, InsecureRegistry, ManifestUnknown,
                      MissingBlob, RegistryError, RegistryUnreachable)
from ...fsutil import sha256_bytes
from .auth import Authenticator, pull_scope, push_scope
from .credentials import Credentials, lookup
from .endpoint import api_host, plain_http_allowed, split_host_port
from .transport import TIMEOUT, make_session

MAX_MANIFEST_BYTES = 4 * 1024 * 1024   # spec: registries SHOULD accept up to 4 MiB
MAX_CONFIG_BYTES = 16 * 1024 * 1024    # configs are small; refuse to hold a huge one in memory
CHUNK = 1 << 20
BLOB_ATTEMPTS = 5                      # transfers broken off mid-blob, resumed each time
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")

_LOOKUP = object()  # "find credentials in the credential files"


@dataclass
class Manifest:
    """A manifest (or index) as fetched: raw bytes, their type and digest."""
    data: bytes
    media_type: str
    digest: str


def check_descriptor(descriptor: dict, what: str) -> tuple[str, int]:
    """A descriptor's digest and size (image-spec descriptor.md), validated
    before either is used in a URL or as a limit."""
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise RegistryError(f"{what} has digest {digest!r}; minict verifies only sha256 digests",
                            "the image is malformed or uses an unsupported digest algorithm")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{what} has an invalid size {size!r}", "the image is malformed")
    return digest, size


def _short_reason(exc: BaseException) -> str:
    """`Connection refused` out of requests' long nested exception text."""
    match = _ERRNO_TEXT.search(str(exc))
    return match.group(1).strip() if match else type(exc).__name__


def _looks_like_plain_http(exc: requests.exceptions.SSLError) -> bool:
    """OpenSSL's words for "the server answered TLS with plain HTTP"."""
    text = str(exc).lower()
    return any(s in text for s in ("wrong version number", "record layer failure",
                                   "packet length too long", "http request"))


class RegistryClient:
    """One registry, one HTTP session. Use as a context manager."""

    def __init__(self, registry: str, *, insecure=(), credentials=_LOOKUP):
        self.registry = registry                    # as references write it
        self.host = api_host(registry)              # where its API is
        self.insecure = tuple(insecure)
        self.plain_http_ok = plain_http_allowed(registry, self.insecure)
        if credentials is _LOOKUP:
            credentials = lookup(registry)
        self.session = make_session()
        self.auth = Authenticator(self.session, registry, credentials, self.insecure)
        self.base_url: str | None = None            # decided by ping()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.session.close()

    @property
    def credentials(self) -> Credentials | None:
        return self.auth.credentials

    # -- the connection ----------------------------------------------------------

    def _verify_tls(self) -> bool:
        # As docker does for insecure registries: HTTPS is tried first, but
        # its certificate is not checked (the user told us to trust the path).
        return not self.plain_http_ok

    def ping(self) -> int:
        """GET /v2/ ("Determining Support"): find the scheme that works and
        learn how the registry wants us to authenticate. Returns 200 or 401.

        HTTPS first; plain HTTP only where allowed (endpoint.py), after HTTPS
        failed, as docker does for its insecure registries.
        """
        schemes = ["https", "http"] if self.plain_http_ok else ["https"]
        failure = None
        for scheme in schemes:
            base = f"{scheme}://{self.host}"
            try:
                resp = self._send("GET", base + "/v2/", headers={})
            except requests.exceptions.SSLError as exc:
                failure = exc
                continue
            except requests.exceptions.ConnectionError as exc:
                failure = exc
                if split_host_port(self.host)[1]:
                    break  # refused on an explicit port: the other scheme uses it too
                continue
            except requests.exceptions.RequestException as exc:
                failure = exc
                break
            with resp:
                if resp.status_code in (200, 401):
                    self.base_url = base
                    if resp.status_code == 401:
                        self.auth.learn(resp)
                    return resp.status_code
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise RegistryError(f"registry {self.registry} is unavailable: it answered "
                                        f"{resp.status_code} {resp.reason}, even after retries",
                                        "try again later; if it persists, tell its operator")
                raise RegistryError(
                    f"{base}/v2/ answered {resp.status_code} {resp.reason}: {self.host} does not "
                    f"speak the registry API", "check the registry's name and port")
        raise self._unreachable(failure)

    def _unreachable(self, exc: BaseException) -> Exception:
        if isinstance(exc, requests.exceptions.SSLError):
            if not self.plain_http_ok and _looks_like_plain_http(exc):
                return InsecureRegistry(
                    f"registry {self.registry} answers plain HTTP, and minict uses HTTPS for "
                    f"registries that are not on this machine",
                    f"if you trust the network to it, allow it with --insecure-registry "
                    f"{self.registry} or MINICT_INSECURE_REGISTRIES={self.registry}")
            return RegistryUnreachable(f"TLS connection to registry {self.registry} failed "
                                       f"({_short_reason(exc)})",
                                       "check the registry's certificate and the system's CA store")
        where = "" if self.host == self.registry else f" at {self.host}"
        return RegistryUnreachable(f"cannot reach registry {self.registry}{where} "
                                   f"({_short_reason(exc)})",
                                   "check the name and port, that the registry runs, "
                                   "and your network or proxy settings")

    def _send(self, method: str, url: str, headers: dict, stream: bool = False,
              data=None, params: dict | None = None) -> requests.Response:
        with warnings.catch_warnings():
            # verify=False is deliberate for insecure registries (see above).
            warnings.simplefilter("ignore", category=InsecureRequestWarning)
            return self.session.request(method, url, headers=headers, stream=stream, data=data,
                                        params=params, timeout=TIMEOUT, verify=self._verify_tls())

    def _url(self, path: str) -> str:
        """The full URL of an API path; the first call finds the scheme (ping)."""
        if self.base_url is None:
            self.ping()
        return self.base_url + path

    def _get(self, path: str, scope: str | None, headers: dict | None = None,
             stream: bool = False) -> requests.Response:
        return self._request("GET", self._url(path), scope, headers, stream=stream)

    def _request(self, method: str, url: str, scope: str | None, headers: dict | None = None,
                 stream: bool = False, data=None, params: dict | None = None
                 ) -> requests.Response:
        """One request with authentication; after a 401, renew the token and
        try once more. `data`: bytes, or a file sent from where it stands."""
        start = data.tell() if hasattr(data, "tell") else None
        for attempt in (1, 2):
            all_headers = {**(headers or {}), **self.auth.headers(scope)}
            if start is not None:
                data.seek(start)  # a second try sends the same bytes again
            try:
                resp = self._send(method, url, all_headers, stream=stream, data=data,
                                  params=params)
            except requests.exceptions.RequestException as exc:
                raise self._unreachable(exc) from exc
            if resp.status_code == 401 and attempt == 1 and self.auth.renew(resp, scope):
                resp.close()
                continue
            return resp
        raise AssertionError("unreachable")

    # -- errors ------------------------------------------------------------------------

    def _error_detail(self, resp: requests.Response) -> tuple[str, str]:
        """(code, message) of the first entry of a registry's JSON error
        body ("Error Codes"); empty strings when there is none."""
        try:
            body = next(resp.iter_content(64 * 1024), b"")
            first = json.loads(body)["errors"][0]
            return str(first.get("code") or ""), str(first.get("message") or "")
        except (requests.exceptions.RequestException, ValueError, UnicodeDecodeError,
                KeyError, IndexError, TypeError, AttributeError):
            return "", ""  # not JSON, no errors array...: there is no detail

    def _raise_for(self, resp: requests.Response, repository: str, what: str, kind: str):
        """Turn an unsuccessful answer into the error a user can act on.
        kind: "manifest" or "blob" (reading), "push" (writing), "ping"."""
        code = resp.status_code
        error_code, message = self._error_detail(resp)
        action = "push to" if kind == "push" else "pull"
        # The registry's own words help where the status alone does not
        # say enough (403, 429, 5xx, a failed upload); for 401, and 404 on a
        # read, they only repeat it.
        repeats_status = code == 401 or (code == 404 and kind != "push")
        suffix = f"; it says {message!r}" if message and not repeats_status else ""
        if code == 401:
            if self.credentials:
                raise AuthenticationRequired(
                    f"registry {self.registry} refused {self.credentials.username!r} access to "
                    f"{repository}{suffix}",
                    f"check the image name, and that this account may {action} it")
            hint = f"log in first with `minict login {self.registry}`"
            if kind != "push":
                hint += ("; Docker Hub also says this for images that do not exist, "
                         "so check the name")
            raise AuthenticationRequired(
                f"registry {self.registry} requires authentication for {repository}{suffix}", hint)
        if code == 403:
            raise AuthenticationRequired(f"registry {self.registry} denied access to "
                                         f"{repository}{suffix}",
                                         f"check that this account may {action} the image")
        if code == 404 and kind == "manifest":
            if error_code == "NAME_UNKNOWN":
                raise ManifestUnknown(f"registry {self.registry} has no repository {repository}",
                                      "check the image name")
            raise ManifestUnknown(f"registry {self.registry} has no {what} in {repository}{suffix}",
                                  "check the tag or digest")
        if code == 404 and kind == "blob":
            raise MissingBlob(f"registry {self.registry} has no {what} of {repository}, which "
                              f"its manifest names{suffix}",
                              "the image in the registry is incomplete; ask its publisher to push "
                              "it again")
        if code == 429:
            raise RegistryError(f"registry {self.registry} is rate-limiting us{suffix}",
                                "wait a while and try again; logging in raises Docker Hub's limit")
        raise RegistryError(f"registry {self.registry} answered {code} {resp.reason} for "
                            f"{what} of {repository}{suffix}",
                            "try again later; if it persists, tell the registry's operator")

    # -- manifests ---------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """"Pulling manifests": GET /v2/<name>/manifests/<tag or digest>.

        Accept lists every manifest and index type minict handles, because a
        registry does not convert: it serves what was pushed, or 404.
        A manifest fetched by digest must hash to it; one fetched by tag must
        hash to the Docker-Content-Digest header, when the registry sends one.
        """
        what = f"manifest {reference}" if reference.startswith("sha256:") else f"tag {reference!r}"
        if reference.startswith("sha256:") and not _DIGEST.match(reference):
            raise RegistryError(f"invalid digest {reference!r}", "the image index is malformed")
        resp = self._get(f"/v2/{repository}/manifests/{reference}", pull_scope(repository),
                         headers={"Accept": mt.MANIFEST_ACCEPT}, stream=True)
        with resp:
            if resp.status_code != 200:
                self._raise_for(resp, repository, what, "manifest")
            data = self._read_limited(resp, MAX_MANIFEST_BYTES, what)
            header_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest", "")
        digest = sha256_bytes(data)
        expected = reference if reference.startswith("sha256:") else header_digest
        if expected.startswith("sha256:") and digest != expected:
            raise DigestMismatch(f"{what} of {repository} from {self.registry} has digest "
                                 f"{digest}, expected {expected}",
                                 "the registry sent something else than asked for; try again, "
                                 "then tell the registry's operator")
        return Manifest(data, _body_media_type(data) or header_type, digest)

    def _read_limited(self, resp: requests.Response, limit: int, what: str) -> bytes:
        buf = bytearray()
        try:
            for chunk in resp.iter_content(CHUNK):
                buf += chunk
                if len(buf) > limit:
                    raise RegistryError(f"{what} from {self.registry} is larger than "
                                        f"{limit // (1024 * 1024)} MiB", "the image is malformed")
        except requests.exceptions.RequestException as exc:
            raise self._unreachable(exc) from exc
        return bytes(buf)

    # -- blobs -----------------------------------------------------------------------------------

    def fetch_blob(self, repository: str, descriptor: dict, sink, what: str,
                   on_progress=None) -> None:
        """"Pulling blobs": stream GET /v2/<name>/blobs/<digest> into `sink`
        (a writable, seekable binary file), checking size and sha256 as the
        bytes arrive.

        A transfer cut off midway is resumed with a Range request (RFC 9110
        section 14); a server that ignores Range sends the whole blob again
        and we start over. So is one a killed pull left: if `sink` (then
        also readable) already holds bytes, they are taken as the blob's
        start and only the rest is asked for; the digest check at the end
        covers them too, and if it fails the blob is fetched whole once
        more. `on_progress(bytes_so_far)` is called per chunk.
        """
        digest, size = check_descriptor(descriptor, what)
        path = f"/v2/{repository}/blobs/{digest}"
        hasher, received = _bytes_held(sink, size)
        held_before, breaks = received, 0
        if held_before and on_progress:
            on_progress(held_before)
        while received < size:
            # identity: a blob's bytes are what the digest covers; a server or
            # proxy must not gzip them on the way.
            headers = {"Accept-Encoding": "identity"}
            if received:
                headers["Range"] = f"bytes={received}-"
            resp = self._get(path, pull_scope(repository), headers, stream=True)
            with resp:
                if received and not _resumes_at(resp, received):
                    if resp.status_code != 200:
                        self._raise_for(resp, repository, what, "blob")
                    sink.seek(0)          # the server sent it all again: start over
                    sink.truncate()
                    hasher, received = hashlib.sha256(), 0
                elif not received and resp.status_code != 200:
                    self._raise_for(resp, repository, what, "blob")
                try:
                    for chunk in _arriving_chunks(resp):
                        received += len(chunk)
                        if received > size:
                            raise DigestMismatch(
                                f"{what} from {self.registry} is larger than the {size} bytes "
                                f"its descriptor declares", "the registry holds a corrupt blob; "
                                "tell its operator")
                        hasher.update(chunk)
                        sink.write(chunk)
                        sink.flush()     # on disk as it comes: a killed pull leaves it all
                        if on_progress:
                            on_progress(received)
                    broken = None
                except (urllib3.exceptions.HTTPError, OSError) as exc:
                    broken = exc  # reset, timeout, truncated: resume below
            if received == size and broken is None:
                break
            # Cut off (by an exception, or by a connection closed early).
            breaks += 1
            if breaks >= BLOB_ATTEMPTS:
                raise RegistryUnreachable(
                    f"downloading {what} from {self.registry} broke off {breaks} times "
                    f"({received} of {size} bytes)", "check your network and try again")
            time.sleep(min(0.25 * 2 ** breaks, 4))
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest and held_before:
            sink.seek(0)      # what was held was not the blob's start: fetch it whole
            sink.truncate()
            return self.fetch_blob(repository, descriptor, sink, what, on_progress)
        if actual != digest:
            raise DigestMismatch(f"{what} from {self.registry} has digest {actual}, expected "
                                 f"{digest}", "the registry holds a corrupt blob or something "
                                 "altered it in transit; try again, then tell its operator")

    def fetch_blob_bytes(self, repository: str, descriptor: dict, what: str,
                         limit: int = MAX_CONFIG_BYTES) -> bytes:
        """A small blob (an image config) into memory, verified."""
        _, size = check_descriptor(descriptor, what)
        if size > limit:
            raise RegistryError(f"{what} declares {size} bytes, more than a config may have "
                                f"({limit // (1024 * 1024)} MiB)", "the image is malformed")
        sink = io.BytesIO()
        self.fetch_blob(repository, descriptor, sink, what)
        return sink.getvalue()

    # -- pushing ---------------------------------------------------------------------------------
    #
    # Every push request asks for the scope `repository:NAME:pull,push`: one
    # token covers the whole push (HEAD needs pull, uploads need push).
    # Uploads are not retried by the transport (POST, PATCH and PUT are not
    # safe to repeat blindly); a failed one fails the push, and running the
    # push again skips what already arrived.

    def blob_exists(self, repository: str, digest: str, what: str) -> bool:
        """"Checking if content exists in the registry": HEAD the blob.
        200: the repository has it, and a push skips it; 404: it does not."""
        resp = self._request("HEAD", self._url(f"/v2/{repository}/blobs/{digest}"),
                             push_scope(repository))
        with resp:
            if resp.status_code == 200:
                return True
            if resp.status_code == 404:
                return False
            self._raise_for(resp, repository, what, "push")
        raise AssertionError("unreachable")

    def upload_blob(self, repository: str, digest: str, size: int, source, what: str,
                    chunk_size: int) -> None:
        """Upload one blob from `source` (a binary file at its start).

        POST opens an upload session. A blob of at most `chunk_size` bytes
        then goes in one PUT ("monolithic"): two requests in all, and the
        one way every registry must support. A bigger blob goes as PATCH
        requests of `chunk_size` bytes each, then a PUT that closes the
        session: no single request carries more than a chunk, which keeps
        under the request-size caps of proxies in front of registries.
        The registry checks the digest when the session closes.
        """
        location, min_chunk = self._start_upload(repository, what)
        if size <= chunk_size:
            body = source        # monolithic: the whole blob in the closing PUT
        else:
            # "OCI-Chunk-Min-Length": the smallest chunk this registry takes.
            location = self._upload_chunks(repository, location, source, size,
                                           max(chunk_size, min_chunk), what)
            body = b""           # all sent already: the PUT only closes the session
        resp = self._request("PUT", location, push_scope(repository), data=body,
                             headers={"Content-Type": "application/octet-stream"},
                             params={"digest": digest})
        with resp:
            if resp.status_code != 201:
                self._raise_for(resp, repository, what, "push")

    def _start_upload(self, repository: str, what: str) -> tuple[str, int]:
        """POST /v2/<name>/blobs/uploads/: (the session's URL, minimum chunk size)."""
        resp = self._request("POST", self._url(f"/v2/{repository}/blobs/uploads/"),
                             push_scope(repository))
        with resp:
            if resp.status_code != 202:
                self._raise_for(resp, repository, what, "push")
            location = self._upload_location(resp, repository, what)
            min_chunk = resp.headers.get("OCI-Chunk-Min-Length", "")
        return location, int(min_chunk) if min_chunk.isdigit() else 0

    def _upload_chunks(self, repository: str, location: str, source, size: int,
                       chunk_size: int, what: str) -> str:
        """PATCH the blob in chunks; returns the URL to close the session at.
        Each answer names the URL for the next request, and the range the
        registry holds so far, which must be all we sent."""
        sent = 0
        while sent < size:
            chunk = source.read(chunk_size)
            if not chunk:
                raise RegistryError(f"{what} ended after {sent} of {size} bytes in the store",
                                    "the store is damaged: remove the image and load it again")
            end = sent + len(chunk) - 1
            resp = self._request("PATCH", location, push_scope(repository), data=chunk,
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Range": f"{sent}-{end}"})
            with resp:
                if resp.status_code != 202:
                    self._raise_for(resp, repository, what, "push")
                held = resp.headers.get("Range")
                if held is not None and held != f"0-{end}":
                    raise RegistryError(f"registry {self.registry} holds bytes {held} of {what} "
                                        f"after we sent 0-{end}",
                                        "try again; if it persists, tell the registry's operator")
                location = self._upload_location(resp, repository, what)
            sent = end + 1
        return location

    def _upload_location(self, resp: requests.Response, repository: str, what: str) -> str:
        """The Location an upload answer names, as a full URL.

        It may be relative (resolved against the request's URL). It must be
        on the registry itself: our Authorization header goes with it, and
        only the registry may see that. (A registry behind a proxy that
        names another host here needs distribution's `http.relativeurls`.)
        """
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.registry} opened an upload of {what} to "
                                f"{repository} but named no Location to send it to",
                                "the registry does not follow the distribution spec")
        url = urljoin(resp.url, location)
        here, there = urlsplit(self.base_url), urlsplit(url)
        if (there.scheme, there.netloc.lower()) != (here.scheme, here.netloc.lower()):
            raise RegistryError(f"registry {self.registry} sends the upload of {what} to "
                                f"{there.scheme}://{there.netloc}, which is not the registry",
                                "minict uploads to the registry itself only; a registry behind "
                                "a proxy needs `relativeurls: true` in its http configuration")
        return url

    def put_manifest(self, repository: str, reference: str, data: bytes,
                     media_type: str) -> str:
        """"Pushing Manifests": PUT /v2/<name>/manifests/<tag>, with the exact
        bytes (they are what the digest covers) and their media type in
        Content-Type. Returns the digest; the registry must agree on it."""
        resp = self._request("PUT", self._url(f"/v2/{repository}/manifests/{reference}"),
                             push_scope(repository), data=data,
                             headers={"Content-Type": media_type})
        what = f"manifest {reference!r}"
        with resp:
            if resp.status_code != 201:
                self._raise_for(resp, repository, what, "push")
            theirs = resp.headers.get("Docker-Content-Digest", "")
        digest = sha256_bytes(data)
        if theirs and theirs != digest:
            raise RegistryError(f"registry {self.registry} stored {what} of {repository} as "
                                f"{theirs}, but its bytes hash to {digest}",
                                "the registry altered the manifest; tell its operator")
        return digest

    # -- login -----------------------------------------------------------------------------------

    def check_login(self) -> bool:
        """Prove the credentials work: GET /v2/ authenticated (for a token
        registry, the token server checks the password first). Returns
        False when the registry needs no authentication at all."""
        if self.ping() == 200:
            return False
        resp = self._get("/v2/", scope=None)
        with resp:
            if resp.status_code == 200:
                return True
            if resp.status_code in (401, 403):
                raise AuthenticationRequired(
                    f"registry {self.registry} rejected the username or password",
                    "check them and try again")
            self._raise_for(resp, "/v2/", "the API root", "ping")
        return True


def _arriving_chunks(resp: requests.Response):
    """A streamed body, chunk by chunk as it arrives. read1 hands over what
    came before a connection broke; iter_content would drop a partly filled
    chunk, and the resume would start further back than it needs to."""
    while chunk := resp.raw.read1(CHUNK, decode_content=True):
        yield chunk


def _bytes_held(sink, size: int):
    """(sha256 so far, byte count) of what `sink` already holds: nothing for a
    new file, the first bytes of the blob for a download a killed pull left
    (more than the blob's size: not its start, so dropped)."""
    hasher, held = hashlib.sha256(), sink.seek(0, io.SEEK_END)
    if held > size:
        sink.seek(0)
        sink.truncate()
        return hasher, 0
    sink.seek(0)
    while chunk := sink.read(CHUNK):
        hasher.update(chunk)
    return hasher, held


def _resumes_at(resp: requests.Response, offset: int) -> bool:
    """Is this a 206 answer continuing exactly at `offset`?"""
    if resp.status_code != 206:
        return False
    match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return bool(match) and int(match.group(1)) == offset


def _body_media_type(data: bytes) -> str | None:
    """mediaType from a manifest body, guessing OCI types where the field
    is optional (image-spec: an index has "manifests", a manifest "config")."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    if isinstance(body.get("mediaType"), str):
        return body["mediaType"]
    if "manifests" in body:
        return mt.OCI_INDEX
    if "config" in body:
        return mt.OCI_MANIFEST
    return None
