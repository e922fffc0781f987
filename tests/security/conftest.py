"""The escape image: busybox plus escape-probe (probe.c), a static program
that makes one system call per attempt and prints "ok" or the errno name.

Attempts are judged against root on the host itself (`host_answer`):
`--privileged` should do what host root can, a default container must be
refused. Where the host's own sandbox refuses root too, the privileged run
shows that and the default one is still checked to be refused.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.runtime.conftest import Minict, make_env, minict_cmd

PROBE_SOURCE = Path(__file__).with_name("probe.c")
PROBE_IN_IMAGE = "/usr/local/bin/escape-probe"


@pytest.fixture(scope="session")
def probe_binary(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe") / "escape-probe"
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(PROBE_SOURCE)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="session")
def escape_root(tmp_path_factory, busybox_rootfs, probe_binary) -> Path:
    """A store root holding escape:latest (busybox + escape-probe)."""
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = tmp_path_factory.mktemp("escape")
    rootfs = base / "rootfs"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    (rootfs / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(probe_binary, rootfs / PROBE_IN_IMAGE.lstrip("/"))
    root = base / "root"
    minict_cmd(make_env(root, base / "import-state"), "import", "-c", 'CMD ["sh"]', rootfs,
               "escape:latest", check=True)
    return root


@pytest.fixture
def box(escape_root, tmp_path) -> Minict:
    """minict with the escape image and a state dir of this test's own."""
    return Minict(escape_root, tmp_path / "state")


@pytest.fixture
def host_answer(probe_binary):
    """What root on this host gets for the same attempt."""
    def answer(*args) -> str:
        return subprocess.run([str(probe_binary), *args], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    return answer


def assert_no_descriptor_leads_out(run) -> None:
    """CVE-2024-21626: a working directory given as /proc/self/fd/N, N one
    of the fds minict holds while it starts a container, must not lead
    into the host. `run(*args)`: `minict ARGS...` as the test runs it (as
    root, or as nobody)."""
    for fd in range(3, 7):
        result = run("run", "--rm", "-w", f"/proc/self/fd/{fd}", "escape", "sh", "-c",
                     "pwd; ls / | grep -c '^bin$'")
        if result.returncode == 0:                         # a real directory inside the container
            assert result.stdout.splitlines()[1] == "1"
        else:
            assert result.returncode in (125, 126, 127), result.stderr
            assert result.stderr.startswith("minict: ") and len(result.stderr.splitlines()) == 1


def mount_options(mountinfo_lines: list[str], point: str) -> set[str] | None:
    """The options of the mount at `point` in /proc/self/mountinfo lines."""
    for line in mountinfo_lines:
        fields = line.split()
        if len(fields) > 5 and fields[4] == point:
            return set(fields[5].split(","))
    return None


def assert_sysrq_and_sys_read_only(sh) -> list[str]:
    """/sys and /proc/sysrq-trigger (where the host has one) refuse writes
    from a default container. `sh(script)`: the script's output lines in
    one (as root, or as nobody). Returns the container's mountinfo lines."""
    targets = ["/sys/kernel/profiling"] + (["/proc/sysrq-trigger"]
                                           if os.path.exists("/proc/sysrq-trigger") else [])
    out = sh("; ".join(f"echo h > {t}" for t in targets) + "; cat /proc/self/mountinfo")
    assert all("Read-only file system" in line for line in out[:len(targets)]), out
    assert "ro" in mount_options(out, "/sys")
    if len(targets) == 2:
        assert "ro" in mount_options(out, "/proc/sysrq-trigger")
    return out


def assert_dev_and_shm_fill_up_to_their_size(sh) -> None:
    """/dev and /dev/shm are tmpfs of 64 MiB each: filling them stops there,
    and the host's disk does not fill up instead. `sh(script)` as above."""
    free = os.statvfs("/").f_bavail
    out = sh("dd if=/dev/zero of=/dev/shm/fill bs=1M 2>&1 | grep -c 'No space left'; "
             "du -m /dev/shm/fill | cut -f1; "
             "dd if=/dev/zero of=/dev/fill bs=1M 2>&1 | grep -c 'No space left'; "
             "du -m /dev/fill | cut -f1")
    assert out[0] == "1" and int(out[1]) <= 64 and out[2] == "1" and int(out[3]) <= 64
    assert abs(os.statvfs("/").f_bavail - free) * os.statvfs("/").f_frsize < 32 << 20
