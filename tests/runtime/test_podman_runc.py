"""podman drives an OCI runtime through its runc-compatible command line
(create/start/state/kill/delete/exec, through conmon): what podman users do,
against a store of the test's own (tests/helpers/podman.py).

Parametrized over `oci_runtime`: runc for now; a runc-compatible runtime
(minict-oci) joins by adding a param to RUNTIMES. Every container runs with
--cgroups=disabled and --network=none, in a mount namespace whose cgroup
filesystems are read-only: nothing is written to /sys/fs/cgroup or the
host's network.
"""

import re
import shlex
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.podman import PODMAN, RUNC, PrivatePodman

pytestmark = [pytest.mark.root, pytest.mark.timeout(120),
              pytest.mark.skipif(PODMAN is None, reason="podman not installed")]

# id -> PrivatePodman's keyword arguments for that runtime.
RUNTIMES = {
    "runc": {"runtime": "/usr/sbin/runc", **RUNC},
    # podman names no --root for a runtime it runs as root: the wrapper adds
    # one in the test's directory; --log-format=json is asked for by name.
    "minict-oci": {"runtime": str(Path(sys.executable).parent / "minict-oci"),
                   "json_errors": True},
}

SAFE = ["--cgroups=disabled", "--network=none"]


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def oci_runtime(request) -> dict:
    return RUNTIMES[request.param]


@pytest.fixture(scope="module")
def private_podman(oci_runtime, tmp_path_factory, busybox_rootfs):
    """One store per runtime for the module, with busybox imported; at the
    end nothing of it is left (containers, processes, mounts)."""
    pm = PrivatePodman(tmp_path_factory.mktemp("podman"), **oci_runtime)
    with pm:
        pm.image = pm.import_busybox(busybox_rootfs)
        yield pm
    assert pm.leftovers() == {}


@pytest.fixture
def pm(private_podman):
    """The module's podman; every container this test made is removed after it."""
    yield private_podman
    private_podman.remove_containers()
    left = private_podman.leftovers()
    assert not left.get("containers") and not left.get("processes"), left


def run_detached(pm, name, *command) -> str:
    return pm.out("run", "-d", *SAFE, "--name", name, pm.image, *command).strip()


def status(pm, name) -> str:
    """What `podman ps -a` says of the container `name` ("" if not listed)."""
    return pm.out("ps", "-a", "--filter", f"name=^{name}$", "--format", "{{.Status}}").strip()


def wait_for_log(pm, name, text, timeout=10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        logs = pm.out("logs", name)
        if text in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.1)


def test_namespace_keeps_cgroups_read_only(pm):
    with open(f"/proc/{pm.holder.pid}/mountinfo") as f:
        cgroups = [line.split() for line in f if " - cgroup" in line
                   or line.split()[4] == "/sys/fs/cgroup"]
    assert cgroups
    assert all("ro" in fields[5].split(",") for fields in cgroups), cgroups


def test_run_rm_prints_and_leaves_no_container(pm):
    result = pm.podman("run", "--rm", *SAFE, pm.image, "echo", "hi")
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr
    assert pm.out("ps", "-aq") == ""


def test_run_exit_code_is_the_container_s(pm):
    assert pm.podman("run", "--rm", *SAFE, pm.image, "sh", "-c", "exit 5").returncode == 5


def test_run_detached_then_logs(pm):
    run_detached(pm, "logs-test", "sh", "-c", "echo hello-from-log; sleep 100")
    assert "hello-from-log" in wait_for_log(pm, "logs-test", "hello-from-log")
    assert status(pm, "logs-test").startswith("Up")


def test_exec_runs_inside_the_container(pm):
    cid = run_detached(pm, "exec-test", "sleep", "100")
    assert pm.out("exec", "exec-test", "hostname").strip() == cid[:12]
    assert pm.out("exec", "exec-test", "cat", "/proc/1/cmdline") == "sleep\0" + "100\0"
    assert pm.podman("exec", "exec-test", "sh", "-c", "exit 4").returncode == 4


def test_stop_sends_sigterm_then_ps_shows_exited(pm):
    run_detached(pm, "stop-test", "sh", "-c",
                 "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done")
    assert "ready" in wait_for_log(pm, "stop-test", "ready")
    assert pm.out("stop", "-t", "1", "stop-test").strip() == "stop-test"
    assert status(pm, "stop-test").startswith("Exited (7)")   # the trap ran: SIGTERM arrived


def test_kill_then_ps_shows_exited(pm):
    run_detached(pm, "kill-test", "sleep", "100")
    pm.out("kill", "kill-test")
    assert pm.out("wait", "kill-test").strip() == "137"
    assert status(pm, "kill-test").startswith("Exited (137)")


def test_rm_removes_the_container(pm):
    run_detached(pm, "rm-test", "sleep", "100")
    pm.out("stop", "-t", "0", "rm-test")
    pm.out("rm", "rm-test")
    assert pm.podman("container", "exists", "rm-test").returncode == 1
    assert status(pm, "rm-test") == ""


def test_run_it_gets_a_terminal_and_the_exit_code(pm):
    code, output = pm.run_in_pty("run", "--rm", "-it", *SAFE, pm.image, "sh", "-c", "tty; exit 3")
    assert code == 3, output
    assert re.search(r"/dev/pts/\d+", output), output


def test_runtime_gets_the_runc_command_line(pm):
    """What a runc-compatible runtime must accept from podman and conmon."""
    start = len(pm.runtime_argv())
    cid = run_detached(pm, "argv-test", "sleep", "100")
    pm.out("exec", "argv-test", "true")
    pm.out("kill", "argv-test")
    pm.out("wait", "argv-test")
    pm.out("rm", "argv-test")
    pm.run_in_pty("run", "--rm", "-it", *SAFE, pm.image, "true")
    calls = [shlex.split(line)[1:] for line in pm.runtime_argv()[start:]]

    def subcommand(argv):
        return next(a for a in argv if not a.startswith("-") and a not in argv_values(argv))

    by = {}
    for argv in calls:
        by.setdefault(subcommand(argv), []).append(argv)
    create = by["create"][0]
    assert create[create.index("--bundle") + 1].endswith(f"/{cid}/userdata")
    assert "--pid-file" in create and create[-1] == cid
    assert any("--console-socket" in argv for argv in by["create"][1:])   # the -it run
    assert ["start", cid] in [argv[-2:] for argv in by["start"]]
    exec_ = by["exec"][0]
    assert {"--process", "--detach", "--pid-file"} <= set(exec_) and exec_[-1] == cid
    assert [cid, "9"] in [argv[-2:] for argv in by["kill"]]
    assert ["--force", cid] in [argv[-2:] for argv in by["delete"]]


def argv_values(argv) -> set[str]:
    """The values of runtime global flags given as `--flag VALUE`."""
    return {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--log", "--root", "--log-format",
                                                                   "--cgroup-manager", "--criu")}
