"""minict without root (runtime/rootless.py), for real on this host.

The tests run as root (the suite does) and drop to `nobody` (65534) with
setpriv for every minict command: a store and state dir in a tmp directory
that user owns. They need unprivileged user namespaces and overlayfs with
userxattr (Linux >= 5.11; the whiteout test, xattr whiteouts: >= 6.7).
"""

import json
import os
import signal
from pathlib import Path

import pytest

from minicontainer.config import Config
from minicontainer.syscalls import kernel_version
from tests.helpers.images import Entry, busybox_image, tar_of
from tests.helpers.rootless import (
    NOBODY,
    as_nobody,
    container_dirs,
    minict_entries_in_tmp,
    minict_processes,
    nobody_dir,
    nobody_store,
    pid_namespace_of,
    popen_as_nobody,
    processes_in,
    state_files,
    temp_files,
    wait_until_running,
)
from tests.helpers.waiting import wait_for
from tests.runtime.conftest import mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="drops to nobody with setpriv: needs root")


@pytest.fixture(scope="module")
def userland(busybox_rootfs):
    """nobody's home: a store with busybox:latest (loaded as nobody) and a
    state dir, all owned by nobody (tests/helpers/rootless.py)."""
    with nobody_store({"busybox:latest": busybox_image(busybox_rootfs)}) as (base, env):
        yield base, env


def test_store_and_state_default_to_the_users_places(monkeypatch):
    monkeypatch.delenv("MINICT_ROOT", raising=False)
    monkeypatch.delenv("MINICT_STATE", raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_DATA_HOME", "/home/u/.data")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    config = Config.from_env()
    assert (str(config.root), str(config.state)) == ("/home/u/.data/minict", "/run/user/1000/minict")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    config = Config.from_env()
    assert (str(config.root), str(config.state)) == ("/home/u/.local/share/minict", "/tmp/minict-1000")
    assert str(Config.from_env(root="/x").root) == "/x"


def test_root_inside_is_the_caller_outside(userland, tmp_path):
    base, env = userland
    volume = nobody_dir(base / "vol")
    result = as_nobody(env, "run", "--rm", "--network", "none", "-v", f"{volume}:/data", "busybox",
                       "sh", "-c", "id -u; echo hi > /data/made-inside")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"]
    made = volume / "made-inside"
    assert made.read_text() == "hi\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (NOBODY, NOBODY)


def test_the_bundle_holds_the_user_namespace_and_its_maps(userland):
    """Without root, config.json lists a user namespace first and gives its
    uidMappings/gidMappings (the store's map, rootless.choose_id_map): the
    runtime's fork clones into it and writes them (oci/idmaps.py)."""
    _, env = userland
    started = as_nobody(env, "run", "-d", "--name", "mapped", "--network", "none", "busybox",
                        "sleep", "60")
    assert started.returncode == 0, started.stderr
    try:
        shown = as_nobody(env, "inspect", "--bundle", "mapped")
        inside = as_nobody(env, "exec", "mapped", "cat", "/proc/self/uid_map")
    finally:
        as_nobody(env, "rm", "-f", "mapped")
    linux = json.loads(shown.stdout)[0]["linux"]
    assert [ns["type"] for ns in linux["namespaces"]][:2] == ["user", "pid"]
    assert linux["uidMappings"][0] == {"containerID": 0, "hostID": NOBODY, "size": 1}
    assert linux["gidMappings"][0] == {"containerID": 0, "hostID": NOBODY, "size": 1}
    assert inside.stdout.split()[:3] == ["0", str(NOBODY), "1"]


def test_security_holds_inside(userland):
    _, env = userland
    result = as_nobody(env, "run", "--rm", "busybox", "sh", "-c",
                       "mknod /tmp/n c 1 3 2>&1; echo mknod=$?; "
                       "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/keys | wc -c")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Operation not permitted" in out and "mknod=1" in out
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out
    assert out.split()[-1] == "0"          # /proc/keys masked


def test_whiteouts_are_honoured(userland, busybox_rootfs):
    if kernel_version() < (6, 7):
        pytest.skip("xattr whiteouts need Linux >= 6.7")
    base, env = userland
    built = busybox_image(busybox_rootfs)
    built.add_layer(tar_of([Entry.dir("home"), Entry.file("home/old", b"o")]))
    built.add_layer(tar_of([Entry.whiteout("etc/os-release"), Entry.opaque("home"),
                            Entry.file("home/new", b"n")]))
    archive = built.write_docker_archive(base / "wh.tar", ["wh:latest"])
    os.chown(archive, NOBODY, NOBODY)
    loaded = as_nobody(env, "load", "-i", archive)
    assert loaded.returncode == 0, loaded.stderr
    result = as_nobody(env, "run", "--rm", "wh", "sh", "-c",
                       "ls /etc/os-release 2>&1; ls /home; rm /bin/true && ls /bin/true")
    assert "No such file" in result.stdout, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "new" in lines and "old" not in lines
    assert result.returncode != 0                           # /bin/true removed in the container


# ---- what it cannot do yet: refused before anything is made, in one line --------------------

REFUSED_WITHOUT_ROOT = [
    # (flags, exit code, what the line names)
    (["--network", "bridge"], 27, "--network bridge"),     # BadArgument: a veth needs root
    (["--network", "none", "-p", "8080:80"], 27, "-p"),    # published ports need slirp4netns
    (["--network", "none", "-P"], 27, "-P"),
    (["--network", "container:x"], 27, "--network container:x"),
    (["--privileged"], 27, "--privileged"),
    (["--pid", "host"], 27, "--pid host"),                  # it must own its PID namespace
    (["--ipc", "container:x"], 27, "--ipc container:x"),
    (["--memory", "64m"], 40, "--memory"),                  # CgroupUnavailable: no delegation
]


@pytest.mark.parametrize("flags, code, named", REFUSED_WITHOUT_ROOT,
                         ids=[" ".join(flags) for flags, _, _ in REFUSED_WITHOUT_ROOT])
def test_what_it_cannot_do_is_one_clear_line(userland, flags, code, named):
    base, env = userland
    result = as_nobody(env, "run", "--rm", *flags, "busybox", "true")
    assert (result.returncode, result.stdout) == (code, ""), result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("minict: ") and named in line, line
    assert "Traceback" not in result.stderr
    assert container_dirs(base) == []                       # refused before anything was made


# ---- leaving nothing behind ----------------------------------------------------------------

def leftovers(base: Path) -> dict:
    """Everything a rootless run could leave behind on the host."""
    return {"mounts": mounts_under(base), "containers": container_dirs(base),
            "minict processes": minict_processes(base), "state files": state_files(base),
            "temp files": temp_files(base), "minict's in /tmp": minict_entries_in_tmp()}


def test_fifty_runs_leave_nothing(userland):
    base, env = userland
    before = leftovers(base)
    assert before == dict(before, mounts=[], containers=[], **{"minict processes": [],
                                                               "state files": [],
                                                               "temp files": []})
    for _ in range(50):
        result = as_nobody(env, "run", "--rm", "busybox", "true")
        assert result.returncode == 0, result.stderr
    assert leftovers(base) == before


# ---- its owner killed, and the user's own stop, kill, ps and rm -----------------------------

def test_a_killed_owner_takes_the_container_with_it_and_rm_cleans_up(userland):
    """The container's PID 1 dies with its minict (PR_SET_PDEATHSIG), and so
    does every process of its PID namespace; the record stays, and the user
    (no root needed) sees it in ps and removes it with rm."""
    base, env = userland
    before = leftovers(base)
    owner = popen_as_nobody(env, "run", "--name", "orphan", "busybox", "sh", "-c",
                            "sleep 100 & exec sleep 101")
    try:
        runtime = wait_until_running(base, processes=2)
        assert runtime["owner_pid"] == owner.pid
        namespace = pid_namespace_of(runtime["pid"])
        assert row_of(env, "orphan")["State"] == "running"
        owner.send_signal(signal.SIGKILL)
        assert owner.wait(timeout=30) == -signal.SIGKILL
        wait_for(lambda: processes_in(namespace) == [], 10, "the container's processes to die")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    row = row_of(env, "orphan")
    assert row["State"] == "exited" and "died" in row["Status"], row
    removed = as_nobody(env, "rm", "orphan")
    assert (removed.returncode, removed.stdout) == (0, "orphan\n"), removed.stderr
    assert leftovers(base) == before
    again = as_nobody(env, "run", "--rm", "--name", "orphan", "busybox", "true")
    assert again.returncode == 0, again.stderr                # its name is free again


def row_of(env: dict, name: str) -> dict:
    """`minict ps -a`'s row of container `name`, run as nobody."""
    listed = as_nobody(env, "ps", "-a", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    [row] = [r for r in rows if r["Names"] == name]
    return row


@pytest.mark.parametrize("command", [["kill"], ["stop", "-t", "1"]], ids=["kill", "stop"])
def test_the_user_stops_a_foreground_run_and_it_exits_137(userland, command):
    """kill: SIGKILL. stop: SIGTERM, which sleep as PID 1 ignores (the
    kernel gives PID 1 no default actions), then SIGKILL after 1 s."""
    base, env = userland
    before = leftovers(base)
    owner = popen_as_nobody(env, "run", "--rm", "--name", "victim", "busybox", "sleep", "100")
    try:
        wait_until_running(base)
        stopped = as_nobody(env, *command, "victim")
        assert (stopped.returncode, stopped.stdout) == (0, "victim\n"), stopped.stderr
        assert owner.wait(timeout=30) == 128 + signal.SIGKILL
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
    assert leftovers(base) == before
