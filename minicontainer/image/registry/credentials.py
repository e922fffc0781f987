"""Registry credentials: `minict login/logout`'s file, and docker's as a fallback.

minict's own file is

    $MINICT_AUTH_FILE                         when set (tests use this), else
    $XDG_CONFIG_HOME/minict/auth.json         when XDG_CONFIG_HOME is set, else
    ~/.config/minict/auth.json

in the same shape as docker's config.json, so people can read it:

    {"auths": {"localhost:5000": {"auth": "<base64 of user:password>"}}}

It holds passwords, so it is created mode 0600 in a 0700 directory, and
written to a temporary name then renamed, so a crash never leaves half of
it (and the file is never world-readable, not even for a moment).

When minict's file has nothing for a registry, docker's is read:
`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, its "auths"
entries only (base64 `auth`, or `username` + `password`). Docker credential
helpers (`credsStore`, `credHelpers`) are not run.
"""

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import BadArgument
from ...fsutil import atomic_write
from .endpoint import normalize_server

AUTH_FILE_ENV = "MINICT_AUTH_FILE"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)   # never printed, not even in tracebacks
    source: str = ""                    # the file they came from, for messages

    def basic_header(self) -> str:
        """RFC 7617: `Basic base64(user:password)`."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def auth_file() -> Path:
    """minict's credential file (see the module docstring)."""
    if os.environ.get(AUTH_FILE_ENV):
        return Path(os.environ[AUTH_FILE_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "minict" / "auth.json"


def docker_config_file() -> Path:
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(Path.home(), ".docker")
    return Path(base) / "config.json"


def _read_config(path: Path, strict: bool) -> dict:
    """The JSON object in path; {} if the file is missing. A broken file is
    an error for our own file (we are about to rewrite it) and is skipped
    for docker's (it is only a fallback)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        if strict:
            raise BadArgument(f"credential file {path} is unreadable or not JSON ({exc})",
                              "fix it, or delete it and log in again") from exc
        return {}
    return data if isinstance(data, dict) else {}


def _entry_credentials(entry, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            pair = base64.b64decode(entry["auth"], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError, TypeError):
            return None
        user, sep, password = pair.partition(":")
        return Credentials(user, password, source) if sep else None
    if entry.get("username") and entry.get("password"):
        return Credentials(entry["username"], entry["password"], source)
    return None


def lookup(registry: str) -> Credentials | None:
    """Credentials for `registry` (reference form, e.g. docker.io), or None."""
    wanted = normalize_server(registry)
    for path, strict in ((auth_file(), False), (docker_config_file(), False)):
        auths = _read_config(path, strict).get("auths")
        if not isinstance(auths, dict):
            continue
        for key, entry in auths.items():
            if normalize_server(key) == wanted:
                found = _entry_credentials(entry, str(path))
                if found:
                    return found
    return None


def save(registry: str, username: str, password: str) -> Path:
    """Store credentials for `registry` in minict's file (atomically, 0600)."""
    path = auth_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = _read_config(path, strict=True)
    auths = config.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise BadArgument(f"credential file {path} has an 'auths' that is not an object",
                          "fix it, or delete it and log in again")
    pair = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[normalize_server(registry)] = {"auth": pair}
    atomic_write(path, json.dumps(config, indent=2, sort_keys=True).encode() + b"\n", mode=0o600)
    return path


def remove(registry: str) -> bool:
    """Forget `registry` in minict's file. False if nothing was stored."""
    path = auth_file()
    config = _read_config(path, strict=True)
    auths = config.get("auths")
    wanted = normalize_server(registry)
    keys = [k for k in (auths or {}) if normalize_server(k) == wanted]
    if not keys:
        return False
    for key in keys:
        del auths[key]
    atomic_write(path, json.dumps(config, indent=2, sort_keys=True).encode() + b"\n", mode=0o600)
    return True
