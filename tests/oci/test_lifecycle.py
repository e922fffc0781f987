"""minict-oci's runc command line, for real: create, start, state, kill,
delete, run, exec, ps, list, and what a failed create leaves (nothing).

The test is the caller an engine would be: it reaps what create leaves."""

import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager

import pytest

from tests.helpers.waiting import wait_for
from .conftest import MINICT_OCI, reaped

pytestmark = pytest.mark.root


@contextmanager
def sleeping(bundle):
    """A running container c1 (sleep 60), its init's pid; deleted and
    reaped afterwards, as an engine would."""
    bundle.process("sleep", "60")
    bundle.oci("run", "-d", "-b", str(bundle.path), "c1", check=True)
    init = bundle.state()["pid"]
    try:
        yield init
    finally:
        bundle.oci("delete", "--force", "c1", check=True)
        reaped(init)


def test_run_prints_and_returns_the_exit_code(bundle):
    bundle.process("sh", "-c", "echo hello from $(hostname); exit 7")
    result = bundle.run()
    assert result.returncode == 7, result.stderr
    assert result.stdout == "hello from minict\n"
    assert not (bundle.state_root / "c1").exists()   # run deletes what it made


def test_a_signal_ends_run_with_128_plus_n(bundle):
    bundle.process("sleep", "60")
    bundle.write()
    running = subprocess.Popen([MINICT_OCI, "--root", str(bundle.state_root), "run", "-b",
                                str(bundle.path), "c1"])
    wait_for(lambda: (bundle.state_root / "c1" / "state.json").exists()
             and bundle.state()["status"] == "running", 10, what="the container running")
    bundle.oci("kill", "c1", "KILL", check=True)
    assert running.wait(timeout=10) == 128 + signal.SIGKILL


def test_create_waits_until_start(bundle, tmp_path):
    marker = tmp_path / "rootfs" / "started"
    bundle.process("sh", "-c", "touch /started; exec sleep 60")
    pid_file = tmp_path / "pid"
    bundle.oci("create", "-b", str(bundle.path), "--pid-file", str(pid_file), "c1", check=True)
    state = bundle.state()
    assert state["status"] == "created"
    assert state["pid"] == int(pid_file.read_text())
    assert state["bundle"] == str(bundle.path) and state["ociVersion"].startswith("1.")
    time.sleep(0.2)
    assert not marker.exists()           # the command has not run
    bundle.oci("start", "c1", check=True)
    wait_for(marker.exists, 10, what="the command after start")
    assert bundle.state()["status"] == "running"
    assert not (bundle.state_root / "c1" / "exec.fifo").exists()
    bundle.oci("kill", "c1", "KILL", check=True)
    reaped(state["pid"])
    assert bundle.state()["status"] == "stopped"
    assert bundle.state()["pid"] == 0
    bundle.oci("delete", "c1", check=True)
    assert bundle.oci("state", "c1").returncode == 30


@pytest.mark.parametrize("name", ["TERM", "SIGTERM", "15"])
def test_kill_takes_runc_s_signal_spellings(bundle, name):
    # PID 1 of a namespace gets only the signals it handles: hence the trap.
    bundle.process("sh", "-c", "trap 'exit 42' TERM; while :; do sleep 0.05; done")
    bundle.oci("run", "-d", "-b", str(bundle.path), "c1", check=True)
    pid = bundle.state()["pid"]
    bundle.oci("kill", "c1", name, check=True)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 42


def test_kill_all_reaches_every_process(bundle):
    bundle.process("sh", "-c", "sleep 60 & sleep 60 & wait")
    bundle.oci("run", "-d", "-b", str(bundle.path), "c1", check=True)
    wait_for(lambda: len(json.loads(bundle.oci("ps", "--format", "json", "c1").stdout)) == 3,
             10, what="three processes")
    pids = json.loads(bundle.oci("ps", "--format", "json", "c1").stdout)
    bundle.oci("kill", "--all", "c1", "KILL", check=True)
    reaped(pids[0])
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids[1:]),
             10, what="every process gone")


def test_delete_refuses_a_running_container_without_force(bundle):
    bundle.process("sleep", "60")
    bundle.oci("run", "-d", "-b", str(bundle.path), "c1", check=True)
    pid = bundle.state()["pid"]
    refused = bundle.oci("delete", "c1")
    assert refused.returncode == 33 and "delete --force" in refused.stderr
    bundle.oci("delete", "--force", "c1", check=True)
    reaped(pid)
    assert not (bundle.state_root / "c1").exists()


def test_a_second_create_of_one_id_is_refused(bundle):
    bundle.process("sleep", "60")
    bundle.oci("create", "-b", str(bundle.path), "c1", check=True)
    again = bundle.oci("create", "-b", str(bundle.path), "c1")
    assert again.returncode == 82 and "exists already" in again.stderr
    reaped_pid = bundle.state()["pid"]
    bundle.oci("delete", "c1", check=True)    # a created container may be deleted
    reaped(reaped_pid)


def test_unknown_container_is_one_line(bundle):
    for args in (["state", "nope"], ["start", "nope"], ["kill", "nope"], ["delete", "nope"],
                 ["exec", "nope", "true"], ["ps", "nope"]):
        result = bundle.oci(*args)
        assert result.returncode == 30, args
        assert result.stderr.count("\n") == 1 and "nope does not exist" in result.stderr


def test_exec_runs_in_the_container_s_namespaces(bundle):
    with sleeping(bundle):
        result = bundle.oci("exec", "c1", "sh", "-c", "hostname; cat /proc/1/cmdline; exit 3")
        assert result.returncode == 3
        assert result.stdout.startswith("minict\nsleep")
        process = dict(bundle.config["process"], args=["sh", "-c", "echo $X:$(id -u):$HOME"],
                       env=["PATH=/bin", "X=from-file"], user={"uid": 1000, "gid": 1000})
        (bundle.path / "process.json").write_text(json.dumps(process))
        result = bundle.oci("exec", "--process", str(bundle.path / "process.json"), "c1")
        assert result.stdout == "from-file:1000:/home/student\n", result.stderr


def test_exec_detach_writes_the_pid_file(bundle, tmp_path):
    bundle.process("sleep", "60")
    bundle.oci("run", "-d", "-b", str(bundle.path), "c1", check=True)
    init = bundle.state()["pid"]
    bundle.oci("exec", "-d", "--pid-file", str(tmp_path / "exec.pid"), "c1", "sleep", "30",
               check=True)
    pid = int((tmp_path / "exec.pid").read_text())
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    bundle.oci("delete", "--force", "c1", check=True)
    # The exec'd process first: the kernel finishes the death of a PID
    # namespace's init only once every other process in it has been reaped.
    for each in (pid, init):
        reaped(each)


def test_list_shows_each_container(bundle):
    bundle.process("sleep", "60")
    bundle.oci("create", "-b", str(bundle.path), "one", check=True)
    rows = json.loads(bundle.oci("list", "--format", "json", check=True).stdout)
    assert [(r["id"], r["status"]) for r in rows] == [("one", "created")]
    assert bundle.oci("list", "-q", check=True).stdout == "one\n"
    pid = rows[0]["pid"]
    bundle.oci("delete", "one", check=True)
    reaped(pid)


@pytest.mark.parametrize("change, code, says", [
    ({"args": ["no-such-command"]}, 127, "not found"),
    ({"cwd": "/etc/passwd"}, 125, "passwd"),
    ({"user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": ["CAP_NOPE"]}}, 80, "CAP_NOPE"),
])
def test_a_failed_create_leaves_nothing(bundle, change, code, says):
    bundle.config["process"].update(change)
    before = set(os.listdir("/proc"))
    result = bundle.oci("create", "-b", str(bundle.path), "c1")
    assert result.returncode == code, result.stderr
    assert says in result.stderr and result.stderr.count("\n") == 1
    assert not (bundle.state_root / "c1").exists()
    # No process of ours stays: whatever appeared meanwhile is gone or not minict-oci's.
    for entry in set(os.listdir("/proc")) - before:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    assert b"minict-oci" not in f.read()
            except OSError:
                continue


def test_spec_writes_a_config_that_runs(bundle, tmp_path):
    target = tmp_path / "fresh"
    target.mkdir()
    made = bundle.oci("spec", "-b", str(target), check=True)
    assert made.stdout == ""
    config = json.loads((target / "config.json").read_text())
    assert config["process"]["args"] == ["sh"]
    again = bundle.oci("spec", "-b", str(target))
    assert again.returncode == 27 and "exists already" in again.stderr



def test_spec_rootless_is_the_command_s_flag_not_the_global_one(bundle, tmp_path):
    """The global --rootless (runc's, default "auto") and spec's own --rootless
    share a name: spec's wins, set or not (oci_cli.parse)."""
    for flags, user_namespace in (([], False), (["--rootless"], True)):
        target = tmp_path / f"spec{len(flags)}"
        target.mkdir()
        bundle.oci("--rootless", "true", "spec", *flags, "-b", str(target), check=True)
        namespaces = json.loads((target / "config.json").read_text())["linux"]["namespaces"]
        assert any(ns["type"] == "user" for ns in namespaces) == user_namespace


def test_usage_errors_are_one_line_naming_what_is_wrong(bundle):
    """Only the command that runs gets its parser (oci_cli.py): the help still
    lists every command, and each usage error is one line, exit 2."""
    listed = bundle.oci("--help", check=True).stdout
    for name in ("create", "start", "run", "state", "kill", "delete", "exec", "ps", "list",
                 "spec", "features", "pause", "resume", "update"):
        assert f"\n  {name} " in listed
    for argv, says in ((["bogus"], "invalid choice: 'bogus'"), (["create"], "required: ID"),
                       (["kill", "--every", "c1"], "unrecognized arguments: --every"),
                       ([], "required: COMMAND")):
        result = bundle.oci(*argv)
        assert result.returncode == 2 and says in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1

def test_systemd_cgroups_are_refused_in_one_line(bundle):
    for flags in (["--systemd-cgroup"], ["--cgroup-manager", "systemd"]):
        result = bundle.oci(*flags, "state", "c1")
        assert result.returncode == 81 and "systemd" in result.stderr
        assert result.stderr.count("\n") == 1


def test_errors_go_to_the_log_in_json(bundle, tmp_path):
    """conmon and containerd's shim read a failed runtime's last error from --log."""
    log = tmp_path / "log.json"
    bundle.config["process"]["apparmorProfile"] = "docker-default"
    result = bundle.oci("--log", str(log), "--log-format", "json", "create", "-b",
                        str(bundle.path), "c1")
    assert result.returncode == 81
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "process.apparmorProfile" in entry["msg"]
    assert not (bundle.state_root / "c1").exists()


def test_preserve_fds_passes_extra_fds(bundle, tmp_path):
    """--preserve-fds N: fds 3..3+N-1 reach the command (socket activation)."""
    extra = tmp_path / "extra"
    extra.write_text("through fd 3\n")
    bundle.process("sh", "-c", "cat <&3")
    bundle.write()
    # The caller's fd 3 is the file (a shell opens it there, as systemd would
    # hand a socket over).
    result = subprocess.run(["sh", "-c", f'exec 3<"{extra}"; exec "$@"', "sh", MINICT_OCI,
                             "--root", str(bundle.state_root), "run", "--preserve-fds", "1",
                             "-b", str(bundle.path), "c1"], capture_output=True, text=True,
                            timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "through fd 3\n"


def test_features_and_version(bundle):
    features = json.loads(bundle.oci("features", check=True).stdout)
    assert features["ociVersionMax"].startswith("1.") and "poststop" in features["hooks"]
    version = bundle.oci("--version", check=True).stdout
    assert version.startswith("minict-oci version") and "spec: 1.0" in version


def test_a_pid_file_that_cannot_be_written_is_one_line_and_leaves_nothing(bundle, tmp_path):
    result = bundle.oci("create", "-b", str(bundle.path), "--pid-file",
                        str(tmp_path / "no-such-dir" / "pid"), "c1")
    assert result.returncode == 27, result.stderr
    assert result.stderr.count("\n") == 1 and "--pid-file" in result.stderr
    assert not (bundle.state_root / "c1").exists()


@pytest.mark.parametrize("container_id", ["é", "a/b", ".."])
def test_an_id_runc_would_refuse_is_refused(bundle, container_id):
    """runc's rule: ASCII letters, digits and _ + - . only."""
    result = bundle.oci("create", "-b", str(bundle.path), container_id)
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result
    assert not bundle.state_root.exists() or os.listdir(bundle.state_root) == []


def test_kill_ends_a_created_container(bundle):
    """Waiting for start, init is PID 1 of its namespace, which the kernel
    spares every signal it has no handler for: TERM (kill's default) still
    ends it, as it ends runc's (podman stop of a container never started)."""
    bundle.process("sleep", "60")
    bundle.oci("create", "-b", str(bundle.path), "c1", check=True)
    pid = bundle.state()["pid"]
    bundle.oci("kill", "c1", check=True)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + 15
    assert bundle.state()["status"] == "stopped"


@pytest.mark.parametrize("number, accepted", [("0", True), ("99", False)])
def test_a_signal_number_is_checked(bundle, number, accepted):
    """0 asks only whether the container is there (as runc takes it)."""
    with sleeping(bundle):
        result = bundle.oci("kill", "c1", number)
        assert (result.returncode == 0) == accepted, result.stderr
        assert result.stderr.count("\n") == (0 if accepted else 1), result.stderr
        assert bundle.state()["status"] == "running"


def test_exec_passes_preserved_fds_and_keeps_no_process_it_cannot_report(bundle, tmp_path):
    with sleeping(bundle):
        extra = tmp_path / "extra"
        extra.write_text("through fd 3\n")
        through = subprocess.run(["sh", "-c", f'exec 3<"{extra}"; exec "$@"', "sh", MINICT_OCI,
                                  "--root", str(bundle.state_root), "exec", "--preserve-fds", "1",
                                  "c1", "sh", "-c", "cat <&3"], capture_output=True, text=True,
                                 timeout=30, stdin=subprocess.DEVNULL)
        assert through.stdout == "through fd 3\n", through.stderr
        # a pid file that cannot be written: the engine would never know of the
        # process, so none is left running
        failed = bundle.oci("exec", "-d", "--pid-file", str(tmp_path / "missing" / "pid"), "c1",
                            "sleep", "55")
        assert failed.returncode == 27 and failed.stderr.count("\n") == 1, failed.stderr
        ps = bundle.oci("exec", "c1", "ps", "-o", "args", check=True).stdout
        assert "sleep 55" not in ps, ps


@pytest.mark.parametrize("flags, terminal", [(["-t"], True), (["--console-socket", "/x"], False)])
def test_a_terminal_and_a_console_socket_come_together(bundle, flags, terminal):
    """As runc: the pty goes to the caller through --console-socket."""
    with sleeping(bundle):
        result = bundle.oci("exec", *flags, "c1", "true")
        assert result.returncode == 27 and result.stderr.count("\n") == 1, result.stderr
        assert "console-socket" in result.stderr
    # create the same: process.terminal without a socket, or a socket without it
    bundle.config["process"]["terminal"] = terminal
    refused = bundle.oci("create", "-b", str(bundle.path), *([] if terminal else flags), "c2")
    assert refused.returncode == 27 and not (bundle.state_root / "c2").exists(), refused


def test_the_debug_narration_follows_the_log_format(bundle, tmp_path):
    """conmon and containerd's shim parse a --log-format json log line by line."""
    log = tmp_path / "log.json"
    bundle.oci("--debug", "--log", str(log), "--log-format", "json", "run", "-b",
               str(bundle.path), "c1", check=True)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert entries and all(set(e) == {"level", "msg", "time"} for e in entries)
    assert any("pivot_root" in e["msg"] for e in entries)


def test_a_missing_command_is_said_in_runc_s_words(bundle):
    """podman picks exit codes 127 and 126 from these words in the runtime's error."""
    bundle.process("no-such-command")
    missing = bundle.oci("run", "-b", str(bundle.path), "c1")
    assert missing.returncode == 127 and "executable file not found in $PATH" in missing.stderr
    bundle.process("/etc/passwd")
    denied = bundle.oci("run", "-b", str(bundle.path), "c2")
    assert denied.returncode == 126 and "permission denied" in denied.stderr


def test_exec_takes_runc_s_process_flags(bundle):
    with sleeping(bundle):
        out = bundle.oci("exec", "-u", "1000:1000", "-g", "100", "--no-new-privs", "c1", "sh", "-c",
                         "id -u; id -G; grep NoNewPrivs /proc/self/status",
                         check=True).stdout.split("\n")
        assert out[:3] == ["1000", "1000 100", "NoNewPrivs:\t1"], out
        effective = bundle.oci("exec", "--cap", "NET_ADMIN", "c1", "grep", "CapEff",
                               "/proc/self/status", check=True).stdout.split()[1]
        assert int(effective, 16) & (1 << 12)                  # CAP_NET_ADMIN (root keeps it)
        for refused in (["--apparmor", "x"], ["--process-label", "x"], ["--cgroup", "x"]):
            result = bundle.oci("exec", *refused, "c1", "true")
            assert result.returncode == 81 and result.stderr.count("\n") == 1, result
        bad_user = bundle.oci("exec", "-u", "student", "c1", "true")
        assert bad_user.returncode == 27 and "UID[:GID]" in bad_user.stderr


def test_ps_prints_the_host_s_ps_lines_of_the_container(bundle):
    """As runc's ps: `ps -ef` (or the options given) filtered by pid."""
    with sleeping(bundle) as init:
        table = bundle.oci("ps", "c1", check=True).stdout.splitlines()
        assert table[0].split()[:3] == ["UID", "PID", "PPID"] and len(table) == 2, table
        assert table[1].split()[1] == str(init) and table[1].endswith("sleep 60")
        own = bundle.oci("ps", "c1", "-o", "pid,args", check=True).stdout.splitlines()
        assert [line.split() for line in own] == [["PID", "COMMAND"], [str(init), "sleep", "60"]]
        assert bundle.oci("ps", "--format", "json", "c1", check=True).stdout.strip() == f"[{init}]"
