"""The seeds' `docker run` flags in real containers, each checked from inside:
--ulimit (ulimit, /proc/self/limits), --shm-size and --ipc (/dev/shm, the IPC
namespace), --pid host (/proc/self/status), --add-host and --dns (/etc/hosts,
/etc/resolv.conf), --label (inspect), --mount (the mount table).
(--gpus and the course's whole line: test_gpus_flag.py; --device: test_devices_host.py.)
"""

import json
import os
import re
import subprocess
import uuid

import pytest

from tests.runtime.conftest import MINICT, container_dirs, mount_table

pytestmark = pytest.mark.root


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def leftovers(m) -> list:
    return container_dirs(m.root) + (sorted((m.state / "containers").iterdir())
                                     if (m.state / "containers").exists() else [])


# ---- --ulimit ---------------------------------------------------------------------------------

def test_ulimits_inside_and_in_exec(mt):
    out = mt.out("run", "--rm", "--ulimit", "nofile=1000:2000", "--ulimit", "stack=67108864",
                 "--ulimit", "nproc=500", "busybox", "sh", "-c",
                 "ulimit -n; ulimit -Hn; ulimit -s; grep -E 'open files|processes' /proc/self/limits")
    lines = out.splitlines()
    assert lines[:3] == ["1000", "2000", "65536"]
    assert lines[3].split()[-3:] == ["500", "500", "processes"]
    assert lines[4].split()[-3:] == ["1000", "2000", "files"]

    mt.out("run", "-d", "--name", "limited", "--ulimit", "nofile=900:1900", "busybox", "sleep", "60")
    try:
        assert mt.out("exec", "limited", "sh", "-c", "ulimit -n; ulimit -Hn").split() == ["900", "1900"]
    finally:
        mt("rm", "-f", "limited")


def test_explain_narrates_setrlimit(mt):
    result = mt("--explain", "run", "--rm", "--ulimit", "core=0:-1", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert "setrlimit(RLIMIT_CORE, {0, RLIM_INFINITY})" in result.stderr


def test_a_hard_limit_minict_may_not_raise_is_one_line(mt):
    """Without CAP_SYS_RESOURCE (setpriv drops it from minict's bounding
    set), a hard limit above minict's own is refused before anything exists."""
    mounts = mount_table()
    result = subprocess.run(["setpriv", "--bounding-set", "-sys_resource", MINICT, "run", "--rm",
                             "--ulimit", "memlock=-1", "busybox", "true"],
                            env=mt.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 27
    line = one_line(result.stderr)
    assert line.startswith("minict: --ulimit memlock=-1: the hard limit unlimited is above "
                           "minict's own") and "raising it needs CAP_SYS_RESOURCE" in line
    assert mount_table() == mounts and leftovers(mt) == []


# ---- /dev/shm and --ipc -----------------------------------------------------------------------

def test_shm_size(mt):
    script = "df -k /dev/shm | tail -1"
    assert mt.out("run", "--rm", "busybox", "sh", "-c", script).split()[1] == "65536"
    assert mt.out("run", "--rm", "--shm-size", "256m", "busybox", "sh", "-c", script).split()[1] \
        == "262144"


def test_ipc_host_shares_the_hosts_ipc_and_shm(mt):
    name = f"minict-test-{uuid.uuid4().hex[:8]}"
    try:
        out = mt.out("run", "--rm", "--ipc", "host", "busybox", "sh", "-c",
                     f"readlink /proc/self/ns/ipc; echo from-container > /dev/shm/{name}")
        assert out.strip() == os.readlink("/proc/self/ns/ipc")
        with open(f"/dev/shm/{name}") as f:
            assert f.read() == "from-container\n"
    finally:
        if os.path.exists(f"/dev/shm/{name}"):
            os.unlink(f"/dev/shm/{name}")


def test_ipc_private_is_its_own(mt):
    out = mt.out("run", "--rm", "busybox", "readlink", "/proc/self/ns/ipc")
    assert out.strip() != os.readlink("/proc/self/ns/ipc")


def test_ipc_container_joins_a_shareable_one(mt):
    mt.out("run", "-d", "--name", "donor", "--ipc", "shareable", "busybox", "sh", "-c",
           "echo from-donor > /dev/shm/note; exec sleep 60")
    mt.out("run", "-d", "--name", "private", "busybox", "sleep", "60")
    try:
        donor_ipc = mt.out("exec", "donor", "readlink", "/proc/self/ns/ipc").strip()
        result = mt("--explain", "run", "--rm", "--ipc", "container:donor", "busybox", "sh", "-c",
                    "readlink /proc/self/ns/ipc; cat /dev/shm/note; echo from-joiner > /dev/shm/back")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [donor_ipc, "from-donor"]
        assert mt.out("exec", "donor", "cat", "/dev/shm/back") == "from-joiner\n"
        assert "open_tree(AT_FDCWD, \"/dev/shm\", OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC)" in result.stderr
        # config.json names the donor's IPC namespace by the fd minict holds; init joins it
        assert re.search(r"runtime: Join the ipc namespace at /proc/\d+/fd/\d+: setns", result.stderr)

        refused = mt("run", "--rm", "--ipc", "container:private", "busybox", "true")
        assert refused.returncode == 27
        assert one_line(refused.stderr) == ("minict: --ipc container:private: container private keeps "
                                            "its IPC private (start it with --ipc shareable to "
                                            "share it)")
    finally:
        mt("rm", "-f", "donor", "private")
    gone = mt("run", "--ipc", "container:donor", "busybox", "true")
    assert gone.returncode == 30 and "no such container: donor" in gone.stderr
    assert leftovers(mt) == []


def test_ipc_container_of_a_stopped_container(mt):
    mt.out("run", "--name", "stopped", "--ipc", "shareable", "busybox", "true")
    try:
        result = mt("run", "--rm", "--ipc", "container:stopped", "busybox", "true")
        assert result.returncode == 32
        assert one_line(result.stderr).startswith("minict: --ipc container:stopped: container "
                                                  "stopped is not running")
    finally:
        mt("rm", "-f", "stopped")


# ---- --pid host -------------------------------------------------------------------------------

def test_pid_host(mt):
    out = mt.out("run", "--rm", "--pid", "host", "busybox", "sh", "-c",
                 "readlink /proc/self/ns/pid; echo $$; grep NSpid /proc/$$/status; "
                 f"test -d /proc/{os.getpid()} && echo sees-pytest")
    ns, pid, nspid, seen = out.splitlines()
    assert ns == os.readlink("/proc/self/ns/pid") and int(pid) > 1
    assert nspid.split()[1:] == [pid]          # one PID namespace: the host's
    assert seen == "sees-pytest"
    private = mt.out("run", "--rm", "busybox", "sh", "-c", "readlink /proc/self/ns/pid; echo $$")
    assert private.splitlines()[0] != ns and private.splitlines()[1] == "1"


# ---- --add-host, --dns ------------------------------------------------------------------------

def test_add_host_and_dns(mt):
    out = mt.out("run", "--rm", "--add-host", "db:10.1.2.3", "--add-host", "host.docker.internal:host-gateway",
                 "--dns", "9.9.9.9", "busybox", "sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf")
    hosts, resolv = out.split("---\n")
    assert "10.1.2.3\tdb\n" in hosts
    assert "10.88.0.1\thost.docker.internal\n" in hosts        # the bridge's gateway: the host
    assert [line for line in resolv.splitlines() if line.startswith("nameserver")] == ["nameserver 9.9.9.9"]


def test_add_host_with_host_network(mt):
    out = mt.out("run", "--rm", "--network", "host", "--add-host", "gw:host-gateway", "busybox",
                 "grep", "gw", "/etc/hosts")
    assert out == "127.0.0.1\tgw\n"


@pytest.mark.parametrize("args, words", [
    (["--network", "host", "--dns", "1.1.1.1"], "--dns cannot be used with --network host"),
    (["--network", "container:x", "--add-host", "a:1.2.3.4"], "--add-host cannot be used with"),
    (["--add-host", "a"], "invalid --add-host 'a'"),
    (["--ipc", "host", "--shm-size", "1g"], "--shm-size sizes a /dev/shm of the container's own"),
    (["--pid", "container:x"], "invalid --pid 'container:x'"),
    (["--mount", "type=volume,target=/v"], "a volume needs a name"),
    (["--ulimit", "nofile=9:1"], "the soft limit is above the hard one"),
    (["--network", "slirp4netns"], "--network slirp4netns is for minict without root"),
])
def test_bad_flags_are_one_line_and_leave_nothing(mt, args, words):
    mounts = mount_table()
    result = mt("run", "--rm", *args, "busybox", "true")
    assert result.returncode == 27 and words in one_line(result.stderr)
    assert mount_table() == mounts and leftovers(mt) == []


# ---- --label, --mount -------------------------------------------------------------------------

def test_labels_in_inspect(mt):
    mt.out("run", "--name", "labelled", "-l", "course=hpc", "--label", "week=3", "busybox", "true")
    try:
        shown = json.loads(mt.out("inspect", "labelled"))[0]
        assert shown["Config"]["Labels"] == {"course": "hpc", "week": "3"}
    finally:
        mt("rm", "-f", "labelled")


def test_mounts_of_each_kind(mt, tmp_path):
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "in.txt").write_text("from host\n")
    out = mt.out("run", "--rm",
                 "--mount", f"type=bind,source={host_dir},target=/in,readonly",
                 "--mount", "type=tmpfs,target=/scratch,tmpfs-size=2m",
                 "--mount", "type=volume,source=results,target=/results",
                 "busybox", "sh", "-c",
                 "cat /in/in.txt; touch /in/x 2>&1 | grep -o Read-only; "
                 "df -k /scratch | tail -1; echo 42 > /results/answer")
    lines = out.splitlines()
    assert lines[:2] == ["from host", "Read-only"]
    assert lines[2].split()[1] == "2048"
    volume = mt.root / "volumes" / "results" / "_data"
    assert (volume / "answer").read_text() == "42\n"
    # the named volume outlives the container, and -v NAME: finds it too
    assert mt.out("run", "--rm", "-v", "results:/r:ro", "busybox", "cat", "/r/answer") == "42\n"
    mt.out("run", "--name", "vol", "--mount", "source=results,target=/r", "busybox", "true")
    try:
        mounts = json.loads(mt.out("inspect", "vol"))[0]["Mounts"]
        assert mounts == [{"Type": "volume", "Source": str(volume), "Destination": "/r", "RW": True}]
    finally:
        mt("rm", "-f", "vol")
