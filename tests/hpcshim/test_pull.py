"""`hpcshim pull`, for real, against a registry on loopback with token auth
(docker-registry and the TokenServer of tests/registry/servers.py), and
FakeRegistry where a transfer must break on cue.

Each backend is pulled for and then run with `hpcshim exec` in a network
namespace of its own (no route anywhere): ch-run from the tree in hpcshim's
cache, minict from its store, Apptainer from the SIF file its own pull made.
Credentials come the ways the sites give them (APPTAINER_DOCKER_*,
SINGULARITY_DOCKER_*, --docker-login on a terminal, `minict login`'s file);
a failure is one line, with its own exit code, and leaves nothing behind.
"""

import base64
import fcntl
import hashlib
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tarfile
import termios
import time
from pathlib import Path

import pytest

from hpcshim.errors import BadArgument, ConversionFailed, PullAuthFailed, PullImageUnknown
from tests.helpers.images import ImageBuilder, busybox_image
from tests.helpers.waiting import wait_for
from tests.registry.conftest import needs_registry
from tests.registry.pushing import skopeo_push
from tests.registry.servers import DockerRegistry, FakeRegistry, TokenServer

pytestmark = [pytest.mark.root, needs_registry]

BIN = Path(sys.executable).parent
HPCSHIM = str(BIN / "hpcshim")
USERS = {"alice": "wonderland"}
PROBE = "cat /etc/motd-pulled"
SECRET = "wonderland"


# ---- the registry and the environment ------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory, busybox_rootfs):
    """Token auth; priv/busybox for alice only, pub/busybox for anyone."""
    if os.geteuid() != 0:
        pytest.skip("needs root (minict and ch-run containers)")
    work = tmp_path_factory.mktemp("pull-registry")
    layout = marked_busybox(busybox_rootfs).write_oci_layout(work / "layout", ref_name="latest")
    tokens = TokenServer(work, USERS, public={"pub/busybox"}).start()
    server = DockerRegistry(work / "registry", auth="token", token_server=tokens)
    try:
        server.start()
        for repo in ("pub/busybox", "priv/busybox"):
            skopeo_push(layout, f"{server.host}/{repo}:latest", creds="alice:wonderland")
        yield server
    finally:
        server.stop()
        tokens.stop()


def marked_busybox(rootfs: Path) -> ImageBuilder:
    """busybox plus /etc/motd-pulled, so a test knows which image it runs."""
    from tests.helpers.images import Entry, tar_of
    image = busybox_image(rootfs)
    image.add_layer(tar_of([Entry.dir("etc"), Entry.file("etc/motd-pulled", b"pulled\n")]), "gzip")
    return image


@pytest.fixture
def env(shim_env, tmp_path) -> dict:
    """minict on PATH, a store, credential files and a cache of this test's own."""
    e = {k: v for k, v in shim_env.items() if not k.startswith(("APPTAINER_", "SINGULARITY_", "MINICT_"))}
    (tmp_path / "docker-config").mkdir()
    e.update(PATH=f"{BIN}:{e.get('PATH', '/usr/bin:/bin')}", MINICT_ROOT=str(tmp_path / "minict-root"),
             MINICT_STATE=str(tmp_path / "minict-state"),
             MINICT_AUTH_FILE=str(tmp_path / "auth.json"), DOCKER_CONFIG=str(tmp_path / "docker-config"))
    return e


def alice(env: dict, prefix="APPTAINER_DOCKER_", password=SECRET) -> dict:
    return dict(env, **{prefix + "USERNAME": "alice", prefix + "PASSWORD": password})


def shim(env: dict, *args, timeout=120, offline=False):
    """hpcshim ARGS; offline: in a network namespace with nothing but a loopback that is down."""
    argv = ["unshare", "--net", HPCSHIM] if offline else [HPCSHIM]
    return subprocess.run(argv + [str(a) for a in args], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    last = result.stderr.splitlines()[-1]
    assert last.startswith("hpcshim: ") and last.endswith(")"), result.stderr
    assert SECRET not in result.stderr + result.stdout
    return last


STORE_CONTENT = ("pull-store/blobs/sha256", "pull-store/layers", "pull-store/downloads/sha256",
                 "pull-store/tmp")


def cache_leftovers(env: dict) -> list[str]:
    """What the image parts of hpcshim's cache hold: `images/HEX`, `pulled/NAME.json`, `pull/...`,
    and content in the download store (`pull-store/blobs/sha256/HEX`...; its index, locks and
    empty directories are no content)."""
    cache = Path(env["HPCSHIM_CACHE_DIR"])
    return sorted(f"{part}/{p.name}" for part in ("images", "pull", "pulled", *STORE_CONTENT)
                  if (cache / part).is_dir() for p in (cache / part).iterdir())


# ---- names -------------------------------------------------------------------------------------

@pytest.mark.parametrize("ref", ["busybox", "tensorflow/tensorflow:1.13.1", "nvcr.io/nvidia/pytorch:22.03-py3",
                                 "localhost:5000/a/b", "127.0.0.1:5000/a/b@sha256:" + "a" * 64,
                                 "index.docker.io/x/y", "quay.io/org/img:1.0@sha256:" + "b" * 64])
def test_names_are_compared_in_the_form_minict_stores(ref):
    from hpcshim.images.pulled import full_name
    from minicontainer.image.reference import parse
    assert full_name(ref) == full_name("docker://" + ref) == str(parse(ref))


def test_split_hint():
    from hpcshim.pull import split_hint
    assert split_hint("a (b) c (d (e))") == ("a (b) c", "d (e)")
    assert split_hint("no hint") == ("no hint", "") and split_hint("(all)") == ("(all)", "")


# ---- ch-run: a tree in hpcshim's cache ---------------------------------------------------------

def test_chrun_pull_with_apptainer_variables_then_exec_offline(registry, env):
    ref = f"{registry.host}/priv/busybox"
    result = shim(alice(env), "pull", "--runtime", "ch-run", ref)
    assert result.returncode == 0, result.stderr
    rootfs = Path(result.stdout.strip())
    assert rootfs.parent == Path(env["HPCSHIM_CACHE_DIR"]) / "images" and (rootfs / "bin/busybox").exists()
    assert SECRET not in result.stderr + result.stdout
    assert "Pull complete" in result.stderr and "B/s" not in result.stderr   # no bar off a terminal
    record_file = f"{registry.host.replace(':', '+')}%priv%busybox+latest.json"
    record = json.loads((Path(env["HPCSHIM_CACHE_DIR"]) / "pulled" / record_file).read_text())
    assert record["rootfs"] == str(rootfs) and record["config"]["Cmd"] == ["sh"]
    assert cache_leftovers(env) == [f"images/{rootfs.name}", f"pulled/{record_file}"]  # nothing downloaded kept
    # exec finds it by the name it was pulled as (with or without :latest), with no network
    for name in (ref, f"{ref}:latest", f"docker://{ref}"):
        ran = shim(env, "exec", "-v", "--runtime", "ch-run", name, "sh", "-c", f"{PROBE}; echo $PATH",
                   offline=True)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.splitlines()[0] == "pulled" and "/usr/bin" in ran.stdout
        assert f"at {rootfs}" in ran.stderr


def test_chrun_pull_of_a_public_image_needs_no_credentials(registry, env):
    result = shim(env, "pull", "--runtime", "ch-run", f"docker://{registry.host}/pub/busybox:latest")
    assert result.returncode == 0, result.stderr
    ran = shim(env, "run", "--runtime", "ch-run", f"{registry.host}/pub/busybox", "sh", "-c", PROBE,
               offline=True)
    assert ran.returncode == 0 and ran.stdout == "pulled\n", ran.stderr


def test_minict_stored_login_is_used(registry, env):
    login = subprocess.run([str(BIN / "minict"), "login", "-u", "alice", "--password-stdin", registry.host],
                           input=SECRET + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert login.returncode == 0, login.stderr
    result = shim(env, "pull", "--runtime", "ch-run", f"{registry.host}/priv/busybox")
    assert result.returncode == 0, result.stderr


def test_the_order_of_credentials(registry, env):
    """APPTAINER_DOCKER_* before SINGULARITY_DOCKER_* before what `minict login` stored."""
    pair = base64.b64encode(b"alice:not-" + SECRET.encode()).decode()
    Path(env["MINICT_AUTH_FILE"]).write_text(json.dumps({"auths": {registry.host: {"auth": pair}}}))
    for job in (alice(alice(env, "SINGULARITY_DOCKER_", password="not-" + SECRET)),
                alice(env, "SINGULARITY_DOCKER_")):
        result = shim(job, "pull", "--runtime", "ch-run", f"{registry.host}/priv/busybox")
        assert result.returncode == 0, result.stderr
    stored_only = shim(env, "pull", "--runtime", "ch-run", f"{registry.host}/priv/busybox")
    assert "(from " + env["MINICT_AUTH_FILE"] in one_line_error(stored_only, PullAuthFailed.exit_code)


def test_a_failed_unpack_leaves_nothing_in_the_cache(registry, env, tmp_path):
    """The download worked, umoci did not: one line, and neither the image in
    the download store nor a half tree, record or temporary dir is left."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "umoci").write_text("#!/bin/sh\necho 'umoci: no space left on device' >&2\nexit 1\n")
    (fake_bin / "umoci").chmod(0o755)
    failing = dict(env, PATH=f"{fake_bin}:{env['PATH']}")
    result = shim(failing, "pull", "--runtime", "ch-run", f"docker://{registry.host}/pub/busybox:latest")
    assert "no space left on device" in one_line_error(result, ConversionFailed.exit_code)
    assert cache_leftovers(env) == []


# ---- minict: its store ------------------------------------------------------------------------

def test_minict_pull_with_singularity_variables_then_exec_offline(registry, env):
    ref = f"{registry.host}/priv/busybox:latest"
    result = shim(alice(env, "SINGULARITY_DOCKER_"), "pull", "--runtime", "minict", ref, "mine:1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "mine:1\n" and SECRET not in result.stderr
    assert not Path(env["HPCSHIM_CACHE_DIR"], "pulled").exists()             # minict's store only
    for name in (ref, "mine:1"):
        ran = shim(env, "exec", "--runtime", "minict", name, "sh", "-c", PROBE, offline=True)
        assert ran.returncode == 0 and ran.stdout == "pulled\n", ran.stderr


# ---- what goes wrong: one line, its own code, nothing left ---------------------------------------

@pytest.mark.parametrize("runtime", ["ch-run", "minict"])
@pytest.mark.parametrize("how", ["wrong password", "no credentials"])
def test_refused_credentials(registry, env, runtime, how):
    job = alice(env, password="not-" + SECRET) if how == "wrong password" else env
    result = shim(job, "pull", "--runtime", runtime, f"{registry.host}/priv/busybox")
    line = one_line_error(result, PullAuthFailed.exit_code)
    assert ("rejected" in line and "'alice'" in line) if how == "wrong password" else "requires" in line
    assert "APPTAINER_DOCKER_USERNAME" in line and "not-" + SECRET not in result.stderr
    assert cache_leftovers(env) == [] and not Path(env["MINICT_ROOT"], "index.json").exists()


@pytest.mark.parametrize("runtime", ["ch-run", "minict"])
def test_unknown_image(registry, env, runtime):
    result = shim(alice(env), "pull", "--runtime", runtime, f"{registry.host}/priv/busybox:nosuchtag")
    line = one_line_error(result, PullImageUnknown.exit_code)
    assert "nosuchtag" in line and cache_leftovers(env) == []


@pytest.mark.parametrize("variables, named", [
    ({"APPTAINER_DOCKER_USERNAME": "alice"}, "APPTAINER_DOCKER_PASSWORD is not"),
    ({"SINGULARITY_DOCKER_PASSWORD": SECRET}, "SINGULARITY_DOCKER_USERNAME is not")])
def test_half_given_credentials(registry, env, variables, named):
    result = shim(dict(env, **variables), "pull", "--runtime", "ch-run", f"{registry.host}/priv/busybox")
    assert named in one_line_error(result, BadArgument.exit_code)


def test_bad_arguments(env):
    for args, words in ((["--runtime", "ch-run", "library://x/y"], "docker registries only"),
                        (["--runtime", "ch-run", "busybox", "dest"], "takes no DEST"),
                        (["--runtime", "ch-run", "--docker-login", "busybox"], "no terminal")):
        assert words in one_line_error(shim(env, "pull", *args), BadArgument.exit_code)


# ---- interrupted transfers --------------------------------------------------------------------

def served(fake: FakeRegistry, busybox_rootfs) -> str:
    fake.add_image("test/busybox", "latest", marked_busybox(busybox_rootfs))
    return f"{fake.host}/test/busybox:latest"


def test_a_transfer_cut_off_midway_resumes(env, busybox_rootfs):
    fake = FakeRegistry(drop_first_blob=True).start()
    try:
        result = shim(env, "pull", "--runtime", "ch-run", served(fake, busybox_rootfs))
    finally:
        fake.stop()
    assert result.returncode == 0, result.stderr
    resumed = [status for path, wanted, status in fake.log if "/blobs/" in path and wanted]
    assert resumed and set(resumed) == {206}       # the rest of each blob, not all of it again


def test_a_killed_pull_leaves_no_image_and_the_next_one_resumes(env, busybox_rootfs):
    """SIGKILL (a job's time limit, say) halfway through the layer: no half image anywhere,
    and the next pull asks the registry only for the bytes the first did not get."""
    fake = FakeRegistry().start()
    cache = Path(env["HPCSHIM_CACHE_DIR"])
    try:
        ref = served(fake, busybox_rootfs)
        image = marked_busybox(busybox_rootfs)
        layer = image.layers[0]
        fake.stall_blobs.add(layer["digest"])
        victim = subprocess.Popen([HPCSHIM, "pull", "--runtime", "ch-run", ref], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        download = cache / "pull-store/downloads/sha256" / layer["digest"].split(":")[1]
        try:
            assert fake.stalled.wait(timeout=60), "the pull never started a blob"
            wait_for(lambda: download.exists() and download.stat().st_size, 30, "the half layer on disk")
            os.killpg(victim.pid, signal.SIGKILL)       # hpcshim and the minict it runs
        finally:
            victim.wait(timeout=30)
        held = download.stat().st_size
        assert 0 < held < layer["size"]
        assert [p.name[:5] for p in (cache / "pull").iterdir()] == [".tmp-"]
        assert not (cache / "images").exists() and not (cache / "pulled").exists()
        fake.release.set()
        fake.log.clear()
        again = shim(env, "pull", "--runtime", "ch-run", ref)
    finally:
        fake.release.set()
        fake.stop()
    assert again.returncode == 0, again.stderr
    assert [(wanted, status) for path, wanted, status in fake.log if path.endswith(layer["digest"])] == \
        [(f"bytes={held}-", 206)]                                         # the rest, not all of it
    assert f"Resuming from byte {held}" in again.stderr
    assert not list((cache / "pull").iterdir())     # the dead one's reaped
    assert [p.split("/")[0] for p in cache_leftovers(env)] == ["images", "pulled"]


# ---- a terminal: --docker-login asks, and bars are drawn ------------------------------------------

def on_terminal(env: dict, argv: list[str], answers: list[tuple[str, str]], timeout=120) -> tuple[int, str]:
    """Run argv on a pseudo-terminal, answering each prompt; (exit status, all it printed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(argv[0], argv, env)
    # 24x80, as a real terminal has: tqdm fits its bar to the width, and a new pty's is 0
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen, pending, end = b"", list(answers), time.monotonic() + timeout
    while time.monotonic() < end:
        if pending and pending[0][0].encode() in seen:
            os.write(fd, pending.pop(0)[1].encode() + b"\n")
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_docker_login_asks_on_the_terminal(registry, env):
    wrong = alice(env, password="not-" + SECRET)         # --docker-login comes first
    code, printed = on_terminal(wrong, [HPCSHIM, "pull", "--runtime", "ch-run", "--docker-login",
                                      f"{registry.host}/priv/busybox"],
                                [("Username: ", "alice"), ("Password: ", SECRET)])
    assert code == 0, printed
    assert SECRET not in printed                         # not echoed, not printed
    assert "Pull complete" in printed and "\r" in printed and "B/s" in printed   # a bar, redrawn


# ---- memory ------------------------------------------------------------------------------------

class RandomBytes:
    """A file-like source of n random bytes (a layer nothing can compress)."""

    def __init__(self, n: int):
        self.left = n

    def read(self, size: int = 1 << 20) -> bytes:
        size = min(self.left, size if size > 0 else 1 << 20)
        self.left -= size
        return os.urandom(size)


def write_big_layout(dest: Path, size: int, base: ImageBuilder | None = None, gzip: bool = False) -> Path:
    """An OCI layout tagged `latest`: base's layers (if any) plus one layer holding
    `size` random bytes in /big.bin (a plain tar, or gzip -1), written to disk a MiB at a time."""
    image = base or ImageBuilder()
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = dest / "layer.tar"
    with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size, info.mode = size, 0o644
        tar.addfile(info, RandomBytes(size))
    diff_id = file_digest(layer)
    if gzip:
        subprocess.run(["gzip", "-1", "-n", str(layer)], check=True)
        layer = layer.with_name("layer.tar.gz")
    digest = file_digest(layer)
    os.rename(layer, blobs / digest[7:])
    media_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip else "")
    image.layers.append({"mediaType": media_type, "digest": digest, "size": (blobs / digest[7:]).stat().st_size})
    image.diff_ids.append(diff_id)
    files = image.layout_files(["latest"])
    for path, data in files.items():
        target = dest / path
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return dest


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def peak_rss_kib(argv: list[str], env: dict) -> tuple[int, subprocess.CompletedProcess]:
    """Run argv from a fresh Python whose only children are it and its descendants: their
    largest resident set (getrusage RUSAGE_CHILDREN ru_maxrss, KiB), and the result."""
    measure = ("import resource, subprocess, sys, json\n"
               "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "print(json.dumps([resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
               " done.returncode, done.stdout, done.stderr]))\n")
    out = subprocess.run([sys.executable, "-c", measure, *argv], env=env, capture_output=True, text=True,
                         check=True, timeout=900)
    kib, code, stdout, stderr = json.loads(out.stdout)
    return kib, subprocess.CompletedProcess(argv, code, stdout, stderr)


@pytest.mark.slow
def test_pulling_a_200_mb_layer_stays_under_150_mb(registry, env, tmp_path):
    layout = write_big_layout(tmp_path / "big", 200 * 1024 * 1024)
    skopeo_push(layout, f"{registry.host}/priv/big:latest", creds="alice:wonderland")
    for runtime in ("ch-run", "minict"):
        kib, result = peak_rss_kib([HPCSHIM, "pull", "--runtime", runtime, f"{registry.host}/priv/big"],
                                   alice(env))
        assert result.returncode == 0, result.stderr
        assert kib < 150 * 1024, f"{runtime}: peak RSS {kib / 1024:.0f} MiB"


# ---- Apptainer: its own pull ---------------------------------------------------------------------

def test_apptainer_pulls_with_the_variables_and_runs_the_sif(registry, env, tmp_path):
    from tests.helpers.apptainer import find_apptainer
    job = find_apptainer().env(alice(env), tmp_path)
    sif = tmp_path / "busybox.sif"
    result = shim(job, "pull", "--runtime", "apptainer", f"{registry.host}/priv/busybox", sif, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{sif}\n" and sif.is_file() and SECRET not in result.stderr
    ran = shim(job, "exec", "--runtime", "apptainer", sif, "sh", "-c", PROBE, offline=True)
    assert ran.returncode == 0 and ran.stdout == "pulled\n", ran.stderr
    refused = shim(dict(job, APPTAINER_DOCKER_PASSWORD="nope"), "pull", "--runtime", "apptainer",
                   f"{registry.host}/priv/busybox", tmp_path / "other.sif", timeout=300)
    assert refused.returncode == 52 and refused.stderr.splitlines()[-1].startswith("hpcshim: ")
    assert not (tmp_path / "other.sif").exists()


def test_apptainer_gets_minicts_stored_login(registry, env, tmp_path):
    from tests.helpers.apptainer import find_apptainer
    pair = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    Path(env["MINICT_AUTH_FILE"]).write_text(json.dumps({"auths": {registry.host: {"auth": pair}}}))
    job = find_apptainer().env(env, tmp_path)
    result = shim(job, "pull", "--runtime", "apptainer", f"docker://{registry.host}/priv/busybox:latest",
                  tmp_path / "b.sif", timeout=300)
    assert result.returncode == 0, result.stderr
