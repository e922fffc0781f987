"""The capabilities-and-seccomp lesson runs as written, its checks pass, and it
leaves nothing: no container, no mount, no temp files (its setuid program and
the keyctl one lived in its temp dir), and the clock as it was."""

import re
import shutil
import time

import pytest

from tests.helpers.lessons import readme_and_script, run_walkthrough

pytestmark = [pytest.mark.root, pytest.mark.slow]

LESSON = "capabilities-and-seccomp"
GCC = shutil.which("gcc")


def test_walkthrough_runs_and_its_checks_pass(tmp_path):
    before = time.time()
    out = run_walkthrough(LESSON, tmp_path, min_checks=29 if GCC else 25)
    # step 1-2: the bounding set, decoded, and the narration of its drops
    assert "its bounding set, decoded: CHOWN DAC_OVERRIDE" in out
    assert "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)" in out
    assert '"bounding":["CAP_CHOWN"' in out
    # step 3: which layer refused, from the tools' own messages
    assert "ping: permission denied (are you root?)" in out
    assert "adjtimex: (null): Operation not permitted" in out
    assert "adjtimex: (null): Invalid argument" in out
    # steps 3-4: the filter's narration, with and without CAP_SYS_TIME
    counts = [int(n) for n in re.findall(r"SECCOMP_SET_MODE_FILTER, 0, \{EPERM for (\d+) calls: "
                                         r"add_key, keyctl", out)]
    # step 3 (--cap-add SYS_TIME) then step 4 (default): 3 clock calls fewer
    assert len(counts) == 2 and counts[1] - counts[0] == 3, counts
    assert "No linux.seccomp in the config: no system call filter" in out
    assert "engine: No linux.seccomp written into config.json: --security-opt seccomp=unconfined" in out
    assert "engine: No linux.seccomp written into config.json: --privileged" in out
    assert "unshare(0x10000000): Operation not permitted" in out
    # step 5: no_new_privs narrated, and what it did to a setuid program
    assert "prctl(PR_SET_NO_NEW_PRIVS, 1)" in out
    if GCC:
        assert "keyctl: Operation not permitted" in out
        assert "uid=1000 euid=1000" in out and "uid=1000 euid=0" in out
    else:
        assert "gcc is not installed" in out
    assert list((tmp_path / "tmp").iterdir()) == []
    # the clock was never set (date -s 2001 was refused; adjtimex changed nothing)
    assert abs(time.time() - before) < 600


def test_readme_names_only_commands_the_walkthrough_runs():
    readme, script = readme_and_script(LESSON)
    for text in ("grep -E '^Cap", "--user 1000", "inspect --bundle lesson-caps", "ping_group_range",
                 "ping -c 1 -W 1 127.0.0.1", "--cap-drop NET_RAW", 'date -s "2001-01-01 00:00"',
                 "--security-opt seccomp=unconfined", "adjtimex -t 1", "--cap-add SYS_TIME",
                 "unshare -U true", "unshare -Ur id -u", "unshare -m true", "--cap-add SYS_ADMIN",
                 "keyring-id", "gcc -static -O2", "grep NoNewPrivs /proc/self/status",
                 "chmod 4755", "--privileged", "/lesson/euid"):
        assert text in readme and text in script, text
