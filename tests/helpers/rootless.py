"""minict without root, for real, from a test suite that runs as root.

Every minict command is run as `nobody` (uid 65534) through setpriv, with
an environment of its own: a store and a state dir in a directory that
user owns. Not under pytest's tmp dir: /tmp/pytest-of-root is root's
alone (0700), so nobody could not even reach it.

    with nobody_store({"busybox:latest": busybox_image(rootfs)}) as (base, env):
        as_nobody(env, "run", "--rm", "busybox", "true")

Needs unprivileged user namespaces and overlayfs with userxattr (Linux >=
5.11); nobody_store skips the test where the host forbids them.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

NOBODY = 65534
MINICT = str(Path(sys.executable).parent / "minict")

# What the fixtures' directories are called: /tmp/minict-rootless-XXXXXX.
# Tests that look for leftovers in /tmp leave these out (other tests'
# fixtures may make some meanwhile; they are not minict's).
BASE_PREFIX = "minict-rootless-"


def nobody_argv(env: dict, *argv) -> list[str]:
    """argv, run as nobody (no supplementary groups) with exactly `env`."""
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            "env", "-i", *[f"{k}={v}" for k, v in env.items()], *map(str, argv)]


def as_nobody(env: dict, *args, timeout=60) -> subprocess.CompletedProcess:
    """`minict ARGS...` as nobody; waits for it."""
    return subprocess.run(nobody_argv(env, MINICT, *args), check=False, capture_output=True,
                          text=True, timeout=timeout)


def popen_as_nobody(env: dict, *args, **kw) -> subprocess.Popen:
    """`minict ARGS...` as nobody, in the background. Its pid is setpriv's,
    and so minict's too: setpriv and env both exec the next program."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(nobody_argv(env, MINICT, *args), text=True, **kw)


def user_namespaces_allowed() -> bytes | None:
    """None when nobody may make a user namespace here, else why not."""
    probe = subprocess.run(nobody_argv({}, "unshare", "-U", "-r", "true"), check=False,
                           capture_output=True)
    return None if probe.returncode == 0 else probe.stderr or b"unshare failed"


@contextmanager
def nobody_store(images: dict):
    """(base, env): a store and state dir owned by nobody, with `images`
    ({tag: ImageBuilder}) loaded by nobody. Removed afterwards."""
    refused = user_namespaces_allowed()
    if refused is not None:
        pytest.skip(f"unprivileged user namespaces are forbidden here: {refused!r}")
    base = Path(tempfile.mkdtemp(prefix=BASE_PREFIX))
    base.chmod(0o755)
    os.chown(base, NOBODY, NOBODY)
    # TMPDIR: a temp dir of its own, so that a test can tell that minict
    # left nothing there (temp_files); /tmp is shared with other tests.
    env = {"PATH": os.environ["PATH"], "HOME": str(base), "MINICT_ROOT": str(base / "root"),
           "MINICT_STATE": str(base / "state"), "TMPDIR": str(nobody_dir(base / "tmp"))}
    try:
        for tag, image in images.items():
            archive = image.write_docker_archive(base / "image.tar", [tag])
            os.chown(archive, NOBODY, NOBODY)
            loaded = as_nobody(env, "load", "-i", archive)
            assert loaded.returncode == 0, loaded.stderr
            archive.unlink()
        yield base, env
    finally:
        shutil.rmtree(base, ignore_errors=True)


def nobody_dir(path: Path) -> Path:
    """mkdir `path`, owned by nobody (a volume a container may write to)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, NOBODY, NOBODY)
    return path


# ---- what a rootless container could leave behind ----------------------------------------

def minict_processes(base: Path) -> list[str]:
    """minict processes working on the store in `base` (their environment
    names it): `pid command line` each."""
    import psutil
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "environ"]):
        if (proc.info.get("environ") or {}).get("MINICT_ROOT", "").startswith(str(base)):
            found.append(f"{proc.info['pid']} {' '.join(proc.info.get('cmdline') or [])}")
    return found


def pid_namespace_of(pid: int) -> str:
    """The PID namespace process `pid` is in, e.g. "pid:[4026532711]"."""
    return os.readlink(f"/proc/{pid}/ns/pid")


def processes_in(pid_namespace: str) -> list[int]:
    """The host pids of every process in that PID namespace."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/pid") == pid_namespace:
                found.append(int(entry.name))
        except OSError:
            continue    # gone meanwhile
    return found


def temp_files(base: Path) -> list[Path]:
    """What is left in nobody's TMPDIR (BASE/tmp, see nobody_store)."""
    return sorted((base / "tmp").iterdir())


def minict_entries_in_tmp() -> set[str]:
    """What nobody owns in /tmp under a name of minict's (`minict-...`: the
    default state dir without XDG_RUNTIME_DIR is /tmp/minict-UID), the
    fixtures' own directories left out. Only minict's names: other tests,
    running meanwhile, make entries of nobody's there too."""
    entries = set()
    for entry in Path("/tmp").glob("minict*"):
        try:
            owner = entry.lstat().st_uid
        except FileNotFoundError:
            continue     # removed while we looked
        if owner == NOBODY and not entry.name.startswith(BASE_PREFIX):
            entries.add(entry.name)
    return entries


def state_files(base: Path) -> list[Path]:
    """The state dir's files, the lock files left out (they may stay)."""
    return [p for p in (base / "state").rglob("*") if p.is_file() and p.suffix != ".lock"]


def container_dirs(base: Path) -> list[Path]:
    containers = base / "root" / "containers"
    return sorted(containers.iterdir()) if containers.exists() else []


def runtime_records(base: Path) -> list[dict]:
    """STATE/containers/<id>.json of every container that runs (or starts)."""
    found = []
    for path in (base / "state" / "containers").glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue     # removed, or written, meanwhile
    return found


def wait_until_running(base: Path, processes: int = 1, timeout: float = 30) -> dict:
    """The runtime record of the one container of `base`, once it runs and
    its PID namespace holds `processes` processes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = [r for r in runtime_records(base) if not r.get("starting")]
        try:
            if len(records) == 1 and len(processes_in(pid_namespace_of(records[0]["pid"]))) \
                    >= processes:
                return records[0]
        except OSError:
            pass         # its PID 1 is gone already: the loop times out
        time.sleep(0.1)
    raise AssertionError(f"no container of {base} ran within {timeout} s")
