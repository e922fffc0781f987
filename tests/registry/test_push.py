"""`minict push` to a real registry (Debian's docker-registry on loopback),
in each auth mode; what arrived is read back with skopeo and with
`minict pull` into another, empty store, and must be the same image."""

import io
import json
import subprocess

import pytest

from minicontainer import errors
from minicontainer.image.push import push
from minicontainer.image.registry import credentials
from minicontainer.image.store import Store
from tests.registry.conftest import needs_registry
from tests.registry.servers import FakeRegistry, closed_port

pytestmark = [pytest.mark.unit, needs_registry]


# ---- helpers ----------------------------------------------------------------------------------

def load_as(minict, layout, repo: str) -> str:
    """Load an OCI layout (tagged `latest`) into the test's store as REPO:latest."""
    done = minict("load", "-i", layout, "--name", repo)
    assert done.returncode == 0, done.stderr
    return f"{repo}:latest"


def requests_to(registry, method: str, repository: str, part: str = "") -> list[str]:
    """Request lines ("PATCH /v2/... HTTP/1.1") of the registry's access
    log with this method, for this repository, containing `part`."""
    found = []
    for line in registry.log_path.read_text(errors="replace").splitlines():
        start = line.find(f'"{method} /v2/{repository}/')
        if start >= 0 and " - - [" in line:
            request = line[start + 1:line.find('"', start + 1)]
            if part in request:
                found.append(request)
    return found


def uploads_to(registry, repository: str) -> int:
    """Upload sessions opened (one per blob sent)."""
    return len(requests_to(registry, "POST", repository, "/blobs/uploads/"))


def blob_digests(image) -> list[str]:
    return [d["digest"] for d in image.manifest["layers"]] + [image.manifest["config"]["digest"]]


def skopeo_copy_out(source: str, dest, creds: str | None = None) -> str:
    """`skopeo copy docker://SOURCE oci:DEST:latest`; the manifest digest it wrote."""
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet", "--src-tls-verify=false"]
    if creds:
        argv += ["--src-creds", creds]
    argv += [f"docker://{source}", f"oci:{dest}:latest"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    index = json.loads((dest / "index.json").read_text())
    return index["manifests"][0]["digest"]


def check_round_trip(minict, tmp_path, minict_root, ref: str, creds: str | None = None):
    """What the registry holds under `ref` is the image of the store, byte
    for byte: skopeo's copy has the same manifest digest and blobs, and a
    pull into another, empty store gives the same manifest and image id."""
    image = Store(minict_root).resolve(ref)
    copied = tmp_path / "skopeo-copy"
    assert skopeo_copy_out(ref, copied, creds) == image.manifest_digest
    store = Store(minict_root)
    for digest in blob_digests(image) + [image.manifest_digest]:
        assert (copied / "blobs/sha256" / digest[7:]).read_bytes() == \
            store.blob_path(digest).read_bytes()

    other_root = tmp_path / "other-root"
    other_root.mkdir()
    pulled = minict("pull", ref, env={"MINICT_ROOT": str(other_root)})
    assert pulled.returncode == 0, pulled.stderr
    again = Store(other_root).resolve(ref)
    assert again.manifest_digest == image.manifest_digest
    assert again.id == image.id
    assert [p.name for p in again.layer_dirs] == [p.name for p in image.layer_dirs]


# ---- pushing, per auth mode ----------------------------------------------------------------

def test_push_anonymous_round_trips(minict, anon_registry, test_images, minict_root, tmp_path):
    ref = load_as(minict, test_images.busybox_plus, f"{anon_registry.host}/pushed/anon")
    image = Store(minict_root).resolve(ref)
    done = minict("push", ref)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"The push refers to repository [{anon_registry.host}/pushed/anon]"
    # One line per blob: two layers and the config, all new to this repository.
    assert lines[1:4] == [f"{d[7:19]}: Pushed" for d in blob_digests(image)]
    size = Store(minict_root).blob_path(image.manifest_digest).stat().st_size
    assert lines[4:] == [f"latest: digest: {image.manifest_digest} size: {size}"]
    assert uploads_to(anon_registry, "pushed/anon") == 3
    # Small blobs go in one PUT each: no chunks.
    assert requests_to(anon_registry, "PATCH", "pushed/anon") == []
    check_round_trip(minict, tmp_path, minict_root, ref)


def login_and_push(minict, image, host: str, user: str, password: str, repository: str) -> str:
    """Log in, push `image` as host/repository; returns the reference pushed."""
    login = minict("login", "-u", user, "--password-stdin", host, input=password + "\n")
    assert login.returncode == 0, login.stderr
    ref = load_as(minict, image, f"{host}/{repository}")
    done = minict("push", ref)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": Pushed") == 2
    return ref


def test_push_with_basic_auth(minict, basic_registry, test_images, minict_root, tmp_path):
    ref = login_and_push(minict, test_images.busybox, basic_registry.host, "bob", "hunter2",
                         "private/pushed")
    check_round_trip(minict, tmp_path, minict_root, ref, creds="bob:hunter2")


def test_push_with_a_token(minict, token_registry, test_images, minict_root, tmp_path):
    ref = login_and_push(minict, test_images.busybox, token_registry.host, "alice", "wonderland",
                         "priv/pushed")
    # alice asked the token server for the right to read and write.
    asked = [r for r in token_registry.tokens.requests
             if r["query"].get("scope") == ["repository:priv/pushed:pull,push"]]
    assert asked and {r["user"] for r in asked} == {"alice"}
    check_round_trip(minict, tmp_path, minict_root, ref, creds="alice:wonderland")


# ---- what is sent, and how ---------------------------------------------------------------------

def test_second_push_uploads_nothing_new(minict, anon_registry, test_images, minict_root):
    ref = load_as(minict, test_images.busybox_plus, f"{anon_registry.host}/pushed/twice")
    first = minict("push", ref)
    assert first.returncode == 0, first.stderr
    assert uploads_to(anon_registry, "pushed/twice") == 3
    again = minict("push", ref)
    assert again.returncode == 0, again.stderr
    assert uploads_to(anon_registry, "pushed/twice") == 3          # nothing new
    assert again.stdout.count(": Layer already exists") == 3
    assert ": Pushed" not in again.stdout
    assert again.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]


def test_blobs_the_repository_has_are_skipped(minict, anon_registry, test_images, minict_root):
    """busybox-plus shares its base layer with busybox: pushed after it to
    the same repository, only its own layer and config travel."""
    repo = f"{anon_registry.host}/pushed/shared"
    ref = load_as(minict, test_images.busybox, repo)
    assert minict("push", ref).returncode == 0
    assert uploads_to(anon_registry, "pushed/shared") == 2
    load_as(minict, test_images.busybox_plus, repo)               # now :latest is busybox-plus
    done = minict("push", ref)
    assert done.returncode == 0, done.stderr
    assert f"{test_images.base_blob[7:19]}: Layer already exists" in done.stdout
    assert f"{test_images.plus_blob[7:19]}: Pushed" in done.stdout
    assert uploads_to(anon_registry, "pushed/shared") == 4        # plus layer, its config


def test_big_blobs_go_in_chunks(minict, anon_registry, test_images, minict_root, tmp_path):
    ref = load_as(minict, test_images.busybox, f"{anon_registry.host}/pushed/chunked")
    store = Store(minict_root)
    image = store.resolve(ref)
    layer_size = image.manifest["layers"][0]["size"]
    chunk = 256 * 1024
    assert layer_size > 2 * chunk, "the busybox layer is too small to need chunks"
    result = push(store, ref, out=io.StringIO(), chunk_size=chunk)
    assert result.digest == image.manifest_digest
    assert sorted(result.uploaded) == sorted(blob_digests(image)) and result.skipped == []
    # The layer went as PATCH requests of one chunk each (the last one
    # shorter); the config, smaller than a chunk, in one PUT.
    patches = requests_to(anon_registry, "PATCH", "pushed/chunked")
    assert len(patches) == -(-layer_size // chunk)
    for digest in blob_digests(image):
        assert anon_registry.blob_file(digest).read_bytes() == store.blob_path(digest).read_bytes()
    other_root = tmp_path / "other-root"
    other_root.mkdir()
    pulled = minict("pull", ref, env={"MINICT_ROOT": str(other_root)})
    assert pulled.returncode == 0, pulled.stderr
    assert Store(other_root).resolve(ref).id == image.id


# ---- bad input: one line, the class's exit code --------------------------------------------

def fails(minict, args, error, words) -> str:
    done = minict(*args)
    assert done.returncode == error.exit_code, (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("minict: "), done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_wrong_password_with_basic_auth(minict, basic_registry, test_images, minict_root):
    credentials.save(basic_registry.host, "bob", "not-his-password")
    ref = load_as(minict, test_images.busybox, f"{basic_registry.host}/private/wrong")
    fails(minict, ["push", ref], errors.AuthenticationRequired, ["refused 'bob'", "push to"])
    assert uploads_to(basic_registry, "private/wrong") == 0


def test_no_login_with_basic_auth(minict, basic_registry, test_images, minict_root):
    ref = load_as(minict, test_images.busybox, f"{basic_registry.host}/private/anon")
    fails(minict, ["push", ref], errors.AuthenticationRequired,
          ["requires authentication", f"minict login {basic_registry.host}"])


def test_wrong_password_with_a_token(minict, token_registry, test_images, minict_root):
    credentials.save(token_registry.host, "alice", "looking-glass")
    ref = load_as(minict, test_images.busybox, f"{token_registry.host}/priv/wrong")
    fails(minict, ["push", ref], errors.AuthenticationRequired,
          ["rejected the username or password", "alice"])


def test_anonymous_token_cannot_push(minict, token_registry, test_images, minict_root):
    """The token server gives anonymous users pull on pub/ only: no push."""
    ref = load_as(minict, test_images.busybox, f"{token_registry.host}/pub/busybox")
    fails(minict, ["push", ref], errors.AuthenticationRequired,
          ["requires authentication", "pub/busybox"])


def test_unknown_image(minict, minict_root):
    # A closed port: had minict gone to the network first, this would be
    # RegistryUnreachable, not ImageNotFound.
    ref = f"127.0.0.1:{closed_port()}/nothing/here:1"
    fails(minict, ["push", ref], errors.ImageNotFound, [ref, "minict images"])


@pytest.mark.parametrize("ref", ["busybox", "team/app:1.0"])
def test_a_name_without_a_registry_is_refused(minict, ref):
    line = fails(minict, ["push", ref], errors.BadReference, ["names no registry", "minict tag"])
    assert "Docker Hub" in line


def test_a_digest_is_not_a_push_target(minict):
    fails(minict, ["push", "127.0.0.1:5000/team/app@sha256:" + "a" * 64],
          errors.BadReference, ["push a tag"])


def test_registry_down(minict, test_images, minict_root):
    ref = load_as(minict, test_images.busybox, f"127.0.0.1:{closed_port()}/pushed/down")
    fails(minict, ["push", ref], errors.RegistryUnreachable, ["Connection refused"])


def test_a_registry_that_cannot_take_uploads(minict, test_images, minict_root):
    """FakeRegistry serves reads only: HEAD and POST get 501."""
    fake = FakeRegistry().start()
    try:
        ref = load_as(minict, test_images.busybox, f"{fake.host}/pushed/readonly")
        fails(minict, ["push", ref], errors.RegistryError, ["501", "pushed/readonly"])
    finally:
        fake.stop()
