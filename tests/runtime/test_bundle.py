"""`minict inspect --bundle`: a minict container as an OCI config.json
(runtime/bundle.py), which minict-oci runs with the same result as
`minict run`: the same probe, run both ways, prints the same lines."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minicontainer.cgroups.limits import DeviceRate, Limits, limits_from_cli
from minicontainer.oci import cgroup as oci_cgroup
from minicontainer.oci import config as oci_config, init
from minicontainer.runtime import bundle
from minicontainer.runtime.engine_record import EngineRecord
from tests.helpers.runtime_tools import findings

pytestmark = pytest.mark.root

MINICT_OCI = str(Path(sys.executable).parent / "minict-oci")

PROBE = ("hostname; cat /etc/hostname; id; pwd; echo X=$X; ulimit -n; "
         "grep -E '^(CapBnd|CapEff|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status; "
         "unshare -U true 2>&1 | tail -1; touch /rootfile 2>&1 | tail -1; "
         "ls /dev | tr '\\n' ' '; echo; [ -s /proc/timer_list ] && echo shown || echo masked; "
         "echo 1 > /proc/sys/kernel/ns_last_pid 2>&1 | tail -1; grep -c . /proc/mounts >/dev/null")

FLAGS = {
    "default": [],
    "user-readonly-ulimit": ["--user", "1000", "--read-only", "--ulimit", "nofile=512:1024",
                             "-e", "X=1", "-w", "/tmp", "--cap-drop", "ALL"],
    "cap-add-unconfined": ["--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined"],
    "privileged": ["--privileged"],
}


@pytest.mark.parametrize("flags", FLAGS.values(), ids=FLAGS.keys())
def test_the_bundle_runs_as_minict_runs_it(mt, tmp_path, busybox_rootfs, flags):
    common = ["--network", "none", "--hostname", "probe", *flags]
    mt.out("run", "-d", "--name", "held", *common, "busybox", "sleep", "60")
    try:
        config = json.loads(mt.out("inspect", "--bundle", "held"))[0]
        by_minict = mt.out("run", "--rm", *common, "busybox", "sh", "-c", PROBE)
        # The same container through minict-oci: the image's rootfs (minict's
        # merged overlay exists only in its container's mount namespace).
        rootfs = tmp_path / "rootfs"
        shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
        config["root"]["path"] = str(rootfs)
        config["process"]["args"] = ["sh", "-c", PROBE]
        bundle = tmp_path / "bundle"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps(config))
        oci_config.check(config, bundle)        # a valid config, every field accepted
        by_oci = subprocess.run([MINICT_OCI, "--root", str(tmp_path / "oci-state"), "run",
                                 "-b", str(bundle), "probe"], capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        assert by_oci.returncode == 0, by_oci.stderr
        assert by_oci.stdout == by_minict
    finally:
        mt("rm", "-f", "held")


def test_inspect_bundle_says_what_the_flags_became(mt):
    mt.out("run", "-d", "--name", "held", "--network", "none", "--cap-add",
           "NET_ADMIN", "--tmpfs", "/scratch:size=1m", "--label", "course=101", "busybox",
           "sleep", "60")
    try:
        config = json.loads(mt.out("inspect", "--bundle", "held"))[0]
    finally:
        mt("rm", "-f", "held")
    assert "CAP_NET_ADMIN" in config["process"]["capabilities"]["bounding"]
    assert config["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}
    assert {"type": "network"} in config["linux"]["namespaces"]
    scratch = next(m for m in config["mounts"] if m["destination"] == "/scratch")
    assert scratch["type"] == "tmpfs" and "size=1m" in scratch["options"]
    assert config["annotations"]["course"] == "101"
    # NET_ADMIN held: unshare/setns stay denied (they need SYS_ADMIN), mount too
    denied = config["linux"]["seccomp"]["syscalls"][0]["names"]
    assert "keyctl" in denied and "unshare" in denied


VALIDATED_FLAGS = {
    **FLAGS,
    # (a label becomes an annotation under the user's own key, which the
    # spec, like Docker's docs for labels, asks to be a reverse domain name)
    "tmpfs-label-workdir": ["--tmpfs", "/scratch:size=1m", "--label", "org.example.course=101",
                            "-w", "/work", "-e", "X=1"],
    "volume-device": ["-v", "/etc/hostname:/data/hostname:ro",
                      "--device", "/dev/null:/dev/nothing"],
}


@pytest.mark.parametrize("flags", VALIDATED_FLAGS.values(), ids=VALIDATED_FLAGS.keys())
def test_the_engine_s_bundles_pass_the_runtime_tools_validator(oci_validator, mt, tmp_path, flags):
    """What the engine gave minict-oci's create (the config its start ran,
    kept beside the container's merged root), checked by the OCI
    runtime-tools validator on the host that runs it."""
    mt.out("run", "-d", "--name", "held", "--network", "none", "--hostname", "probe", *flags,
           "busybox", "sleep", "60")
    try:
        config = json.loads(mt.out("inspect", "--bundle", "held"))[0]
        container_dir = Path(config["root"]["path"]).parent
        ran = container_dir / "bundle-config.json"          # runtime/state.py
        assert json.loads(ran.read_text()) == config
        found = findings(oci_validator, container_dir, ran)
    finally:
        mt("rm", "-f", "held")
    assert found == []


def engine_record(**fields) -> EngineRecord:
    return EngineRecord(**{"id": "0" * 64, "image_ref": "busybox", "image_id": "sha256:x",
                           "layer_dirs": [], **fields})


def test_limits_become_resources():
    """(Limits need cgroup v2, which this host's minict run refuses: the
    translation itself is checked on an engine record.)"""
    engine = engine_record(limits=Limits(memory=64 << 20, pids_limit=20, cpus=1.5).to_dict())
    resources = bundle.resources_of(engine)
    assert resources["memory"] == {"limit": 64 << 20}
    assert resources["pids"] == {"limit": 20}
    assert resources["cpu"] == {"quota": 150000, "period": 100000}


@pytest.mark.vmtier
def test_inspect_bundle_shows_the_config_that_ran(mt):
    """What only the start knows: whether the container got a cgroup of its
    own to see at /sys/fs/cgroup (in the VM tier it does; on a host whose
    controllers cgroup v1 holds it does not). inspect shows the config as
    it ran, not one made again from the flags."""
    mt.out("run", "-d", "--name", "held", "--network", "none", "busybox", "sleep", "60")
    try:
        config = json.loads(mt.out("inspect", "--bundle", "held"))[0]
        container_id = json.loads(mt.out("inspect", "held"))[0]["Id"]
        seen = mt.out("exec", "held", "awk", '$2 == "/sys/fs/cgroup" {print $3}', "/proc/mounts")
        own = mt.out("exec", "held", "cat", "/proc/1/cgroup")
        made = Path("/sys/fs/cgroup", config["linux"].get("cgroupsPath", "/-").lstrip("/"))
        held_there = (made / "cgroup.procs").exists() and made.joinpath("cgroup.procs").read_text()
    finally:
        mt("rm", "-f", "held")
    listed = [m["type"] for m in config["mounts"] if m["destination"] == "/sys/fs/cgroup"]
    assert listed == (["cgroup"] if seen.strip() == "cgroup2" else []), (listed, seen)
    if seen.strip() == "cgroup2":
        # the engine named the cgroup, and the runtime made it there and put PID 1 in
        assert config["linux"]["cgroupsPath"] == f"/minict/{container_id}"
        assert held_there and "0::/\n" in own, (held_there, own)
    else:
        assert "cgroupsPath" not in config["linux"]


def test_namespaces_the_engine_holds_are_named_by_path_and_a_user_one_comes_first():
    joined = {"network": "/proc/42/fd/7", "ipc": "/proc/42/fd/8"}
    namespaces = bundle.namespaces_of(engine_record(ipc="container:donor"), joined, user=True)
    assert namespaces == [{"type": "user"}, {"type": "pid"}, {"type": "mount"},
                          {"type": "uts"}, {"type": "cgroup"},
                          {"type": "ipc", "path": "/proc/42/fd/8"},
                          {"type": "network", "path": "/proc/42/fd/7"}]
    # init is born in the PID and user namespaces; the joined network one it
    # enters by path after "go" (without a path it would be born in it too)
    assert init.born_at_fork(namespaces) == {"pid", "user"}
    assert init.born_at_fork([{"type": "user"}, {"type": "network"}]) == {"user", "network"}
    assert init.born_at_fork([{"type": "pid"}, {"type": "network"}]) == {"pid"}


def test_every_limit_goes_through_config_json_and_back():
    """minict run's limits reach its cgroup only through config.json: the
    engine writes them (limits_in_spec_words), the runtime reads them back
    (oci/cgroup.py limits_of) into the same cgroup writes."""
    flags = limits_from_cli(memory="64m", memory_swap="128m", memory_reservation="32m",
                            pids_limit="20", cpus="1.5", cpuset_cpus="0", cpu_weight="300",
                            host_cpus=2)
    limits = dataclasses.replace(flags, devices=(DeviceRate("/dev/vda", 254, 0, read_bps=1 << 20),
                                                 DeviceRate("/dev/vdb", 254, 16, write_bps=3 << 20)))
    resources = bundle.limits_in_spec_words(limits)
    oci_config.check_resources(resources)                 # what minict-oci accepts
    assert resources["unified"] == {"cpu.weight": "300"}
    assert resources["blockIO"]["throttleWriteBpsDevice"] == [{"major": 254, "minor": 16,
                                                               "rate": 3 << 20}]
    back = oci_cgroup.limits_of(resources)
    assert [(w.filename, w.value) for w in back.writes(current_memory=0)] == \
        [(w.filename, w.value) for w in limits.writes(current_memory=0)]
    shares = limits_from_cli(cpu_shares="512")           # docker's flag: cpu.shares, converted
    assert bundle.limits_in_spec_words(shares) == {"cpu": {"shares": 512}}
    assert oci_cgroup.limits_of({"cpu": {"shares": 512}}).cpu_weight == shares.cpu_weight


def test_exec_takes_its_process_from_the_config_json_the_container_runs(monkeypatch):
    """minict exec, as runc exec: the container's own process (user,
    capabilities as confined when it started, rlimits), with the command,
    -e, -w and -t of the exec (runtime/exec.py process_for)."""
    from minicontainer.runtime import exec as minict_exec
    ran = dict(bundle.process_of(args=["sleep", "60"], env=["PATH=/bin", "A=1"], cwd="/srv",
                                 uid=0, gid=0, capabilities=["CAP_CHOWN", "CAP_KILL"],
                                 terminal=True), consoleSize={"height": 24, "width": 80})
    monkeypatch.setattr(minict_exec, "size_of", lambda fd: (50, 132))
    proc = minict_exec.process_for(ran, ["id"], tty=False, env=("A=2", "B=3"), workdir=None)
    assert proc["args"] == ["id"] and proc["cwd"] == "/srv" and proc["terminal"] is False
    assert proc["env"] == ["PATH=/bin", "A=2", "B=3"] and "consoleSize" not in proc
    assert proc["capabilities"] == ran["capabilities"] and proc["user"] == ran["user"]
    with_tty = minict_exec.process_for(ran, ["sh"], tty=True, workdir="/tmp")
    assert with_tty["consoleSize"] == {"height": 50, "width": 132} and with_tty["cwd"] == "/tmp"
    as_user = bundle.identity_of(1000, 1000, [27], ran["capabilities"]["bounding"])
    assert as_user["capabilities"] == {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": [],
                                       "permitted": []}
    assert as_user["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [27]}


def test_each_start_adds_what_only_it_knows_to_the_saved_config(tmp_path):
    """bundle.for_start: the saved config.json is not changed; the copy for
    the runtime gets the joined namespaces, the cgroup (and its mount),
    the limits as they are now, the console size, and without a device
    controller no CAP_MKNOD."""
    engine = engine_record(limits=Limits(pids_limit=5).to_dict())
    process = bundle.process_of(args=["sh"], env=[], cwd="/", uid=0, gid=0, terminal=True,
                                capabilities=["CAP_CHOWN", "CAP_MKNOD"])
    saved = bundle.config_of(engine, process, hostname="h", read_only=False, binds=(), tmpfs=(),
                             labels={}, record_dir=str(tmp_path))
    before = json.dumps(saved)
    engine.limits = Limits(pids_limit=9).to_dict()           # minict update, since
    ran = bundle.for_start(saved, engine, cgroups_path="/minict/" + "0" * 64,
                           console_size=(40, 100), joined={"network": "/proc/1/fd/3"},
                           nodev=True)
    assert json.dumps(saved) == before
    assert ran["linux"]["cgroupsPath"] == "/minict/" + "0" * 64
    destinations = [m["destination"] for m in ran["mounts"]]
    assert destinations.index("/sys/fs/cgroup") == destinations.index("/sys") + 1
    assert ran["linux"]["resources"]["pids"] == {"limit": 9}
    assert {"type": "network", "path": "/proc/1/fd/3"} in ran["linux"]["namespaces"]
    assert ran["process"]["consoleSize"] == {"height": 40, "width": 100}
    assert all("CAP_MKNOD" not in caps for caps in ran["process"]["capabilities"].values())
    plain = bundle.for_start(saved, engine)
    assert "cgroupsPath" not in plain["linux"] and "/sys/fs/cgroup" not in \
        [m["destination"] for m in plain["mounts"]]
    assert "CAP_MKNOD" in plain["process"]["capabilities"]["bounding"]
    assert bundle.asked_mounts(ran) == [] and bundle.labels_of(ran) == {}
