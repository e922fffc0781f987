"""`minict login/logout` against real registries, and pulling with what
they store; docker's config.json honoured as a fallback."""

import base64
import json
import stat

import pytest

from minicontainer import errors
from minicontainer.image.store import Store
from tests.registry.conftest import needs_registry
from tests.helpers.trees import snapshot

pytestmark = [pytest.mark.unit, needs_registry]


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_basic_login_then_pull_then_logout(minict, basic_registry, private_credentials,
                                           minict_root):
    host = basic_registry.host
    done = minict("login", "-u", "bob", "--password-stdin", host, input="hunter2\n")
    assert done.returncode == 0, done.stderr
    assert "Login Succeeded" in done.stdout
    assert mode(private_credentials) == 0o600
    assert mode(private_credentials.parent) == 0o700
    stored = json.loads(private_credentials.read_text())["auths"][host]["auth"]
    assert base64.b64decode(stored) == b"bob:hunter2"

    ref = f"{host}/private/busybox:latest"
    pulled = minict("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert Store(minict_root).resolve(ref).names == [ref]

    out = minict("logout", host)
    assert out.returncode == 0 and "Removing login credentials" in out.stdout
    assert host not in json.loads(private_credentials.read_text())["auths"]
    assert mode(private_credentials) == 0o600
    again = minict("pull", f"{host}/private/busybox:latest")
    assert again.returncode == errors.AuthenticationRequired.exit_code


def test_logout_when_not_logged_in(minict, basic_registry):
    done = minict("logout", basic_registry.host)
    assert done.returncode == 0 and "Not logged in" in done.stdout


def test_basic_login_with_a_wrong_password_is_rejected_and_not_saved(minict, basic_registry,
                                                                      private_credentials):
    done = minict("login", "-u", "bob", "--password-stdin", basic_registry.host,
                  input="wrong\n")
    assert done.returncode == errors.AuthenticationRequired.exit_code
    assert done.stderr.count("\n") == 1 and "rejected the username or password" in done.stderr
    assert not private_credentials.exists()


def test_token_login_then_pull_of_a_private_repo(minict, token_registry, private_credentials,
                                                 minict_root):
    host = token_registry.host
    done = minict("login", "-u", "alice", "-p", "wonderland", host)
    assert done.returncode == 0, done.stderr
    assert "WARNING" in done.stderr                      # -p is visible in ps
    ref = f"{host}/priv/busybox:latest"
    pulled = minict("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert Store(minict_root).resolve(ref).names == [ref]
    # The token server saw alice's Basic credentials and our pull scope.
    asked = [r for r in token_registry.tokens.requests
             if r["query"].get("scope") == ["repository:priv/busybox:pull"]]
    assert asked and asked[-1]["user"] == "alice"


def test_token_login_with_a_wrong_password(minict, token_registry, private_credentials):
    done = minict("login", "-u", "alice", "--password-stdin", token_registry.host,
                  input="nope\n")
    assert done.returncode == errors.AuthenticationRequired.exit_code
    assert "rejected the username or password" in done.stderr
    assert not private_credentials.exists()


def test_anonymous_token_for_a_public_repo(minict, token_registry, minict_root):
    ref = f"{token_registry.host}/pub/busybox:latest"
    done = minict("pull", ref)
    assert done.returncode == 0, done.stderr
    asked = [r for r in token_registry.tokens.requests
             if r["query"].get("scope") == ["repository:pub/busybox:pull"]]
    assert asked and asked[-1]["authorization"] is None   # no credentials were sent


def test_stored_wrong_password_fails_pull_cleanly(minict, basic_registry, private_credentials,
                                                  populated_store):
    private_credentials.parent.mkdir(parents=True)
    private_credentials.write_text(json.dumps({"auths": {basic_registry.host: {
        "auth": base64.b64encode(b"bob:stale").decode()}}}))
    before = snapshot(populated_store)
    done = minict("pull", f"{basic_registry.host}/private/busybox")
    assert done.returncode == errors.AuthenticationRequired.exit_code
    assert done.stderr.count("\n") == 1 and "'bob'" in done.stderr
    assert snapshot(populated_store) == before


@pytest.mark.parametrize("key_form", ["{host}", "http://{host}", "https://{host}/v2/"])
def test_docker_config_credentials_are_honoured(minict, basic_registry, tmp_path, minict_root,
                                                key_form):
    docker_config = tmp_path / "docker-config" / "config.json"   # DOCKER_CONFIG (conftest)
    key = key_form.format(host=basic_registry.host)
    docker_config.write_text(json.dumps({"auths": {
        "other.example:5000": {"auth": base64.b64encode(b"x:y").decode()},
        key: {"auth": base64.b64encode(b"bob:hunter2").decode()}}}))
    ref = f"{basic_registry.host}/private/busybox:latest"
    done = minict("pull", ref)
    assert done.returncode == 0, done.stderr
    assert Store(minict_root).resolve(ref).names == [ref]


def test_login_without_a_password_off_a_terminal(minict, basic_registry):
    done = minict("login", "-u", "bob", basic_registry.host, input="")
    assert done.returncode == errors.BadArgument.exit_code
    assert "no password" in done.stderr
