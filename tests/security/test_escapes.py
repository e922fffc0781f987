"""Escape attempts from inside a default container, each of which must fail
and leave the host as it was; and the same attempt with --privileged,
which should succeed (as far as root on this host can), so that each test
could fail: a probe that can never succeed proves nothing.

Every test starts a real container from the escape image (busybox plus
escape-probe, see conftest.py). The VM tier runs them too (vmtier), where
no outer sandbox restricts what root may do and every container has a
cgroup v2 cgroup with its device program.
"""

import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

from tests.runtime.conftest import mount_table
from tests.security.conftest import (assert_dev_and_shm_fill_up_to_their_size,
                                     assert_no_descriptor_leads_out,
                                     assert_sysrq_and_sys_read_only, mount_options)

pytestmark = [pytest.mark.root, pytest.mark.vmtier]

PROBE = "/usr/local/bin/escape-probe"
REFUSED = {"EPERM", "EACCES", "EROFS"}


def sh(box, script: str, *flags) -> list[str]:
    """Run `script` in a container; its output lines, error messages
    included (all on stdout, in order)."""
    return box.out("run", "--rm", *flags, "escape", "sh", "-c",
                   f"exec 2>&1; {script}; true").splitlines()


def probe_answer(box, *args, flags=()) -> str:
    result = box("run", "--rm", *flags, "escape", PROBE, *args)
    assert result.returncode in (0, 1), result.stderr     # 1: the attempt failed, as printed
    return result.stdout.strip()


# ---- kernel knobs: /proc/sys, sysrq, /sys ---------------------------------------------------------

def test_kernel_sysctls_are_read_only(box):
    with open("/proc/sys/kernel/domainname") as f:
        host = f.read()
    out = sh(box, "echo escaped > /proc/sys/kernel/domainname 2>&1; cat /proc/sys/kernel/domainname")
    assert "Read-only file system" in out[0] and out[1] == host.strip()
    # --privileged may: the name belongs to the container's own UTS namespace
    assert sh(box, "echo escaped > /proc/sys/kernel/domainname && cat /proc/sys/kernel/domainname",
              "--privileged") == ["escaped"]
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read() == host


def test_sysrq_trigger_and_sys_are_read_only(box):
    assert_sysrq_and_sys_read_only(lambda script: sh(box, script))
    # --privileged: neither is read-only (not written to: sysrq would act on the host)
    out = sh(box, "cat /proc/self/mountinfo", "--privileged")
    assert mount_options(out, "/proc/sysrq-trigger") is None and "rw" in mount_options(out, "/sys")


def test_masked_and_read_only_paths_cannot_be_uncovered(box):
    out = sh(box, "umount /proc/keys; umount /proc/sys; mount -o remount,rw /proc/sys; "
                  "wc -c < /proc/keys")
    assert all("not permitted" in line or "permission denied" in line for line in out[:3]), out
    assert out[3] == "0"                                # /proc/keys (the kernel keyrings) reads empty
    assert int(sh(box, "wc -c < /proc/keys", "--privileged")[0]) > 0     # the probe could tell
    # --privileged masks nothing, and may make and drop mounts of its own
    out = sh(box, "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && "
                  "umount /proc/sys && echo done", "--privileged")
    assert out == ["done"]


def test_proc_cannot_be_mounted_again(box):
    before = mount_table()
    out = sh(box, "mkdir -p /mnt/p && mount -t proc proc /mnt/p; ls /mnt/p | grep -c .")
    assert "permission denied" in out[0] and out[1] == "0"
    assert sh(box, "mkdir -p /mnt/p && mount -t proc proc /mnt/p && ls /mnt/p/1/status",
              "--privileged") == ["/mnt/p/1/status"]
    assert mount_table() == before


# ---- devices ---------------------------------------------------------------------------------------

def host_disk() -> str:
    """The block device holding this host's root filesystem (or any block device)."""
    device = os.stat("/").st_dev
    for entry in sorted(Path("/dev").iterdir()):
        try:
            st = entry.lstat()
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode) and st.st_rdev == device:
            return str(entry)
    for entry in sorted(Path("/dev").iterdir()):
        if stat.S_ISBLK(entry.lstat().st_mode):
            return str(entry)
    pytest.skip("no block device node on this host")


def test_a_node_for_the_hosts_disk_cannot_be_read(box):
    disk = host_disk()
    rdev = os.stat(disk).st_rdev
    major, minor = os.major(rdev), os.minor(rdev)
    script = f"mknod /tmp/disk b {major} {minor} && echo made; head -c 512 /tmp/disk | wc -c"
    out = sh(box, script)
    assert out[-1] == "0"                                  # not one byte of the host's disk
    privileged = sh(box, script, "--privileged")
    assert "made" in privileged
    try:
        with open(disk, "rb") as f:
            host_reads = len(f.read(512)) == 512
    except OSError:
        host_reads = False                                 # this host's own sandbox refuses root
    assert privileged[-1] == ("512" if host_reads else "0")


# ---- reaching the host's filesystem through /proc and file descriptors ---------------------------------

def test_proc_root_links_lead_to_the_container_not_the_host(box, tmp_path):
    marker = tmp_path / "host-marker"
    marker.write_text("on the host\n")
    script = (f"cat /proc/1/root{marker}; cat /proc/self/root/../../..{marker}; "
              f"readlink /proc/1/root; ls /proc/1/cwd/ | grep -c busybox")
    for flags in ((), ("--privileged",)):
        out = sh(box, script, *flags)
        assert "No such file" in out[0] and "No such file" in out[1]
        assert out[2] == "/" and out[3] == "0"
    # the probe can see it when the host offers it: through a volume
    assert sh(box, f"cat /vol/{marker.name}", "-v", f"{tmp_path}:/vol") == ["on the host"]


def test_no_inherited_descriptor_leads_out(box, tmp_path):
    """CVE-2024-21626: an fd of the runtime's inherited by the container, or
    a working directory given as /proc/self/fd/N, led into the host."""
    out = sh(box, "ls /proc/1/fd; readlink /proc/1/cwd")
    assert out == ["0", "1", "2", "/"]
    assert_no_descriptor_leads_out(box)


def test_the_reaper_binary_cannot_be_opened_from_inside(box):
    """CVE-2019-5736: with --init, PID 1 is minict's own Python, the host's
    binary. It is non-dumpable, so /proc/1/exe cannot be opened from inside."""
    binary = Path(os.path.realpath(sys.executable))
    before = hashlib.sha256(binary.read_bytes()).hexdigest()
    out = sh(box, f"{PROBE} open-write /proc/1/exe; head -c 4 /proc/1/exe", "--init")
    assert out[0] == "EACCES" and "Permission denied" in out[1]
    out = sh(box, f"{PROBE} open-write /proc/1/exe; head -c 4 /proc/1/exe | od -c | head -1",
             "--init", "--privileged")
    assert out[0] == "ETXTBSY"                  # privileged may reach it; still never write it
    assert "E   L   F" in out[1]
    assert hashlib.sha256(binary.read_bytes()).hexdigest() == before


# ---- privileged system calls -----------------------------------------------------------------------------

def test_no_new_user_or_mount_namespace(box):
    out = sh(box, "unshare -U true && echo user; unshare -m true && echo mount")
    assert "user" not in out and "mount" not in out
    assert all("Operation not permitted" in line for line in out)
    assert sh(box, "unshare -U true && echo user; unshare -m true && echo mount",
              "--privileged") == ["user", "mount"]


@pytest.mark.parametrize("args", [("keyring",), ("module",), ("timezone",), ("rlimit",)],
                         ids=["keyctl", "kernel-module", "clock", "rlimit-above-hard"])
def test_privileged_calls_are_refused(box, host_answer, args):
    assert probe_answer(box, *args) in REFUSED
    assert probe_answer(box, *args, flags=("--privileged",)) == host_answer(*args)


def test_ptrace_reaches_no_host_process(box):
    out = sh(box, f"{PROBE} ptrace {os.getpid()}")     # this test's own pid, on the host
    assert out == ["ESRCH"]                             # not even visible from inside
    assert sh(box, f"sleep 5 & {PROBE} ptrace $!", "--privileged") == ["ok"]


# ---- filling what the container can fill -----------------------------------------------------------------

def test_filling_dev_and_dev_shm_stops_at_their_size(box):
    assert_dev_and_shm_fill_up_to_their_size(lambda script: sh(box, script))
