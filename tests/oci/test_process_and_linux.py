"""What config.json asks, seen from inside the container (minict-oci run).

Each test sets one part of the config and checks its effect from the
command's own point of view, the way a conformance suite does."""

import json
import os
import socket
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from minicontainer.runtime.capabilities import mask

pytestmark = pytest.mark.root


def inside(bundle, script, **process):
    bundle.process("sh", "-c", script, **process)
    result = bundle.run()
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_env_cwd_and_user(bundle):
    out = inside(bundle, "echo $GREETING; pwd; id -u; id -g; id -G",
                 env=["PATH=/bin", "GREETING=hi"], cwd="/made/by/runtime",
                 user={"uid": 1000, "gid": 1000, "additionalGids": [100]})
    assert out.split("\n")[:5] == ["hi", "/made/by/runtime", "1000", "1000", "1000 100"]


@pytest.mark.parametrize("uid, env, home", [
    (1000, ["PATH=/bin"], "/home/student"),         # the container's /etc/passwd
    (4242, ["PATH=/bin"], "/"),                     # a uid it does not list
    (1000, ["PATH=/bin", "HOME=/given"], "/given"),  # the config's own wins
])
def test_home_is_the_user_s_when_the_config_sets_none(bundle, uid, env, home):
    """As runc: a shell, and many programs, expect HOME."""
    out = inside(bundle, "echo $HOME; env | grep -c ^HOME=", env=env,
                 user={"uid": uid, "gid": uid})
    assert out.split("\n")[:2] == [home, "1"]


def test_umask(bundle):
    assert inside(bundle, "umask", user={"uid": 0, "gid": 0, "umask": 0o077}).strip() == "0077"


def test_capability_sets_are_as_listed(bundle):
    wanted = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    out = inside(bundle, "grep ^Cap /proc/self/status", capabilities={
        "bounding": wanted, "effective": wanted[:2], "permitted": wanted,
        "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]})
    fields = dict(line.split(":\t") for line in out.strip().split("\n"))
    assert int(fields["CapBnd"], 16) == mask(wanted)
    assert int(fields["CapPrm"], 16) == mask(wanted)
    # execve: effective becomes permitted for root... the kernel recomputes the
    # sets at exec; the ambient and inheritable ones are as asked.
    assert int(fields["CapInh"], 16) == mask(["CAP_KILL"])
    assert int(fields["CapAmb"], 16) == mask(["CAP_KILL"])


@pytest.mark.parametrize("user", [0, 1000])
@pytest.mark.parametrize("with_filter", [False, True], ids=["no-seccomp", "seccomp"])
def test_no_new_privileges(bundle, with_filter, user):
    """Only process.noNewPrivileges sets no_new_privs: a seccomp filter does
    not (libseccomp would, by default). Without it the filter is loaded
    while CAP_SYS_ADMIN is held, so a command run as any user has it too."""
    if with_filter:
        bundle.config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}
    script = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t'"
    filtered = "Seccomp:2" if with_filter else "Seccomp:0"
    for wanted in (True, False):
        out = inside(bundle, script, noNewPrivileges=wanted, user={"uid": user, "gid": user})
        assert out.split() == [f"NoNewPrivs:{int(wanted)}", filtered], (wanted, out)


def test_rlimits_and_oom_score(bundle):
    out = inside(bundle, "ulimit -n; cat /proc/self/oom_score_adj",
                 rlimits=[{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456}], oomScoreAdj=300)
    assert out.split() == ["123", "300"]


def test_hostname_sysctl_and_masked_paths(bundle):
    bundle.config["hostname"] = "oci-box"
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    masked = next(p for p in bundle.config["linux"]["maskedPaths"] if os.path.isfile(p))
    out = inside(bundle, f"hostname; cat /proc/sys/net/ipv4/ip_forward; wc -c < {masked}; "
                         "echo 0 > /proc/sys/net/ipv4/ip_forward || echo read-only")
    lines = out.split("\n")
    assert lines[:3] == ["oci-box", "1", "0"]
    assert "read-only" in out


def test_readonly_root_and_mounts(bundle, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "file").write_text("from the host")
    bundle.config["root"]["readonly"] = True
    bundle.config["mounts"] += [
        {"destination": "/data", "type": "bind", "source": str(data), "options": ["rbind", "ro"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "size=1m", "mode=1777"]},
    ]
    out = inside(bundle, "cat /data/file; echo; touch /x 2>/dev/null || echo root-ro; "
                         "touch /data/y 2>/dev/null || echo data-ro; touch /scratch/z && "
                         "echo scratch-rw; grep ' /scratch ' /proc/self/mountinfo")
    assert out.split("\n")[:4] == ["from the host", "root-ro", "data-ro", "scratch-rw"]
    assert "nosuid,nodev" in out and "size=1024k" in out
    assert not (data / "y").exists()


def test_devices_are_made(bundle):
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o620,
         "uid": 0, "gid": 5},
        {"path": "/dev/pipe", "type": "p", "fileMode": 0o660},       # a fifo: no device
        {"path": "/dev/nothing", "type": "c", "major": 1, "minor": 3, "fileMode": 0o4755}]
    out = inside(bundle, "stat -c '%F %t:%T %a %g' /dev/fuse /dev/null /dev/pipe /dev/nothing")
    assert out.split("\n")[:4] == ["character special file a:e5 620 5",
                                   "character special file 1:3 666 0",
                                   "fifo 0:0 660 0",
                                   "character special file 1:3 755 0"]   # never set-uid


def test_joining_a_network_namespace_by_path(bundle, tmp_path):
    """linux.namespaces path: the container joins what another process has."""
    holder = subprocess.Popen(["unshare", "--net", "sh", "-c",
                               "ip link add oci-test0 type veth peer name oci-test1; sleep 30"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        for _ in range(100):
            if os.readlink(path) != os.readlink("/proc/self/ns/net"):
                break
        bundle.config["linux"]["namespaces"] = [
            ns if ns["type"] != "network" else {"type": "network", "path": path}
            for ns in bundle.config["linux"]["namespaces"]]
        out = inside(bundle, "sleep 0.2; ip -o link show")
        assert "oci-test0" in out
    finally:
        holder.kill()
        holder.wait()


def test_seccomp_in_the_runtime_spec_format(bundle):
    bundle.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13},
                     {"names": ["no_such_call_at_all"], "action": "SCMP_ACT_ERRNO"}]}
    out = inside(bundle, "mkdir /tmp/x 2>&1; grep Seccomp: /proc/self/status")
    assert "Permission denied" in out   # errnoRet 13 is EACCES
    assert "Seccomp:\t2" in out


def test_personality_linux32(bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    assert inside(bundle, "uname -m").strip() in ("i686", "armv8l")


def test_hooks_run_at_their_moments_with_the_state(bundle, tmp_path):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nread -r state\necho \"$1 $state\" >> {log}\n")
    hook.chmod(0o755)
    bundle.config["hooks"] = {moment: [{"path": str(hook), "args": ["hook.sh", moment]}]
                              for moment in ("prestart", "createRuntime", "poststart",
                                             "poststop")}
    bundle.config["annotations"] = {"org.example/course": "containers 101"}
    # (a command that outlasts the poststart hook: `true` may be gone by then,
    # and the state the hook reads would rightly say "stopped")
    inside(bundle, "sleep 1")
    lines = log.read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == \
        ["prestart", "createRuntime", "poststart", "poststop"]
    states = [json.loads(line.split(" ", 1)[1]) for line in lines]
    assert states[0]["status"] == "creating" and states[0]["pid"] > 0
    assert states[2]["status"] == "running" and states[3]["status"] == "stopped"
    assert all(s["id"] == "c1" and s["annotations"] == {"org.example/course": "containers 101"}
               for s in states)

def test_poststart_runs_once_the_command_is_exec_d(bundle, tmp_path):
    """The spec: after the user-specified process is executed. A slow
    startContainer hook (in the container, before execve) would otherwise
    let poststart see init, not the command."""
    log = tmp_path / "poststart.log"
    hook = tmp_path / "poststart.sh"
    hook.write_text("#!/bin/sh\nread -r state\n"
                    "pid=$(echo \"$state\" | sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/')\n"
                    f"cat /proc/$pid/comm > {log}\n")
    hook.chmod(0o755)
    bundle.config["hooks"] = {"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "0.5"]}],
                              "poststart": [{"path": str(hook)}]}
    inside(bundle, "sleep 1")
    assert log.read_text() == "sleep\n"


def test_start_and_delete_run_the_hooks_create_checked(bundle, tmp_path):
    """create keeps the checked hooks in state.json: a bundle changed after
    create does not change what start and delete run (runc keeps its config
    in its state too)."""
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1\" >> {log}\n")
    hook.chmod(0o755)
    bundle.config["hooks"] = {moment: [{"path": str(hook), "args": ["hook.sh", moment]}]
                              for moment in ("poststart", "poststop")}
    bundle.process("sleep", "5")
    bundle.oci("create", "-b", str(bundle.path), "c1", check=True)
    bundle.config["hooks"] = {"poststart": [{"path": "/bin/false"}],
                              "poststop": [{"path": "/bin/false"}]}
    bundle.oci("start", "c1", check=True)
    result = bundle.oci("delete", "--force", "c1", check=True)
    assert log.read_text().split() == ["poststart", "poststop"]
    assert "warning" not in result.stderr


def test_a_container_from_before_state_json_kept_hooks_runs_the_bundle_s(bundle, tmp_path):
    """state.json written by an older minict-oci has no hooks: delete runs
    the bundle's poststop hooks, as that minict-oci would have."""
    log = tmp_path / "hooks.log"
    bundle.config["hooks"] = {"poststop": [{"path": "/bin/sh",
                                            "args": ["sh", "-c", f"echo poststop >> {log}"]}]}
    bundle.process("sleep", "5")
    bundle.oci("create", "-b", str(bundle.path), "c1", check=True)
    state_file = bundle.state_root / "c1" / "state.json"
    older = json.loads(state_file.read_text())
    del older["hooks"]
    state_file.write_text(json.dumps(older))
    bundle.oci("delete", "--force", "c1", check=True)
    assert log.read_text().split() == ["poststop"]
    # A bundle changed since into one create would refuse (a hook with no
    # path): no hooks are run from it, and delete still removes the container.
    bundle.oci("create", "-b", str(bundle.path), "c1", check=True)
    state_file.write_text(json.dumps({k: v for k, v in json.loads(state_file.read_text()).items()
                                      if k != "hooks"}))
    bundle.config["hooks"] = {"poststop": [{"args": ["sh"]}]}
    bundle.oci("delete", "--force", "c1", check=True)
    assert log.read_text().split() == ["poststop"]
    assert not (bundle.state_root / "c1").exists()


def test_a_failing_hook_fails_create_and_leaves_nothing(bundle, tmp_path):
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    result = bundle.oci("create", "-b", str(bundle.path), "c1")
    assert result.returncode == 125 and "createRuntime hook /bin/false" in result.stderr
    assert not (bundle.state_root / "c1").exists()


def test_terminal_goes_to_the_console_socket(bundle, tmp_path):
    """process.terminal: the pty master arrives on --console-socket (SCM_RIGHTS)."""
    path = str(tmp_path / "console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    received = {}

    def take():
        conn, _ = server.accept()
        _, fds, _, _ = socket.recv_fds(conn, 1024, 1)
        received["fd"] = fds[0]
        conn.close()
    taker = threading.Thread(target=take)
    taker.start()
    bundle.process("sh", "-c", "tty; stty size", terminal=True,
                   consoleSize={"height": 33, "width": 99})
    result = bundle.oci("run", "-b", str(bundle.path), "--console-socket", path, "c1")
    taker.join(10)
    server.close()
    assert result.returncode == 0, result.stderr
    master = received["fd"]
    assert stat.S_ISCHR(os.fstat(master).st_mode)
    output = b""
    try:
        while chunk := os.read(master, 4096):
            output += chunk
    except OSError:   # EIO: the container's side closed
        pass
    os.close(master)
    assert b"/dev/pts/0" in output and b"33 99" in output


def test_without_a_device_controller_only_the_runtime_s_nodes_open(bundle):
    """This host has no cgroup v2 device controller: resources.devices is
    kept by nodev mounts (a node from the rootfs cannot be opened) and by
    taking CAP_MKNOD away (no node can be made in /dev)."""
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        pytest.skip("a cgroup v2 host: the eBPF filter keeps the rules (test_cgroups_vm.py)")
    rootfs = Path(bundle.config["root"]["path"])
    os.mknod(rootfs / "stray-null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    every = ["CAP_MKNOD", "CAP_CHOWN"]
    out = inside(bundle, "cat /stray-null 2>&1 | head -1; mknod /dev/made c 1 3 2>&1 | tail -1; "
                         "echo x > /dev/null && echo null-ok",
                 capabilities={name: every for name in ("bounding", "effective", "permitted")})
    lines = out.split("\n")
    assert "Permission denied" in lines[0]          # nodev
    assert "Operation not permitted" in lines[1]    # no CAP_MKNOD
    assert lines[2] == "null-ok"


def test_container_side_hooks(bundle, tmp_path):
    """createContainer runs before pivot_root in the container's mount
    namespace (the host's paths still there); startContainer runs in the
    container itself, its path the container's, just before the command."""
    log = tmp_path / "create.log"
    host_hook = tmp_path / "create.sh"
    host_hook.write_text(f"#!/bin/sh\nread -r state\necho \"$state\" > {log}\n"
                         f"readlink /proc/self/ns/mnt >> {log}\n")
    host_hook.chmod(0o755)
    rootfs = Path(bundle.config["root"]["path"])
    (rootfs / "start.sh").write_text("#!/bin/sh\nhostname > /start-hook-ran\n")
    (rootfs / "start.sh").chmod(0o755)
    bundle.config["hooks"] = {"createContainer": [{"path": str(host_hook)}],
                              "startContainer": [{"path": "/start.sh"}]}
    bundle.config["hostname"] = "hooked"
    out = inside(bundle, "cat /start-hook-ran; readlink /proc/self/ns/mnt")
    state_line, hook_mnt = log.read_text().splitlines()
    assert json.loads(state_line)["id"] == "c1"
    assert out.split("\n")[:2] == ["hooked", hook_mnt]   # the same mount namespace
    assert hook_mnt != os.readlink("/proc/self/ns/mnt")


def test_a_start_container_hook_alone_runs(bundle):
    """It runs after pivot_root, where the host's Python library is out of
    sight: what running a hook takes was loaded before (no createContainer
    hook loaded it here)."""
    rootfs = Path(bundle.config["root"]["path"])
    (rootfs / "start.sh").write_text("#!/bin/sh\necho started > /start-hook-ran\n")
    (rootfs / "start.sh").chmod(0o755)
    bundle.config["hooks"] = {"startContainer": [{"path": "/start.sh"}]}
    assert inside(bundle, "cat /start-hook-ran").strip() == "started"


PROPAGATION_SEEN = {
    # rootfsPropagation -> the root's optional mountinfo field; what a bind of
    # "/" shows of a tmpfs mounted at /tmp after it (runtime-tools' check)
    "shared": ("shared:", "x"),
    "rshared": ("shared:", "x"),
    "private": ("-", ""),
    "slave": ("", ""),              # master:N when the host's mount is shared, else "-"
    "unbindable": ("unbindable", "mount: mounting / on /mnt/b failed: Invalid argument"),
    "runbindable": ("unbindable", "mount: mounting / on /mnt/b failed: Invalid argument"),
}


@pytest.mark.parametrize("propagation", PROPAGATION_SEEN)
def test_the_root_s_propagation(bundle, propagation):
    """pivot_root refuses a shared root, and an unbindable one cannot be
    bound: those two are given to the root once it is one."""
    for name in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][name].append("CAP_SYS_ADMIN")
    bundle.config["root"]["readonly"] = False
    bundle.config["linux"]["rootfsPropagation"] = propagation
    out = inside(bundle, "awk '$5 == \"/\" {print $7}' /proc/self/mountinfo; mkdir -p /mnt/b; "
                         "mount --bind / /mnt/b 2>&1 | tail -1; mount -t tmpfs t /tmp; "
                         "touch /tmp/x; ls /mnt/b/tmp 2>/dev/null; true").split("\n")
    field, seen = PROPAGATION_SEEN[propagation]
    assert out[0].startswith(field), out
    assert "\n".join(out[1:]).strip() == seen, out


def test_recursive_mount_options_reach_every_mount_below(bundle, tmp_path):
    """rro (runtime spec 1.1: mount_setattr with AT_RECURSIVE) makes the
    mounts under a bind read-only too; ro, like a remount, only its top.
    nosymfollow is a flag, not the filesystem's data; two propagation
    options are two calls, in order."""
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "sub", str(data / "sub")],
                   check=True)
    try:
        bundle.config["mounts"] += [
            {"destination": "/rro", "type": "bind", "source": str(data),
             "options": ["rbind", "rro"]},
            {"destination": "/ro", "type": "bind", "source": str(data),
             "options": ["rbind", "ro"]},
            {"destination": "/nofollow", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosymfollow", "size=1m", "rprivate", "shared"]}]
        out = inside(bundle, "touch /rro/sub/x 2>&1 | grep -c Read-only; "
                             "touch /ro/sub/y && echo writable; "
                             "touch /ro/z 2>&1 | grep -c Read-only; "
                             "ln -s /etc/hostname /nofollow/link; "
                             "cat /nofollow/link >/dev/null 2>&1 || echo not-followed; "
                             "awk '$5 == \"/nofollow\" {print $6, $7}' /proc/self/mountinfo")
    finally:
        subprocess.run(["umount", str(data / "sub")], check=True)
    lines = out.split("\n")
    assert lines[:4] == ["1", "writable", "1", "not-followed"], out
    options, optional = lines[4].split()
    assert "nosymfollow" in options.split(",") and optional.startswith("shared:"), lines[4]
