"""`minict run`, checked from inside the container (crun's test style):
each test runs a busybox command in a container and asserts on what it
prints about itself."""

import json
import os
import re
import signal

import pytest

from minicontainer.runtime import capabilities as caps
from tests.conftest import _cgroup2_usable
from tests.runtime.conftest import container_dirs
from minicontainer.runtime.mounts import MASKED_PATHS
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.root

# docker's default set; where no device controller can guard the container
# (no cgroup v2 here: runtime/device_access.py's fallback), without CAP_MKNOD.
DEVICE_CONTROLLER = _cgroup2_usable() is None
DEFAULT_CAP_NAMES = [c for c in caps.DOCKER_DEFAULT if DEVICE_CONTROLLER or c != "CAP_MKNOD"]
DEFAULT_CAPS = f"{caps.mask(DEFAULT_CAP_NAMES):016x}"


def status_fields(text: str) -> dict:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.mark.vmtier
def test_hostname_and_pid_1(mt):
    out = mt.out("run", "--rm", "--hostname", "box", "busybox",
                 "sh", "-c", "hostname; echo $$; cat /etc/hostname; cat /proc/1/comm; exit 0")
    assert out.splitlines() == ["box", "1", "box", "sh"]   # the command itself is PID 1


def test_default_hostname_is_the_short_id(mt):
    hostname = mt.out("run", "--rm", "busybox", "hostname").strip()
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)


def test_only_the_containers_processes_are_visible(mt):
    out = mt.out("run", "--rm", "busybox", "sh", "-c", "ls /proc | grep -E '^[0-9]+$'")
    assert set(out.split()) <= {"1", "2", "3", "4"}   # sh, ls, grep (no host processes)


@pytest.mark.vmtier
def test_default_capabilities_and_no_new_privs(mt):
    f = status_fields(mt.out("run", "--rm", "busybox", "cat", "/proc/self/status"))
    assert f["CapEff"] == f["CapPrm"] == f["CapBnd"] == DEFAULT_CAPS
    assert f["CapInh"] == f["CapAmb"] == "0" * 16
    assert f["NoNewPrivs"] == "1"


def test_cap_add_and_drop(mt):
    f = status_fields(mt.out("run", "--rm", "--cap-add", "NET_ADMIN", "--cap-drop", "chown",
                             "busybox", "cat", "/proc/self/status"))
    expected = (caps.mask(DEFAULT_CAP_NAMES) | 1 << 12) & ~1
    assert int(f["CapEff"], 16) == int(f["CapBnd"], 16) == expected
    f = status_fields(mt.out("run", "--rm", "--cap-drop", "ALL", "busybox", "cat", "/proc/self/status"))
    assert f["CapBnd"] == f["CapEff"] == "0" * 16


def test_non_root_user_has_no_effective_capabilities(mt):
    f = status_fields(mt.out("run", "--rm", "-u", "student", "busybox", "cat", "/proc/self/status"))
    assert f["CapEff"] == f["CapPrm"] == "0" * 16
    assert f["CapBnd"] == DEFAULT_CAPS
    assert f["Uid"].split()[0] == "1000"


def test_privileged_keeps_everything_and_masks_nothing(mt):
    out = mt.out("run", "--rm", "--privileged", "busybox", "sh", "-c",
                 "cat /proc/self/status; cat /proc/self/mountinfo")
    f = status_fields(out)
    with open("/proc/self/status") as host:
        host_bnd = status_fields(host.read())["CapBnd"]
    assert f["CapBnd"] == host_bnd
    assert f["NoNewPrivs"] == "0"
    assert " /proc/sys " not in out and " /proc/keys " not in out


# What the seccomp filter refuses, tried from inside: a user namespace (no
# capability needed for it: it is the filter that says no) and a mount.
SECCOMP_PROBE = ("grep Seccomp: /proc/self/status; unshare -Ur id -u 2>&1; mkdir -p /mnt; "
                 "mount -t tmpfs probe /mnt 2>&1 && echo mounted; exit 0")


@pytest.mark.vmtier
def test_default_seccomp_filter_refuses_user_namespaces_and_mounts(mt):
    out = mt.out("run", "--rm", "busybox", "sh", "-c", SECCOMP_PROBE)
    lines = out.splitlines()
    assert lines[0] == "Seccomp:\t2"                     # filter mode
    assert "unshare(0x10000000): Operation not permitted" in lines[1]   # CLONE_NEWUSER
    assert "mounted" not in out


def test_seccomp_unconfined_privileged_and_cap_add_open_the_filter(mt):
    out = mt.out("run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c",
                 SECCOMP_PROBE)
    assert out.splitlines()[:2] == ["Seccomp:\t0", "0"]  # root inside its own user namespace
    mt.out("run", "--name", "loose", "--security-opt", "seccomp=unconfined", "busybox", "true")
    try:
        [info] = json.loads(mt.out("inspect", "loose"))
        assert info["HostConfig"]["SecurityOpt"] == ["seccomp=unconfined"]
    finally:
        mt("rm", "-f", "loose")
    assert mt.out("run", "--rm", "--privileged", "busybox", "sh", "-c",
                  SECCOMP_PROBE).splitlines() == ["Seccomp:\t0", "0", "mounted"]
    # CAP_SYS_ADMIN is what mount and unshare are for: the filter stays, without them
    assert mt.out("run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c",
                  SECCOMP_PROBE).splitlines() == ["Seccomp:\t2", "0", "mounted"]


def mountinfo(mt, *flags) -> dict:
    """mount point -> (fstype, per-mount options) as the container sees it."""
    out = mt.out("run", "--rm", *flags, "busybox", "cat", "/proc/self/mountinfo")
    table = {}
    for line in out.splitlines():
        fields = line.split()
        sep = fields.index("-")
        table[fields[4]] = (fields[sep + 1], fields[5])
    return table


@pytest.mark.vmtier
def test_mounts_seen_from_inside(mt):
    table = mountinfo(mt)
    assert table["/"][0] == "overlay"
    assert table["/proc"][0] == "proc" and "nosuid" in table["/proc"][1]
    assert table["/dev"][0] == "tmpfs"
    assert table["/dev/pts"][0] == "devpts"
    assert table["/dev/shm"][0] == "tmpfs" and table["/dev/mqueue"][0] == "mqueue"
    assert table["/sys"][0] == "sysfs" and table["/sys"][1].startswith("ro")
    assert table["/proc/sys"][1].startswith("ro")
    for name in ("hostname", "hosts", "resolv.conf"):
        assert f"/etc/{name}" in table
    if _cgroup2_usable() is None:   # the VM tier: its own cgroup, read-only (no cgroup here)
        assert table["/sys/fs/cgroup"][0] == "cgroup2" and table["/sys/fs/cgroup"][1].startswith("ro")
    else:
        assert "/sys/fs/cgroup" not in table
    # nothing of the host's own mount table leaks in
    with open("/proc/self/mountinfo") as f:
        host_points = {line.split()[4] for line in f} - {"/", "/proc", "/sys", "/dev", "/dev/pts",
                                                         "/dev/shm", "/dev/mqueue",
                                                         "/sys/fs/cgroup", "/etc/hostname",
                                                         "/etc/hosts", "/etc/resolv.conf"}
    assert not host_points & set(table)


@pytest.mark.vmtier
def test_masked_paths_read_empty_and_cannot_be_unmounted(mt):
    present = [p for p in MASKED_PATHS if os.path.exists(p)]
    assert present, "this kernel has none of the masked paths"
    script = "; ".join(
        f"echo '== {p}'; ls -A {p}; umount {p} 2>/dev/null && echo UNMOUNTED; "
        f"cat {p} 2>/dev/null | wc -c" if os.path.isdir(p) else
        f"echo '== {p}'; umount {p} 2>/dev/null && echo UNMOUNTED; cat {p} | wc -c"
        for p in present)
    out = mt.out("run", "--rm", "busybox", "sh", "-c", script)
    assert "UNMOUNTED" not in out
    for block in out.split("== ")[1:]:
        path, *rest = block.splitlines()
        assert [l.strip() for l in rest if l.strip()] in (["0"], []), (path, rest)


@pytest.mark.vmtier
def test_proc_sys_is_read_only(mt):
    result = mt("run", "--rm", "busybox", "sh", "-c",
                "echo 1 > /proc/sys/kernel/ns_last_pid && echo WROTE")
    assert "WROTE" not in result.stdout
    assert "Read-only file system" in result.stderr


def test_copy_on_write_isolation_between_containers(mt, image_root):
    name = "cow-writer"
    mt.out("run", "--name", name, "busybox", "sh", "-c",
           "echo mine > /etc/motd; rm /bin/vi; echo changed >> /etc/passwd")
    try:
        out = mt.out("run", "--rm", "busybox", "sh", "-c",
                     "cat /etc/motd 2>&1; ls /bin/vi; tail -1 /etc/passwd")
        assert "No such file" in out and "/bin/vi" in out and "changed" not in out
        # the writer's changes are in its own upper dir, the image is untouched
        layers = list((image_root / "layers").iterdir())
        assert not any((layer / "fs/etc/motd").exists() for layer in layers)
        assert all((layer / "fs/bin/vi").is_symlink() for layer in layers
                   if (layer / "fs/bin").exists())
        record = next(d for d in (image_root / "containers").iterdir()
                      if d.name in mt.out("inspect", name))
        assert (record / "upper/etc/motd").read_text() == "mine\n"
    finally:
        mt.out("rm", name)


def test_volumes_and_read_only_volumes(mt, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "from-host").write_text("hello\n")
    out = mt.out("run", "--rm", "-v", f"{shared}:/data", "-v", f"{shared}:/deep/new/ro:ro", "busybox",
                 "sh", "-c", "cat /data/from-host; echo written > /data/from-ctr; "
                             "echo x > /deep/new/ro/nope || echo REFUSED")
    assert out.splitlines() == ["hello", "REFUSED"]
    assert (shared / "from-ctr").read_text() == "written\n"
    assert not (shared / "nope").exists()


def test_env_user_and_workdir_come_from_the_image(mt):
    out = mt.out("run", "--rm", "student", "sh", "-c", 'id -u; id -g; pwd; echo $GREETING; echo $HOME')
    assert out.split() == ["1000", "1000", "/home/student", "hello-from-image", "/home/student"]
    out = mt.out("run", "--rm", "-u", "0", "-w", "/made/here", "-e", "GREETING=flag", "student",
                 "sh", "-c", "id -u; pwd; echo $GREETING")
    assert out.split() == ["0", "/made/here", "flag"]


def test_network_none_has_only_loopback_and_it_is_up(mt):
    out = mt.out("run", "--rm", "--network", "none", "busybox", "sh", "-c",
                 "ls /sys/class/net; cat /sys/class/net/lo/flags; ping -c1 -W2 127.0.0.1 >/dev/null && echo PING")
    lines = out.split()
    assert lines[0] == "lo" and int(lines[1], 16) & 0x1 and lines[2] == "PING"
    import socket
    host_ifaces = sorted(name for _, name in socket.if_nameindex())   # this namespace's
    out = mt.out("run", "--rm", "--net", "host", "busybox", "ls", "/sys/class/net")
    assert sorted(out.split()) == host_ifaces


def test_read_only_root_with_tmpfs(mt):
    out = mt.out("run", "--rm", "--read-only", "--tmpfs", "/scratch:size=1m", "busybox", "sh", "-c",
                 "touch /oops 2>/dev/null || echo ROOT-RO; echo ok > /scratch/f && cat /scratch/f; "
                 "grep ' /scratch ' /proc/self/mountinfo")
    lines = out.splitlines()
    assert lines[:2] == ["ROOT-RO", "ok"]
    assert "tmpfs" in lines[2] and "noexec" in lines[2]
    # a missing working directory is made before the root turns read-only
    assert mt.out("run", "--rm", "--read-only", "-w", "/made/here", "busybox", "pwd") == "/made/here\n"


def test_no_inherited_file_descriptors(mt):
    # (with --explain minict holds an extra fd for the narration: it must not leak either)
    out = mt.out("--explain", "run", "--rm", "busybox", "sh", "-c", "ls /proc/1/fd; exit 0")
    assert out.split() == ["0", "1", "2"]


def test_sigpipe_is_not_ignored_in_the_container(mt):
    assert mt.out("run", "--rm", "busybox", "sh", "-c", "yes | head -n 2", timeout=20) == "y\ny\n"


# ---- exit codes -------------------------------------------------------------------------------

@pytest.mark.vmtier
def test_exit_code_is_the_commands(mt):
    assert mt("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3


@pytest.mark.parametrize("command,code,words", [
    (["nosuchcommand"], 127, "not found"),
    (["/no/such/path"], 127, "no such file"),
    (["/etc/passwd"], 126, "not executable"),
])
def test_docker_codes_for_commands_that_cannot_run(mt, command, code, words):
    before = set(container_dirs(mt.root))
    result = mt("run", "--name", "cannot-run", "busybox", *command)   # no --rm: still nothing kept
    assert result.returncode == code
    assert words in result.stderr.lower() and len(result.stderr.strip().splitlines()) == 1
    assert set(container_dirs(mt.root)) == before


@pytest.mark.vmtier
def test_killed_by_a_signal_gives_128_plus_n(mt):
    proc = mt.popen("run", "--rm", "--name", "victim", "busybox", "sleep", "60")
    try:
        # (slow in the VM tier: a start there can take seconds)
        wait_for(lambda: '"running"' in mt("inspect", "victim").stdout, 60, "victim to run")
        mt.out("kill", "victim")
        assert proc.wait(timeout=20) == 128 + signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


def test_init_reaps_forwards_signals_and_hides_its_binary(mt):
    out = mt.out("run", "--rm", "--init", "busybox", "sh", "-c",
                 "echo $$; readlink /proc/1/exe || echo HIDDEN; cat /proc/1/exe >/dev/null 2>&1 || echo UNREADABLE")
    assert out.split() == ["2", "HIDDEN", "UNREADABLE"]
    assert mt("run", "--rm", "--init", "busybox", "sh", "-c", "exit 5").returncode == 5
    # sleep as PID 1 would ignore SIGTERM; under --init the reaper forwards it
    mt.out("run", "-d", "--init", "--name", "initd", "busybox", "sleep", "60")
    try:
        mt.out("stop", "-t", "20", "initd")
        assert '"ExitCode": 143' in mt.out("inspect", "initd")   # SIGTERM, not the SIGKILL fallback
    finally:
        mt("rm", "-f", "initd")


# ---- narration ------------------------------------------------------------------------------------

def test_signals_ignored_where_minict_was_started_are_not_ignored_inside(mt):
    """nohup ignores SIGHUP; a script's background job ignores SIGINT and
    SIGQUIT; Python ignores SIGPIPE. The container's command starts with
    none of them ignored (SigIgn: the mask of ignored signals)."""
    def ignore_like_nohup_in_a_background_job():
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
    proc = mt.popen("run", "--rm", "busybox", "grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status",
                    preexec_fn=ignore_like_nohup_in_a_background_job)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"]


@pytest.mark.vmtier
def test_explain_narrates_each_step_on_stderr_only(mt):
    result = mt("--explain", "run", "--rm", "--network", "bridge", "busybox", "echo", "hi")
    assert result.returncode == 0 and result.stdout == "hi\n"
    lines = result.stderr.splitlines()
    assert all(line.startswith("[explain] ") for line in lines)
    text = result.stderr
    # Each line says which half speaks: the engine plugs the network in, the
    # runtime makes the namespaces and the root (issue 24: one path).
    assert re.search(r"^\[explain\] engine: .*RTM_NEWLINK .*kind=\"veth\"", text, re.M)
    assert re.search(r'^\[explain\] runtime: .*pivot_root\("\.", "\."\)', text, re.M)
    # The engine makes the network namespace and plugs it in before the
    # container's process exists (as podman with netavark); the runtime's
    # owner side makes the PID namespace for the child it forks.
    made = re.search(r"^\[explain\] engine: .*unshare\(CLONE_NEWNET\)", text, re.M)
    plugged = re.search(r"^\[explain\] engine: .*RTM_NEWADDR \{ifname=\"eth0\"", text, re.M)
    forked = re.search(r"^\[explain\] runtime: Fork the container's first process", text, re.M)
    assert made and plugged and forked and made.start() < plugged.start() < forked.start()
    assert re.search(r"^\[explain\] runtime: .*unshare\(CLONE_NEWPID\)", text, re.M)
    assert "unshare(CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC)" in text
    assert re.search(r"RTM_NEWLINK .*kind=\"veth\".* \(ip link add vh\w+ type veth peer name eth0", text)
    overlay_flags = "0" if DEVICE_CONTROLLER else "MS_NODEV"
    assert re.search(rf'mount\("overlay", ".*/merged", "overlay", {overlay_flags}, '
                     r'"lowerdir=.*,upperdir=.*,workdir=', text)
    assert 'pivot_root(".", ".")' in text and 'umount2(".", MNT_DETACH)' in text
    assert "prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)" in text
    if _cgroup2_usable() is None:   # the VM tier: every container gets a cgroup (for stats)
        assert re.search(r"Create the cgroup of container \w+: mkdir /sys/fs/cgroup/minict/", text)
        assert 'mount("cgroup2", ' in text
    else:                           # this host: nothing to make it in, and it says why
        assert "No cgroup was made (no limits asked, and " in text
        assert "cgroup2" not in text
    assert "prctl(PR_SET_NO_NEW_PRIVS, 1)" in text
    assert 'execve("/bin/echo"' in text
    # quiet without it; MINICT_EXPLAIN=1 turns it on too
    assert mt("run", "--rm", "busybox", "true").stderr == ""
    assert "pivot_root" in mt("run", "--rm", "busybox", "true", env={"MINICT_EXPLAIN": "1"}).stderr
