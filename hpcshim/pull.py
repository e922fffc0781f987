"""`hpcshim pull [--runtime R] [--docker-login] REF [DEST]`: an image from a registry,
made into what runtime R runs, so that `hpcshim exec REF ...` then starts without the network.

    apptainer,    their own `pull [DEST] docker://REF` (a SIF file; DEST or
    singularity   Apptainer's default name NAME_TAG.sif), credentials in its variables
    ch-run        minict's registry client downloads into a minict store inside
                  hpcshim's cache (pull-store/), umoci unpacks it once into
                  <cache>/images/<config digest>/, and <cache>/pulled/ records the
                  name (images/pulled.py): `hpcshim exec --runtime ch-run REF` finds it
    minict        `minict pull REF` into minict's own store (MINICT_ROOT); DEST: a second
                  name for it (`minict tag`)

Why run the `minict` program rather than import its registry client: hpcshim
imports nothing of minicontainer (GPU nodes install hpcshim alone; see
docs/ARCHITECTURE.md, Boundaries). The `minict` command brings its HTTP,
token auth, retries, Range resumption of a transfer cut off midway, digest
checks, and its progress bars, which it draws only on a terminal: its status
output is sent to hpcshim's stderr, so a batch job's log gets plain lines.

Interrupted: a transfer the network cuts off resumes where it stopped (an
HTTP Range request, up to 5 times per blob, inside the same pull). A pull that
is itself stopped (Ctrl-C, SIGKILL, a job's time limit) leaves no half image
anywhere (minict's store takes an image whole or not at all), only the bytes
it had received, in the store's downloads/ (ch-run: <cache>/pull-store); the
next pull of that image asks the registry for the rest alone. (Apptainer
keeps the layers it finished in its own cache.)

Memory: minict streams every layer to a file as it arrives (checking its
digest on the way) and unpacks from that file; umoci streams too. Nothing
holds a whole layer in memory, which matters on login nodes that kill big
processes (bench/pull measures the peak; tests/hpcshim/test_pull.py bounds it).

Credentials, first found wins: --docker-login (asked on the terminal), then
APPTAINER_DOCKER_USERNAME/_PASSWORD, then SINGULARITY_DOCKER_USERNAME/_PASSWORD
(the names the sites' material uses; NGC: user `$oauthtoken`, the API key as
password), then what `minict login` stored. minict gets them in an in-memory
file (MINICT_AUTH_FILE=/dev/fd/N): a password is never written to disk,
never on a command line, never printed.
"""

import base64
import getpass
import json
import os
import subprocess
import sys

from .backends import find_runtime
from .errors import BadArgument, PullAuthFailed, PullFailed, PullImageUnknown
from .images import image_cache, minict_tool
from .images.layout import DirSource, Image
from .images.pulled import full_name, is_loopback, registry_of, write_record
from .images.unpack import building, unpack


class Credentials:
    def __init__(self, username: str, password: str, source: str):
        self.username = username
        self.password = password
        self.source = source                # where they came from, for messages

    def __repr__(self):                     # never the password, not even in a traceback
        return f"Credentials({self.username!r}, source={self.source!r})"


def pull(runtime_name: str, ref: str, dest: str | None, docker_login: bool,
         env: dict[str, str]) -> str:
    """Pull ref for the runtime; returns what to print on stdout (the image's
    path or name, or "" when Apptainer chose the file name)."""
    if not ref or ref != ref.strip():
        raise BadArgument(f"{ref!r} is not an image reference", hint="for example docker://busybox:1.36")
    runtime = find_runtime(runtime_name, env)
    credentials = find_credentials(docker_login, env)
    if runtime.name in ("apptainer", "singularity"):
        return _with_apptainer(runtime, ref, dest, credentials, env)
    if "://" in ref and not ref.startswith("docker://"):
        raise BadArgument(f"--runtime {runtime.name} pulls from docker registries only, not {ref}",
                          hint="write REF as NAME[:TAG] or docker://NAME[:TAG]")
    ref = ref.removeprefix("docker://")
    exe = minict_tool.find(env, f"hpcshim pull for {runtime.name} downloads with minict's registry client")
    if runtime.name == "ch-run":
        return _for_chrun(exe, ref, dest, credentials, env)
    return _for_minict(exe, ref, dest, credentials, env)


# ---- credentials ------------------------------------------------------------------------------

def find_credentials(docker_login: bool, env: dict[str, str]) -> Credentials | None:
    """The credentials given for this pull (the order is in the module docstring).
    None: minict looks up its stored logins itself (Apptainer: stored_login)."""
    if docker_login:
        return _ask_on_terminal()
    for prefix in ("APPTAINER_DOCKER_", "SINGULARITY_DOCKER_"):
        username, password = env.get(prefix + "USERNAME"), env.get(prefix + "PASSWORD")
        if username and password:
            return Credentials(username, password, f"{prefix}USERNAME/PASSWORD")
        if username or password:
            given, missing = ("USERNAME", "PASSWORD") if username else ("PASSWORD", "USERNAME")
            given, missing = prefix + given, prefix + missing
            raise BadArgument(f"{given} is set but {missing} is not",
                              hint=f"set both (NGC: {prefix}USERNAME='$oauthtoken', the API key as "
                                   f"{prefix}PASSWORD), or unset {given}")
    return None


def _ask_on_terminal() -> Credentials:
    if not sys.stdin.isatty():
        raise BadArgument("--docker-login asks for a username and password, and there is no terminal",
                          hint="in a batch job set APPTAINER_DOCKER_USERNAME and APPTAINER_DOCKER_PASSWORD")
    sys.stderr.write("Username: ")
    sys.stderr.flush()
    username = sys.stdin.readline().strip()
    password = getpass.getpass("Password: ")        # not echoed
    if not username or not password:
        raise BadArgument("empty username or password", hint="give both (NGC: user $oauthtoken)")
    return Credentials(username, password, "--docker-login")


def stored_login(registry: str, env: dict[str, str]) -> Credentials | None:
    """What `minict login REGISTRY` stored (for Apptainer, which does not read minict's file)."""
    path = env.get("MINICT_AUTH_FILE") or os.path.join(
        env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config"),
        "minict", "auth.json")
    try:
        with open(path, encoding="utf-8") as f:
            auths = json.load(f)["auths"]
        # minict writes keys as its normalize_server does: lower case, docker.io for Docker Hub
        entry = next(value for key, value in auths.items() if _server(key) == _server(registry))
        username, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration):
        return None              # no stored login for it: Apptainer asks the registry anonymously
    return Credentials(username, password, path) if sep else None


def _server(text: str) -> str:
    """`https://Index.Docker.io/v1/` -> `docker.io`, `localhost:5000` as it is."""
    host = text.lower().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return "docker.io" if host in ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com") \
        else host


def _auth_file_for(registry: str, credentials: Credentials) -> int:
    """A memfd holding minict's auth.json for one registry: MINICT_AUTH_FILE=/dev/fd/N."""
    pair = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    fd = os.memfd_create("hpcshim-registry-login", 0)       # inherited by minict (pass_fds)
    os.write(fd, json.dumps({"auths": {registry: {"auth": pair}}}).encode())
    return fd


# ---- ch-run and minict: minict's registry client -------------------------------------------

def minict_pull(exe: str, ref: str, credentials: Credentials | None, env: dict[str, str]) -> None:
    """`minict pull ref` with its status lines and bars on our stderr."""
    run_env, fds = dict(env), ()
    if credentials is not None:
        fd = _auth_file_for(registry_of(ref), credentials)
        run_env["MINICT_AUTH_FILE"], fds = f"/dev/fd/{fd}", (fd,)
    try:
        done = subprocess.run([exe, "pull", ref], env=run_env, stdin=subprocess.DEVNULL,
                              stdout=sys.stderr.fileno(), stderr=subprocess.PIPE, text=True,
                              pass_fds=fds, check=False)
    finally:
        for fd in fds:
            os.close(fd)
    if done.returncode != 0:
        raise _pull_error(done, ref, credentials)


# minict's exit codes (minicontainer/errors.py) -> hpcshim's classes; others: PullFailed
_AUTHENTICATION, _MANIFEST_UNKNOWN, _IMAGE_NOT_FOUND, _BAD_REFERENCE = 19, 20, 11, 10


def _pull_error(done: subprocess.CompletedProcess, ref: str, credentials: Credentials | None):
    lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
    message, hint = split_hint(lines[-1].removeprefix("minict: "))
    registry = registry_of(ref)
    if done.returncode == _AUTHENTICATION:
        ways = f"--docker-login, APPTAINER_DOCKER_USERNAME/_PASSWORD, or `minict login {registry}`"
        return PullAuthFailed(message, hint=f"check {credentials.source}, or give others: {ways}"
                              if credentials else f"give credentials: {ways}")
    if done.returncode in (_MANIFEST_UNKNOWN, _IMAGE_NOT_FOUND):
        return PullImageUnknown(message, hint=f"check the name and tag of {full_name(ref)}")
    if done.returncode == _BAD_REFERENCE:
        return BadArgument(message, hint=hint or "for example busybox:1.36 or nvcr.io/nvidia/pytorch:22.03-py3")
    return PullFailed(message, hint=hint or "see minict's output above")


def split_hint(line: str) -> tuple[str, str]:
    """`message (hint)` -> (message, hint): the last balanced parenthesis group."""
    if not line.endswith(")"):
        return line, ""
    depth = 0
    for i in range(len(line) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(line[i], 0)
        if depth == 0:
            return (line[:i].rstrip(), line[i + 1:-1]) if i > 0 else (line, "")
    return line, ""


def _for_minict(exe: str, ref: str, dest: str | None, credentials, env: dict[str, str]) -> str:
    minict_pull(exe, ref, credentials, env)
    if dest:
        done = subprocess.run([exe, "tag", ref, dest], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            message, _ = split_hint((done.stderr.strip().splitlines() or ["?"])[-1].removeprefix("minict: "))
            raise BadArgument(f"cannot name the image {dest!r}: {message}",
                              hint="DEST for minict is an image name, e.g. pytorch:22.03")
        return dest
    return full_name(ref)


def _for_chrun(exe: str, ref: str, dest: str | None, credentials, env: dict[str, str]) -> str:
    if dest:
        raise BadArgument("--runtime ch-run takes no DEST: the image is unpacked into hpcshim's cache "
                          "and found by its name", hint=f"run it with hpcshim exec --runtime ch-run {ref} CMD")
    cache = image_cache(env)
    # Downloads go to a minict store in the cache (<cache>/pull-store), kept
    # between pulls for what minict keeps there after a pull that was stopped
    # (downloads/: the next pull asks only for the rest). The image leaves it
    # once unpacked: the tree under images/ is what ch-run runs. minict's
    # state dir is temporary; building() removes it whatever happens.
    store = os.path.join(cache, "pull-store")
    with building(os.path.join(cache, "pull")) as work:
        store_env = dict(env, MINICT_ROOT=store, MINICT_STATE=os.path.join(work, "state"))
        minict_pull(exe, ref, credentials, store_env)
        info = minict_tool.inspect(exe, ref, store_env)
        try:
            image = _stored_image(store, info)
            rootfs, _ = unpack(image, cache, env)
        finally:   # unpacked or not, the image leaves the download store
            minict_tool.remove(exe, info["Id"], store_env)
    record = {"rootfs": rootfs, "config_digest": image.config_digest,
              "manifest_digest": image.manifest_digest, "config": image.run_config}
    write_record(cache, ref, record)       # last: a record always names a complete tree
    return rootfs


def _stored_image(store: str, info: dict):
    """The pulled image as a layout.Image whose blobs are the store's own files
    (blobs/sha256/<hex>, as in an OCI layout): umoci reads them through
    symlinks, so no layer is copied before it is unpacked."""
    source = DirSource(store)
    try:
        manifest = json.loads(source.read("blobs/sha256/" + info["ManifestDigest"].split(":", 1)[1]))
        return Image(source=source, format="oci", name="", config_digest=info["Id"],
                     config=info.get("Config") or {}, manifest_digest=info["ManifestDigest"],
                     layers=list(manifest["layers"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PullFailed(f"minict pulled the image but its manifest cannot be read ({exc})",
                         hint="check the minict installation") from exc


# ---- Apptainer / Singularity: their own pull --------------------------------------------------

def _with_apptainer(runtime, ref: str, dest: str | None, credentials, env: dict[str, str]) -> str:
    uri = ref if "://" in ref else "docker://" + ref
    flavor = runtime.version[0] if runtime.version else runtime.name
    argv = [runtime.exe, "pull"]
    if uri.startswith("docker://"):
        registry = registry_of(uri)
        if is_loopback(registry):
            # minict's rule (and docker's): a registry on this machine may speak
            # plain HTTP. Apptainer's flag; Singularity 3.x spells it --nohttps.
            argv.append("--no-https" if flavor == "apptainer" else "--nohttps")
        credentials = credentials or stored_login(registry, env)
    argv += ([dest] if dest else []) + [uri]
    run_env = dict(env)
    if credentials is not None:
        prefix = "APPTAINER_DOCKER_" if flavor == "apptainer" else "SINGULARITY_DOCKER_"
        run_env[prefix + "USERNAME"], run_env[prefix + "PASSWORD"] = credentials.username, credentials.password
    # Its output (progress bars on a terminal, INFO lines, its FATAL line) goes
    # straight through; hpcshim adds its one line if it fails.
    done = subprocess.run(argv, env=run_env, stdin=subprocess.DEVNULL, check=False)
    if done.returncode != 0:
        raise PullFailed(f"{os.path.basename(runtime.exe)} pull {uri} failed (exit status {done.returncode})",
                         hint=f"its message is above; credentials: {credentials.source}" if credentials
                         else "its message is above")
    return dest or ""
