"""The escape attempts of test_escapes.py that make sense without root, made
from a container that `nobody` started (rootless minict, runtime/rootless.py).

Without root the container is root only in a user namespace of its own,
which maps it to nobody outside. The user namespace alone would still let
that root do much to what the container owns: set its domain name, mount
a fresh proc, make more namespaces, read masked files. So what root mode
does for security must hold in there too (capability bounding set,
no_new_privs, seccomp, masked and read-only paths, pivot_root), and each
test below checks an attempt the user namespace by itself would allow, or
checks the attempt against what the host shows, so that it could fail.

--privileged is refused without root, so unlike test_escapes.py the
counter-proof of each test is what the host (or a volume) shows instead.
"""

import os
import subprocess
from pathlib import Path

import pytest

from minicontainer.runtime.capabilities import DOCKER_DEFAULT, NUMBERS
from minicontainer.runtime.mounts import MASKED_PATHS
from tests.helpers.images import Entry, busybox_image, tar_of
from tests.helpers.rootless import (
    NOBODY,
    as_nobody,
    nobody_argv,
    nobody_dir,
    nobody_store,
)
from tests.runtime.conftest import mount_table
from tests.security.conftest import (PROBE_IN_IMAGE, assert_dev_and_shm_fill_up_to_their_size,
                                     assert_no_descriptor_leads_out,
                                     assert_sysrq_and_sys_read_only, mount_options)

pytestmark = pytest.mark.root

REFUSED = {"EPERM", "EACCES", "EROFS"}
PROBE = PROBE_IN_IMAGE
ROOTLESS_PROBE = "/usr/local/bin/rootless-probe"

# Two attempts escape-probe (probe.c) does not make, in the same style:
# each prints "ok" or the errno's name.
ROOTLESS_PROBE_SOURCE = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

static int report(long result) {
    printf("%s\n", result < 0 ? strerrorname_np(errno) : "ok");
    return result < 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "setuid"))        /* become another user */
        return report(setresuid(atoi(argv[2]), atoi(argv[2]), atoi(argv[2])));
    if (argc == 3 && !strcmp(argv[1], "chroot-escape")) {
        /* The classic way out of a chroot: chroot into a subdirectory while
           the working directory stays above it, climb "..", chroot there.
           It reaches the top of the mount namespace: after pivot_root, the
           container's own root. Prints whether that has /bin/busybox (the
           container's root) and whether argv[2] (a host path) is there. */
        mkdir("/jail", 0755);
        if (chroot("/jail") < 0)
            return report(-1);
        for (int i = 0; i < 64; i++)
            chdir("..");
        chroot(".");
        report(access("/bin/busybox", F_OK));
        return report(access(argv[2], F_OK));
    }
    fprintf(stderr, "usage: rootless-probe setuid UID | chroot-escape HOST_PATH\n");
    return 2;
}
"""


@pytest.fixture(scope="module")
def rootless_probe(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("rootless-probe") / "rootless-probe.c"
    source.write_text(ROOTLESS_PROBE_SOURCE)
    binary = source.with_suffix("")
    subprocess.run(["gcc", "-static", "-O2", "-o", str(binary), str(source)], check=True,
                   capture_output=True)
    return binary


@pytest.fixture(scope="module")
def userland(busybox_rootfs, probe_binary, rootless_probe):
    """nobody's store with escape:latest: busybox plus both probes."""
    image = busybox_image(busybox_rootfs).add_layer(tar_of([
        Entry.dir("usr/local/bin"),
        Entry.file(PROBE.lstrip("/"), probe_binary.read_bytes(), mode=0o755),
        Entry.file(ROOTLESS_PROBE.lstrip("/"), rootless_probe.read_bytes(), mode=0o755)]))
    with nobody_store({"escape:latest": image}) as (base, env):
        yield base, env


def sh(userland, script: str, *flags) -> list[str]:
    """Run `script` as nobody in a container; its output lines, error
    messages included (all on stdout, in order)."""
    _, env = userland
    result = as_nobody(env, "run", "--rm", *flags, "escape", "sh", "-c",
                       f"exec 2>&1; {script}; true")
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


@pytest.fixture
def host_sleeper():
    """A process of nobody's on the host, outside any container: `sleep 60`."""
    sleeper = subprocess.Popen(nobody_argv({}, "sleep", "60"))
    yield sleeper.pid
    sleeper.kill()
    sleeper.wait()


# ---- kernel knobs: /proc/sys, sysrq, /sys ---------------------------------------------------

def test_kernel_sysctls_are_read_only(userland):
    """The domain name belongs to the container's UTS namespace, which its
    user namespace owns. The write must be refused by the read-only mount
    of /proc/sys (EROFS), not merely by the file's owner (EACCES)."""
    host = Path("/proc/sys/kernel/domainname").read_text().strip()
    out = sh(userland, "echo escaped > /proc/sys/kernel/domainname; "
                       "cat /proc/sys/kernel/domainname")
    assert "Read-only file system" in out[0] and out[1] == host
    assert Path("/proc/sys/kernel/domainname").read_text().strip() == host


def test_sysrq_trigger_and_sys_are_read_only(userland):
    assert_sysrq_and_sys_read_only(lambda script: sh(userland, script))


def test_masked_paths_are_covered_and_stay_covered(userland):
    present = [path for path in MASKED_PATHS if os.path.lexists(path)]
    if not present:
        pytest.skip("this kernel has none of the masked paths")
    out = sh(userland, "cat /proc/self/mountinfo; "
                       + "; ".join(f"echo {p}=$(ls -A {p} | wc -l),$(cat {p} | wc -c)"
                                   for p in present)
                       + "; umount /proc/keys; umount /sys/firmware; umount /proc/sys; "
                         "mount -o remount,rw /proc/sys")
    for path in present:
        assert mount_options(out, path) is not None, f"{path} is not covered"
        listed, size = next(line for line in out if line.startswith(f"{path}="))[len(path) + 1:] \
            .split(",")
        # an empty directory (tmpfs), or an empty file (/dev/null)
        assert (listed, size) in (("0", "0"), ("1", "0")), (path, listed, size)
    refusals = [line for line in out if line.startswith(("umount:", "mount:"))]
    assert len(refusals) == 4 and all("not permitted" in line or "permission denied" in line
                                      for line in refusals), refusals


def test_proc_and_sysfs_cannot_be_mounted_again(userland):
    """A user namespace that owns the PID namespace may mount a fresh proc
    (which no mask covers): only the capabilities and seccomp stop it."""
    before = mount_table()
    out = sh(userland, "mkdir -p /mnt/p /mnt/s; mount -t proc proc /mnt/p; ls /mnt/p | grep -c .; "
                       "mount -t sysfs sysfs /mnt/s; ls /mnt/s | grep -c .")
    assert "permission denied" in out[0] and out[1] == "0"
    assert "permission denied" in out[2] and out[3] == "0"
    assert mount_table() == before


# ---- devices ---------------------------------------------------------------------------------

SAFE_NODES = {"/dev/full", "/dev/null", "/dev/random", "/dev/tty", "/dev/urandom", "/dev/zero",
              "/dev/pts/ptmx"}


def test_dev_has_only_the_safe_nodes(userland):
    out = sh(userland, "find /dev -type c; echo block; find /dev -type b; mknod /tmp/n c 1 3")
    split = out.index("block")
    assert set(out[:split]) == SAFE_NODES
    assert out[split + 1:] == ["mknod: /tmp/n: Operation not permitted"]    # no block device


def test_filling_dev_and_dev_shm_stops_at_their_size(userland):
    assert_dev_and_shm_fill_up_to_their_size(lambda script: sh(userland, script))


# ---- reaching the host's filesystem through /proc, descriptors, chroot -------------------------

def test_proc_root_links_lead_to_the_container_not_the_host(userland):
    base, _ = userland
    shared = nobody_dir(base / "shared")
    marker = shared / "host-marker"
    marker.write_text("on the host\n")
    os.chown(marker, NOBODY, NOBODY)
    out = sh(userland, f"cat /proc/1/root{marker}; cat /proc/self/root/../../..{marker}; "
                       f"readlink /proc/1/root; ls /proc/1/cwd/ | grep -c minict-rootless")
    assert "No such file" in out[0] and "No such file" in out[1]
    assert out[2] == "/" and out[3] == "0"
    # the probe can see it when the host offers it: through a volume
    assert sh(userland, "cat /vol/host-marker", "-v", f"{shared}:/vol") == ["on the host"]


def test_no_inherited_descriptor_leads_out(userland):
    """CVE-2024-21626: an fd of the runtime's inherited by the container, or
    a working directory given as /proc/self/fd/N, led into the host."""
    _, env = userland
    assert sh(userland, "ls /proc/1/fd; readlink /proc/1/cwd") == ["0", "1", "2", "/"]
    assert_no_descriptor_leads_out(lambda *args: as_nobody(env, *args))


def test_chroot_and_pivot_root_lead_nowhere(userland):
    """The chroot escape climbs to the top of the container's mount
    namespace, which pivot_root made the container's root: no further.
    pivot_root itself needs CAP_SYS_ADMIN, which the container lacks."""
    base, _ = userland
    marker = base / "chroot-marker"
    marker.write_text("on the host\n")
    out = sh(userland, f"{ROOTLESS_PROBE} chroot-escape {marker}; "
                       f"mkdir /new /new/old; pivot_root /new /new/old")
    assert out[0] == "ok"              # the escape worked: out of /jail, up to the top...
    assert out[1] == "ENOENT"          # ...which is the container's root, not the host's
    assert "Operation not permitted" in out[2]


def test_the_reaper_binary_cannot_be_read_from_inside(userland):
    """CVE-2019-5736: with --init, PID 1 is minict's own Python, the host's
    binary, run by the same user as the container's processes: only its
    being non-dumpable keeps /proc/1/exe closed to them."""
    out = sh(userland, f"{PROBE} open-write /proc/1/exe; head -c 4 /proc/1/exe", "--init")
    assert out[0] == "EACCES" and "Permission denied" in out[1]


def test_host_files_outside_volumes_stay_untouched(userland):
    """The container's root is the caller: it could write every file of
    nobody's it can reach. It reaches only its volumes, and a read-only
    volume stays read-only."""
    base, _ = userland
    volume = nobody_dir(base / "read-only")
    kept = volume / "kept"
    kept.write_text("original\n")
    os.chown(kept, NOBODY, NOBODY)
    outside = base / "outside"
    outside.write_text("original\n")
    os.chown(outside, NOBODY, NOBODY)
    out = sh(userland, f"echo changed > /data/kept; mount -o remount,rw /data; "
                       f"echo changed > /data/kept; echo changed > {outside}; "
                       f"echo changed > /proc/1/root{outside}", "-v", f"{volume}:/data:ro")
    assert "Read-only file system" in out[0] and "permission denied" in out[1]
    assert "Read-only file system" in out[2]
    assert all("nonexistent directory" in line or "No such file" in line for line in out[3:]), out
    assert kept.read_text() == outside.read_text() == "original\n"


def test_a_symlink_in_a_volume_never_redirects_a_mount(userland):
    """/data/a is a symlink to a directory of nobody's outside the volume.
    A runtime that followed it on the host would make (and mount onto)
    OUTSIDE/target there: writable by the caller, so nothing else stops it."""
    base, _ = userland
    volume = nobody_dir(base / "volume")
    outside = nobody_dir(base / "elsewhere")
    (volume / "a").symlink_to(outside)
    os.lchown(volume / "a", NOBODY, NOBODY)
    source = nobody_dir(base / "source")
    (source / "file").write_text("mounted\n")
    _, env = userland
    result = as_nobody(env, "run", "--rm", "-v", f"{volume}:/data", "-v", f"{source}:/data/a/target",
                       "escape", "cat", "/data/a/target/file")
    assert list(outside.iterdir()) == [], "a mount point was made on the host"
    if result.returncode == 0:     # followed inside the container, where OUTSIDE is not the host's
        assert result.stdout == "mounted\n"
    else:
        assert result.returncode == 125 and len(result.stderr.splitlines()) == 1, result.stderr


# ---- users, privileges, system calls -----------------------------------------------------------

def subordinate_ids_of_nobody() -> list[str]:
    """nobody's lines in /etc/subuid (ranges newuidmap would map too)."""
    subuid = Path("/etc/subuid")
    lines = subuid.read_text().splitlines() if subuid.exists() else []
    return [line for line in lines if line.split(":")[0] in ("nobody", str(NOBODY))]


def test_no_other_user_and_no_new_privileges(userland):
    """Only the caller is mapped (with no /etc/subuid range for nobody):
    the container cannot become any other host user, and no setuid
    program can give it more (no_new_privs)."""
    if subordinate_ids_of_nobody():
        pytest.skip("/etc/subuid grants nobody more ids")
    out = sh(userland, f"cat /proc/self/uid_map /proc/self/gid_map; {ROOTLESS_PROBE} setuid 1000; "
                       "grep NoNewPrivs /proc/self/status")
    assert [line.split() for line in out[:2]] == [["0", str(NOBODY), "1"]] * 2
    assert out[2] == "EINVAL" and out[3].split() == ["NoNewPrivs:", "1"]


def rootless_capability_mask() -> int:
    """docker's default set, less CAP_MKNOD: without root there is no cgroup,
    so no device controller, and device_access.confine drops CAP_MKNOD
    (the "nodev" mechanism) whatever the user namespace would allow."""
    return sum(1 << NUMBERS[name] for name in DOCKER_DEFAULT if name != "CAP_MKNOD")


def test_capabilities_are_the_default_set(userland):
    """Root of a user namespace starts with every capability in it: the
    container must have dropped them to docker's default set, as in root
    mode (CAP_SYS_ADMIN, CAP_SYS_PTRACE... gone)."""
    out = sh(userland, "grep ^Cap /proc/self/status")
    caps = {line.split(":")[0]: int(line.split()[1], 16) for line in out}
    expected = rootless_capability_mask()
    assert (caps["CapBnd"], caps["CapEff"], caps["CapPrm"]) == (expected,) * 3
    assert caps["CapAmb"] == caps["CapInh"] == 0


def test_no_new_user_or_mount_namespace(userland):
    """A user namespace may make more of both: seccomp and the dropped
    CAP_SYS_ADMIN refuse them, as in root mode."""
    out = sh(userland, "unshare -U true && echo user; unshare -m true && echo mount; "
                       "grep ^Seccomp: /proc/self/status")
    assert "user" not in out and "mount" not in out
    assert all("Operation not permitted" in line for line in out[:2]), out
    assert out[2].split() == ["Seccomp:", "2"]


@pytest.mark.parametrize("args", [("keyring",), ("module",), ("timezone",), ("rlimit",)],
                         ids=["keyctl", "kernel-module", "clock", "rlimit-above-hard"])
def test_privileged_calls_are_refused(userland, args):
    """keyctl: the kernel lets any user add a key (seccomp refuses it); the
    others need capabilities of the host's user namespace."""
    _, env = userland
    result = as_nobody(env, "run", "--rm", "escape", PROBE, *args)
    assert result.returncode == 1, result.stderr           # 1: the attempt failed, as printed
    assert result.stdout.strip() in REFUSED


# ---- other processes ---------------------------------------------------------------------------

def test_host_processes_are_neither_seen_nor_reached(userland, host_sleeper):
    """nobody's own `sleep` on the host: same user, so without a PID
    namespace the container could signal or trace it."""
    out = sh(userland, f"ls -d /proc/[0-9]* | wc -l; kill -9 {host_sleeper}; "
                       f"{PROBE} ptrace {host_sleeper}; kill -9 -1")
    assert int(out[0]) <= 4                        # sh, ls, wc and the shell's subshell at most
    assert "No such process" in out[1] and out[2] == "ESRCH"
    assert os.waitpid(host_sleeper, os.WNOHANG) == (0, 0)     # still running: `kill -9 -1` missed it
