"""Detached containers and the lifecycle commands: ps, logs, exec, stop,
start, kill, rm, inspect; and the bad inputs of each."""

import json
import time

import pytest

from tests.runtime.conftest import container_dirs, processes_of

pytestmark = pytest.mark.root

TICKER = "echo started; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done"


def wait_for(predicate, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def ps_rows(mt, *flags) -> dict:
    return {row["Names"]: row for row in map(json.loads, mt.out("ps", "--format", "json", *flags)
                                             .splitlines())}


@pytest.mark.vmtier
def test_detached_run_logs_exec_stop_start_rm(mt):
    cid = mt.out("run", "-d", "--name", "ticker", "busybox", "sh", "-c", TICKER).strip()
    assert len(cid) == 64
    try:
        assert ps_rows(mt)["ticker"]["State"] == "running"
        assert wait_for(lambda: "tick 3" in mt.out("logs", "ticker"))
        assert mt.out("logs", "ticker").startswith("started\ntick 1\n")

        # exec joins every namespace: same hostname, sees the ticker as PID 1
        out = mt.out("exec", "ticker", "sh", "-c", "hostname; cat /proc/1/cmdline | tr '\\0' ' '; "
                                                   "echo; echo $$")
        hostname, cmdline, pid = out.splitlines()
        assert hostname == cid[:12] and cmdline.startswith("sh -c echo started") and int(pid) > 1
        out = mt.out("exec", "-u", "student", "-w", "/tmp", "-e", "X=y", "ticker", "sh", "-c",
                     "id -u; pwd; echo $X")
        assert out.split() == ["1000", "/tmp", "y"]
        assert mt("exec", "ticker", "sh", "-c", "exit 9").returncode == 9
        assert mt("exec", "ticker", "nosuch").returncode == 127
        # the same seccomp filter as the container's own command
        refused = mt("exec", "ticker", "sh", "-c", "grep Seccomp: /proc/self/status; unshare -U true")
        assert refused.stdout == "Seccomp:\t2\n" and "Operation not permitted" in refused.stderr

        # sh as PID 1 ignores SIGTERM: stop falls back to SIGKILL after -t
        mt.out("stop", "-t", "1", "ticker")
        row = ps_rows(mt, "-a")["ticker"]
        assert row["State"] == "exited" and row["ExitCode"] == 137
        assert "ticker" not in ps_rows(mt)
        stopped = mt("exec", "ticker", "true")
        assert stopped.returncode == 32 and "not running" in stopped.stderr

        # start it again: same container, same files, log continues
        mt.out("start", "ticker")
        assert ps_rows(mt)["ticker"]["State"] == "running"
        assert wait_for(lambda: mt.out("logs", "ticker").count("started") == 2)
        refused = mt("rm", "ticker")
        assert refused.returncode == 33 and "is running" in refused.stderr
    finally:
        mt("rm", "-f", "ticker")
    assert "ticker" not in ps_rows(mt, "-a")
    assert not processes_of(mt.root, cid[:12])
    assert list((mt.state / "containers").iterdir()) == []


def test_logs_follow_ends_when_the_container_does(mt):
    mt.out("run", "-d", "--name", "counter", "busybox", "sh", "-c",
           "for i in 1 2 3; do echo line $i; sleep 0.2; done")
    try:
        result = mt("logs", "-f", "counter", timeout=30)
        assert result.stdout == "line 1\nline 2\nline 3\n"
        assert ps_rows(mt, "-a")["counter"]["ExitCode"] == 0
    finally:
        mt("rm", "-f", "counter")


def test_detached_rm_container_removes_itself(mt):
    mt.out("run", "-d", "--rm", "--name", "brief", "busybox", "true")
    assert wait_for(lambda: "brief" not in ps_rows(mt, "-a"))


@pytest.mark.vmtier
def test_kill_and_inspect(mt):
    mt.out("run", "-d", "--name", "target", "busybox", "sleep", "60")
    try:
        info = json.loads(mt.out("inspect", "target"))[0]
        assert info["State"]["Running"] and info["State"]["Pid"] > 1
        assert info["Config"]["Cmd"] == ["sleep", "60"] and info["Name"] == "target"
        assert info["GraphDriver"]["Data"]["UpperDir"].endswith("/upper")
        assert info["HostConfig"]["SecurityOpt"] is None          # the default seccomp filter
        mt.out("kill", "-s", "KILL", "target")
        assert wait_for(lambda: ps_rows(mt, "-a")["target"]["State"] == "exited")
        assert wait_for(lambda: ps_rows(mt, "-a")["target"]["ExitCode"] == 137)
        again = mt("kill", "target")
        assert again.returncode == 32 and "not running" in again.stderr
    finally:
        mt("rm", "-f", "target")


def test_exec_makes_itself_non_dumpable_before_joining(mt):
    mt.out("run", "-d", "--name", "joined", "busybox", "sleep", "60")
    try:
        result = mt("--explain", "exec", "joined", "true")
        assert result.returncode == 0
        text = result.stderr
        dumpable = text.index("prctl(PR_SET_DUMPABLE, 0)")
        assert dumpable < text.index("setns(/proc/") and "CVE-2019-5736" in text
        for ns in ("ipc", "uts", "net", "cgroup", "mnt"):
            assert f'/ns/{ns}"), CLONE_NEW' in text
    finally:
        mt("rm", "-f", "joined")


@pytest.mark.parametrize("args,code,words", [
    (("stop", "missing"), 30, "no such container"),
    (("rm", "missing"), 30, "no such container"),
    (("logs", "missing"), 30, "no such container"),
    (("exec", "missing", "true"), 30, "no such container"),
    (("inspect", "missing"), 30, "no such container"),
    (("kill", "-s", "NOPE", "missing"), 27, "unknown signal"),
    # not in the store: run tries to pull it, from a closed loopback port (no traffic leaves)
    (("run", "--rm", "127.0.0.1:1/no-such-image:1"), 18, "not in the store"),
    (("run", "--rm", "-v", "/nonexistent-minict:/x", "busybox", "true"), 27, "does not exist"),
    (("run", "--rm", "-e", "=x", "busybox", "true"), 27, "environment variable"),
    (("run", "--rm", "-u", "nobody2", "busybox", "true"), 35, "unable to find user"),
    (("run", "--rm", "--net", "nosuchnet", "busybox", "true"), 60, "no such network: nosuchnet"),
    (("run", "--rm", "--security-opt", "seccomp=/x.json", "busybox", "true"), 27,
     "seccomp profile files are not supported"),
    (("run", "--rm", "--security-opt", "label=disable", "busybox", "true"), 27,
     "unsupported --security-opt"),
    # mount points that cannot be made: under a file, inside a read-only volume
    (("run", "--rm", "--tmpfs", "/bin/busybox/x", "busybox", "true"), 125,
     "/bin/busybox is not a directory"),
    (("run", "--rm", "-v", "/etc:/data:ro", "--tmpfs", "/data/minict-t", "busybox", "true"), 125,
     "/data is read-only"),
])
def test_bad_input_is_one_line_with_its_code_and_leaves_nothing(mt, args, code, words):
    before = container_dirs(mt.root)
    result = mt(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code
    assert lines[-1].startswith("minict: ") and words in lines[-1]
    assert container_dirs(mt.root) == before


def test_name_in_use(mt):
    mt.out("run", "--name", "taken", "busybox", "true")
    try:
        before = container_dirs(mt.root)
        result = mt("run", "--name", "taken", "busybox", "true")
        assert result.returncode == 31 and "already in use" in result.stderr
        assert container_dirs(mt.root) == before
    finally:
        mt.out("rm", "taken")


def test_rmi_refuses_an_image_a_container_uses(mt, image_root):
    from minicontainer.config import Config
    from minicontainer.runtime.state import containers_using_image
    from minicontainer.image.store import Store
    mt.out("run", "--name", "user-of-image", "busybox", "true")
    try:
        image = Store(image_root).resolve("busybox")
        config = Config(root=image_root, state=mt.state)
        assert "user-of-image" in containers_using_image(config, image.id)
    finally:
        mt.out("rm", "user-of-image")
    assert "user-of-image" not in containers_using_image(config, image.id)


def test_concurrent_runs_cannot_share_a_name(mt):
    procs = [mt.popen("run", "--name", "race", "busybox", "true") for _ in range(6)]
    codes = sorted(p.wait(timeout=60) for p in procs)
    try:
        assert codes == [0, 31, 31, 31, 31, 31]
        assert list(ps_rows(mt, "-a")).count("race") == 1
    finally:
        mt("rm", "race")


def test_minict_failing_to_start_the_container_is_125(fresh_mt):
    mt = fresh_mt
    layers = mt.root / "layers"
    layers.rename(mt.root / "layers-gone")      # the image's layers vanished
    try:
        result = mt("run", "--name", "broken", "busybox", "true")
        assert result.returncode == 125
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("minict: could not set up the container")
        assert "mount(" in lines[0]
        assert container_dirs(mt.root) == []
    finally:
        (mt.root / "layers-gone").rename(layers)


@pytest.mark.parametrize("command", [["run", "--rm", "busybox", "true"], ["ps"], ["exec", "x", "true"],
                                     ["cleanup"]])
def test_container_commands_need_root(mt, command):
    import subprocess
    from tests.runtime.conftest import MINICT
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                             MINICT, *command], env=mt.env, capture_output=True, text=True)
    assert result.returncode == 34
    # run works without root (tests/runtime/test_rootless.py), but not on root's store
    expected = "not writable by uid 65534" if command[0] == "run" else "needs root"
    assert result.stderr.startswith("minict: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
