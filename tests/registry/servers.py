"""Servers the registry tests start on 127.0.0.1, and stop by pid.

- DockerRegistry: Debian's real `docker-registry` (distribution 2.8), with
  filesystem storage in a temp dir, anonymous, with htpasswd Basic auth, or
  with token auth backed by TokenServer.
- TokenServer: a small token server (distribution's "Token Authentication
  Specification", docs/spec/auth/token.md) that signs ES256 JWTs with a key
  whose self-signed certificate is the registry's `rootcertbundle`. The
  certificate rides in the JWT's `x5c` header: distribution 2.8 verifies
  that chain against the bundle (auth/token/token.go, verifySigningKey).
- FakeRegistry: a hand-written, tiny subset of the distribution API for
  what the real registry will not do: fail the first requests with 503,
  drop connections midway through a blob, ignore Range, serve manifests
  it would refuse to store.
"""

import base64
import datetime
import hashlib
import json
import socket
import subprocess
import threading
import time
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

REGISTRY_BIN = "/usr/bin/docker-registry"


def free_port(bind: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((bind, 0))
        return s.getsockname()[1]


def closed_port() -> int:
    """A port nothing listens on (free a moment ago)."""
    return free_port()


# ---- the real registry -------------------------------------------------------------------

class DockerRegistry:
    """`docker-registry serve CONFIG` on 127.0.0.1:<free port>."""

    def __init__(self, workdir: Path, auth: str | None = None, users: dict | None = None,
                 token_server: "TokenServer | None" = None, bind: str = "127.0.0.1",
                 tls: "tuple[Path, Path] | None" = None):
        self.workdir = Path(workdir)
        self.bind = bind
        self.tls = tls    # (certificate, key) PEM files: serve HTTPS
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.storage = self.workdir / "storage"
        self.log_path = self.workdir / "registry.log"
        self.auth = auth
        self.users = dict(users or {})
        self.token_server = token_server
        self.proc: subprocess.Popen | None = None
        self.port = None

    @property
    def host(self) -> str:
        return f"{self.bind}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _config(self) -> str:
        lines = ["version: 0.1",
                 "log:", "  level: info", "  formatter: text",
                 "storage:", "  filesystem:", f"    rootdirectory: {self.storage}",
                 "  delete:", "    enabled: true",
                 "http:", f"  addr: {self.host}", "  secret: minict-tests"]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.tls[0]}", f"    key: {self.tls[1]}"]
        if self.auth == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            entries = []
            for user, password in self.users.items():
                # bcrypt (-B) is the only hash distribution's htpasswd accepts.
                entries.append(subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                              capture_output=True, text=True).stdout.strip())
            htpasswd.write_text("\n".join(entries) + "\n")
            lines += ["auth:", "  htpasswd:", "    realm: minict-tests",
                      f"    path: {htpasswd}"]
        elif self.auth == "token":
            ts = self.token_server
            lines += ["auth:", "  token:", f"    realm: {ts.realm}",
                      f"    service: {ts.service}", f"    issuer: {ts.issuer}",
                      f"    rootcertbundle: {ts.cert_path}"]
        return "\n".join(lines) + "\n"

    def start(self) -> "DockerRegistry":
        for _ in range(5):  # a free port can be taken between probe and bind
            self.port = free_port(self.bind)
            config = self.workdir / "config.yml"
            config.write_text(self._config())
            log = open(self.log_path, "ab")
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            log.close()
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"docker-registry did not start; see {self.log_path}:\n"
                           f"{self.log_path.read_text()[-2000:]}")

    def _wait_ready(self, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with warnings.catch_warnings():   # verify=False: we made the certificate
                    warnings.simplefilter("ignore")
                    status = requests.get(f"{self.url}/v2/", timeout=1, verify=False).status_code
                if status in (200, 401):
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # -- what the tests look at ---------------------------------------------------------

    def blob_file(self, digest: str) -> Path:
        """Where registry 2.8's filesystem driver keeps a blob's bytes."""
        hexpart = digest.partition(":")[2]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"

    def requests_log(self) -> list[str]:
        """Request lines ("GET /v2/... HTTP/1.1") from the access log."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            start = line.find('"GET ')
            if start >= 0 and " - - [" in line:
                lines.append(line[start + 1:line.find('"', start + 1)])
        return lines

    def blob_fetches(self, digest: str) -> int:
        return sum(1 for line in self.requests_log() if f"/blobs/{digest} " in line)


def self_signed_certificate(workdir: Path, names: list[str], ips: list[str]) -> tuple[Path, Path]:
    """A self-signed server certificate (it is its own CA) and its key, as PEM files."""
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names = [x509.DNSName(n) for n in names] + \
        [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = Path(workdir) / "server.pem", Path(workdir) / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# ---- small HTTP servers run by the tests ------------------------------------------------------

class BackgroundHTTPServer:
    """An http.server on a free port of `bind`, serving from a daemon thread
    between start() and stop(). Subclasses give the handler class."""

    def __init__(self, bind: str = "127.0.0.1"):
        self.httpd = ThreadingHTTPServer((bind, 0), self._handler_class())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _handler_class(self) -> type:
        raise NotImplementedError

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


# ---- a token server -----------------------------------------------------------------------

class TokenServer(BackgroundHTTPServer):
    """Issues registry bearer tokens on GET /token?service=..&scope=..

    Policy: repositories in `public` may be pulled anonymously; a valid
    Basic login gets every action it asks for; a wrong password gets 401.
    An anonymous request for anything else gets a token with no access,
    as Docker Hub does (the registry then answers 401 insufficient_scope).
    """

    service = "minict-test-registry"
    issuer = "minict-test-token-issuer"

    def __init__(self, workdir: Path, users: dict, public=()):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = dict(users)
        self.public = set(public)
        self.requests: list[dict] = []   # what clients asked for, for assertions
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minict test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path = Path(workdir) / "token-signer.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._der_b64 = base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()
        super().__init__("127.0.0.1")

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def _grant(self, user: str | None, scopes: list[str]) -> list[dict]:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                continue
            asked = [a for a in actions.split(",") if a]
            granted = asked if user else [a for a in asked if a == "pull" and name in self.public]
            access.append({"type": kind, "name": name, "actions": granted})
        return access

    def issue(self, user: str | None, scopes: list[str]) -> str:
        import jwt
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": self.service,
                  "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex,
                  "access": self._grant(user, scopes)}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": [self._der_b64]})

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                user = self._user()
                server.requests.append({"path": url.path, "query": query, "user": user,
                                        "authorization": self.headers.get("Authorization")})
                if url.path != "/token" or user is False:
                    self.send_response(401 if user is False else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"token": server.issue(user, query.get("scope", [])),
                                   "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _user(self):
                """None when anonymous, the user when valid, False when wrong."""
                header = self.headers.get("Authorization", "")
                if not header.startswith("Basic "):
                    return None
                try:
                    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                except ValueError:
                    return False
                return user if server.users.get(user) == password else False

        return Handler


# ---- a hand-written registry for the odd cases ----------------------------------------------------

class FakeRegistry(BackgroundHTTPServer):
    """GET /v2/, manifests and blobs from dicts, with faults on demand.

    drop_connection_first: hang up on the first N requests without a word.
    fail_first: then answer the next N requests 503 (Retry-After: 0).
    drop_first_blob: cut the first GET of each blob off halfway.
    honour_range: answer Range requests with 206 (else send it all again).
    stall_blobs: digests of blobs to send half of, then hang until `release` is set.
    """

    def __init__(self, fail_first: int = 0, drop_first_blob: bool = False,
                 honour_range: bool = True, drop_connection_first: int = 0,
                 bind: str = "127.0.0.1", stall_blobs=()):
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.fail_first = fail_first
        self.drop_connection_first = drop_connection_first
        self.drop_first_blob = drop_first_blob
        self.honour_range = honour_range
        self.stall_blobs = set(stall_blobs)
        self.stalled = threading.Event()     # set when a blob transfer hangs
        self.release = threading.Event()     # set by the test to let it go on
        self.log: list[tuple[str, str, int]] = []   # (path, range header, status)
        self._dropped: set[str] = set()
        self._lock = threading.Lock()
        self._count = 0
        super().__init__(bind)

    @property
    def host(self) -> str:
        return f"{self.httpd.server_address[0]}:{self.httpd.server_address[1]}"

    def add_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def add_manifest(self, repo: str, tag: str, data: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.manifests[(repo, tag)] = (data, media_type)
        self.manifests[(repo, digest)] = (data, media_type)
        return digest

    def add_image(self, repo: str, tag: str, builder, media_type=None) -> str:
        """Serve an ImageBuilder's image (tests/helpers/images.py)."""
        manifest = builder.manifest_bytes()
        for data in builder.blobs.values():
            self.add_blob(data)
        return self.add_manifest(repo, tag, manifest,
                                 media_type or json.loads(manifest)["mediaType"])

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body=b"", headers=()):
                server.log.append((self.path, self.headers.get("Range", ""), status))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with server._lock:
                    server._count += 1
                    count = server._count
                if count <= server.drop_connection_first:
                    server.log.append((self.path, "", 0))
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)  # no answer at all
                    return
                if count <= server.drop_connection_first + server.fail_first:
                    self._send(503, b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}',
                               [("Retry-After", "0"), ("Content-Type", "application/json")])
                    return
                parts = urlsplit(self.path).path.split("/")
                if self.path == "/v2/":
                    self._send(200, b"{}", [("Content-Type", "application/json")])
                elif len(parts) >= 5 and parts[-2] == "manifests":
                    repo = "/".join(parts[2:-2])
                    found = server.manifests.get((repo, parts[-1]))
                    if not found:
                        self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN",'
                                        b'"message":"manifest unknown"}]}')
                        return
                    data, media_type = found
                    digest = "sha256:" + hashlib.sha256(data).hexdigest()
                    self._send(200, data, [("Content-Type", media_type),
                                           ("Docker-Content-Digest", digest)])
                elif len(parts) >= 5 and parts[-2] == "blobs":
                    self._blob(parts[-1])
                else:
                    self._send(404)

            def _blob(self, digest):
                data = server.blobs.get(digest)
                if data is None:
                    self._send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"unknown"}]}')
                    return
                start = 0
                wanted = self.headers.get("Range", "")
                if wanted.startswith("bytes=") and server.honour_range:
                    start = int(wanted[6:].split("-")[0])
                if server.drop_first_blob and digest not in server._dropped and len(data) > 1:
                    # Promise the whole blob, send half, hang up.
                    server._dropped.add(digest)
                    server.log.append((self.path, wanted, 200))
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if digest in server.stall_blobs and not server.release.is_set():
                    # Send half, then hang (until released) with the rest promised.
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    server.stalled.set()
                    server.release.wait(timeout=60)
                    self.close_connection = True
                    return
                if start:
                    self._send(206, data[start:], [
                        ("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")])
                else:
                    self._send(200, data, [("Accept-Ranges", "bytes")])

        return Handler
