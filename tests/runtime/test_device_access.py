"""What controls a container's devices (runtime/device_access.py), --device,
and the nodev fallback's mounts, against the recording kernel (no root).
The real runs are in test_devices_host.py (the fallback, this host) and
test_devices_vm.py (the eBPF program and cgroup v1, a real kernel)."""

import errno
import os

import pytest

from minicontainer import syscalls as sc
from minicontainer.cgroups.device_program import assemble
from minicontainer.cgroups.devices import rules_for
from minicontainer.errors import BadArgument, CgroupUnavailable, UnsupportedConfig
from minicontainer.oci import cgroup as oci_cgroup
from minicontainer.runtime import bundle, device_access
from minicontainer.runtime.engine_record import EngineRecord
from minicontainer.runtime.flags import Bind, DeviceNode, Tmpfs, parse_device
from tests.cgroups.fakes import fake_root
from tests.helpers.kernels import TreeKernel, build_root

pytestmark = pytest.mark.unit

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_MKNOD", "CAP_KILL"]


def spec(**changes) -> EngineRecord:
    base = dict(id="a" * 64, image_ref="busybox", image_id="sha256:x", layer_dirs=["/l/0"])
    return EngineRecord(**{**base, **changes})


def capabilities_at_start(engine, mechanism) -> list:
    """The bounding set config.json gives the runtime at a start whose device
    rules `mechanism` holds (bundle.for_start: no CAP_MKNOD for nodev)."""
    process = bundle.process_of(args=["true"], env=[], cwd="/", uid=0, gid=0,
                                capabilities=DEFAULT_CAPS)
    saved = bundle.config_of(engine, process, hostname="h", read_only=False, binds=(),
                             tmpfs=(), labels={}, record_dir="/r")
    ran = bundle.for_start(saved, engine, nodev=mechanism == device_access.NODEV)
    return ran["process"]["capabilities"]["bounding"]


def narration() -> tuple[sc.Kernel, list[str]]:
    """A recording kernel, and the list its narration lines go to."""
    lines = []

    class Capture(sc.Narrator):
        def say(self, sentence, call=None):
            lines.append(f"{sentence}: {call}" if call else sentence)

    return sc.RecordingKernel(Capture(True, fd=-1)), lines


# ---- which enforcement ---------------------------------------------------------------------------

def test_a_cgroup_means_the_ebpf_program_the_runtime_attaches(monkeypatch):
    """The engine chooses; the rules it narrates are the ones config.json
    carries, which the runtime assembles (oci/cgroup.py device_rules_of)."""
    monkeypatch.delenv(device_access.V1_ENVIRONMENT, raising=False)
    loop = DeviceNode("/dev/loop0", "b", 7, 0, access="rw")
    kernel, lines = narration()
    guard = device_access.plan(kernel, spec(devices=[loop]), has_cgroup=True)
    assert guard.mechanism == device_access.EBPF and not guard.nodev
    assert kernel.named("attach_device_program") == []     # the runtime's, not the engine's
    rules = [line.split(": ", 1)[1] for line in lines if line.startswith("Device rule: ")]
    assert rules[2] == "allow c 1:3 rwm /dev/null" and rules[-1] == "allow b 7:0 rw /dev/loop0"
    assert len(rules) == 12
    linux = {"resources": bundle.resources_of(spec(devices=[loop])),
             "devices": bundle.devices_of([loop])}
    assert assemble(oci_cgroup.device_rules_of(linux)) == assemble(rules_for([loop]))
    assert capabilities_at_start(spec(), guard.mechanism) == DEFAULT_CAPS


def test_the_runtime_attaches_the_program_to_the_cgroup_it_makes(monkeypatch, tmp_path):
    """oci/cgroup.py prepare, as minict run calls it: the cgroup under the
    home the engine chose, its program the config's rules."""
    root = fake_root(tmp_path)
    monkeypatch.setattr(oci_cgroup, "DEFAULT_ROOT", root)
    loop = DeviceNode("/dev/loop0", "b", 7, 0, access="rw")
    config = {"linux": {"cgroupsPath": "/minict/" + "a" * 64,
                        "resources": bundle.resources_of(spec(devices=[loop])),
                        "devices": bundle.devices_of([loop])}}
    kernel, _ = narration()
    cgroup = oci_cgroup.prepare(kernel, config, "a" * 64, within=root)
    assert cgroup.path == root / "minict" / ("a" * 64) and cgroup.path.is_dir()
    [(path, program)] = kernel.named("attach_device_program")
    assert path == str(cgroup.path) and program == assemble(rules_for([loop]))
    kernel.fail_next("attach_device_program", errno.EINVAL)    # no CONFIG_CGROUP_BPF, say
    config["linux"]["cgroupsPath"] = "/minict/" + "b" * 64
    with pytest.raises(CgroupUnavailable, match="refused the container's device filter"):
        oci_cgroup.prepare(kernel, config, "b" * 64, within=root)
    assert not (root / "minict" / ("b" * 64)).exists()       # nothing left half made


@pytest.mark.parametrize("path", ["/elsewhere/x", "/minict/../../x", "/"])
def test_a_cgroups_path_outside_the_runtimes_part_is_refused(monkeypatch, tmp_path, path):
    root = fake_root(tmp_path)
    monkeypatch.setattr(oci_cgroup, "DEFAULT_ROOT", root.parent)
    with pytest.raises(UnsupportedConfig, match="linux.cgroupsPath"):
        oci_cgroup.prepare(sc.RecordingKernel(), {"linux": {"cgroupsPath": path}}, "x",
                           within=root)


def test_no_cgroup_means_no_mknod_and_nodev(monkeypatch):
    monkeypatch.delenv(device_access.V1_ENVIRONMENT, raising=False)
    kernel, lines = narration()
    guard = device_access.plan(kernel, spec(), has_cgroup=False)
    assert guard.mechanism == device_access.NODEV and guard.nodev
    assert any(line.startswith("No device controller (the container has no cgroup v2 cgroup)")
               for line in lines)
    assert capabilities_at_start(spec(), guard.mechanism) == ["CAP_CHOWN", "CAP_KILL"]


@pytest.mark.parametrize("has_cgroup", [True, False])
def test_privileged_keeps_everything(monkeypatch, has_cgroup):
    monkeypatch.delenv(device_access.V1_ENVIRONMENT, raising=False)
    kernel, _ = narration()
    guard = device_access.plan(kernel, spec(privileged=True), has_cgroup)
    assert guard.mechanism == device_access.PRIVILEGED and not guard.nodev
    assert capabilities_at_start(spec(), guard.mechanism) == DEFAULT_CAPS
    linux = {"resources": bundle.resources_of(spec(privileged=True))}
    assert oci_cgroup.device_rules_of(linux) is None          # no program to attach


def test_a_limited_device_without_a_controller_is_refused(monkeypatch):
    monkeypatch.delenv(device_access.V1_ENVIRONMENT, raising=False)
    loop = DeviceNode("/dev/loop0", "b", 7, 0, access="r")
    with pytest.raises(CgroupUnavailable, match="needs a device controller"):
        device_access.plan(sc.RecordingKernel(), spec(devices=[loop]), has_cgroup=False)


def test_a_v1_devices_hierarchy_is_used_when_named(monkeypatch, tmp_path):
    (tmp_path / "devices.allow").write_text("")      # what marks a v1 devices hierarchy
    monkeypatch.setenv(device_access.V1_ENVIRONMENT, str(tmp_path))
    kernel, _ = narration()
    guard = device_access.plan(kernel, spec(), has_cgroup=False)
    assert guard.mechanism == device_access.CGROUP_V1 and guard.v1_cgroup is None
    assert list(tmp_path.iterdir()) == [tmp_path / "devices.allow"]     # nothing made yet
    guard = device_access.make_v1_cgroup(kernel, guard, "a" * 64)
    assert guard.mechanism == device_access.CGROUP_V1 and not guard.nodev
    cgroup = tmp_path / "minict" / ("a" * 64)
    assert guard.v1_cgroup.path == cgroup
    assert (cgroup / "devices.deny").read_text() == "a"
    assert (cgroup / "devices.allow").read_text() == "c 136:* rwm"    # the last rule written


def test_a_v1_setting_that_is_no_devices_hierarchy_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv(device_access.V1_ENVIRONMENT, str(tmp_path))
    with pytest.raises(CgroupUnavailable, match="is not a cgroup v1 devices hierarchy"):
        device_access.plan(sc.RecordingKernel(), spec(), has_cgroup=False)
    assert list(tmp_path.iterdir()) == []


def test_inspect_describes_each_mechanism():
    for name in (device_access.EBPF, device_access.NODEV, device_access.CGROUP_V1,
                 device_access.PRIVILEGED):
        shown = device_access.describe(name, "a" * 64, running=False)
        assert shown["Mechanism"] == name and shown["Description"]
    assert "CAP_MKNOD dropped" in device_access.describe("nodev", "x", False)["Description"]


# ---- --device --------------------------------------------------------------------------------------

def test_device_flag_copies_the_host_node():
    st = os.stat("/dev/null")
    node = parse_device("/dev/null")
    assert node == DeviceNode("/dev/null", "c", 1, 3, st.st_mode & 0o7777, st.st_uid, st.st_gid, "rwm")
    assert parse_device("/dev/null:r").access == "r"
    assert parse_device("/dev/null:/dev/quiet").path == "/dev/quiet"
    renamed = parse_device("/dev/null:/dev/quiet:rw")
    assert (renamed.path, renamed.access, renamed.major, renamed.minor) == ("/dev/quiet", "rw", 1, 3)


@pytest.mark.parametrize("text, words", [
    ("/dev/no-such-device", "--device /dev/no-such-device: No such file or directory"),
    ("/etc/hostname", "--device /etc/hostname is not a device node"),
    ("/dev/null:xyz", "permissions 'xyz' are not letters from rwm"),
    ("/dev/null:/tmp/null", "the path in the container must be under /dev/"),
    ("/dev/null:/dev/../etc/x", "the path in the container must be under /dev/"),
    ("/dev/null:/dev/a:rw:x", "invalid --device"),
    ("/dev/null::rw", "invalid --device"),
])
def test_bad_device_flags_are_one_clear_line(text, words):
    with pytest.raises(BadArgument, match=words.replace("(", r"\(")) as caught:
        parse_device(text)
    assert caught.value.exit_code == 27 and "\n" not in caught.value.one_line()


# ---- the nodev fallback's mounts ----------------------------------------------------------------------

def test_nodev_reaches_the_root_every_bind_and_its_submounts_and_tmpfs(tmp_path):
    root = tmp_path / "merged"
    root.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    for name in ("hostname", "hosts", "resolv.conf"):   # the container's own /etc files
        (tmp_path / name).write_text("")

    class Spec:
        layer_dirs = ["/l/0"]
        devices, privileged = [], False
        binds = [Bind(str(src), "/data"), Bind(str(src), "/ro", True)]
        tmpfs = [Tmpfs("/run", "exec,dev,nosuid")]     # asks for dev: the fallback says no
        ipc, shm_size = "private", 64 << 20

    kernel = TreeKernel()
    build_root(kernel, Spec, str(tmp_path), str(root), nodev=True)
    mounts = {os.path.relpath(m[1], root) if m[1] else None: m for m in kernel.named("mount")}
    overlay, _, again = kernel.named("mount")[:3]            # overlay, bound onto itself, remount
    assert overlay[2] == "overlay" and overlay[3] == sc.MS_NODEV
    assert again[1] == str(root) and again[3] & (sc.MS_REMOUNT | sc.MS_NODEV) == \
        sc.MS_REMOUNT | sc.MS_NODEV
    assert mounts["run"][3] & sc.MS_NODEV
    assert not mounts["dev"][3] & sc.MS_NODEV                     # minict's own /dev, and only it
    binds = {os.path.relpath(target, root): (readonly, nodev) for _, target, readonly, nodev in
             kernel.named("bind_with_attributes")}
    etc = {"etc/hostname", "etc/hosts", "etc/resolv.conf"}
    if sc.has_mount_setattr():   # flags set before the bind is attached, submounts included
        assert binds == {"data": (False, True), "ro": (True, True)} | {e: (False, True) for e in etc}
    else:                        # a bind, then a remount to set them
        remounts = [m for m in kernel.named("mount") if m[3] & sc.MS_REMOUNT]
        assert etc <= {os.path.relpath(m[1], root) for m in remounts if m[3] & sc.MS_NODEV}

    kernel = TreeKernel()
    (tmp_path / "again").mkdir()
    build_root(kernel, Spec, str(tmp_path), str(tmp_path / "again"))    # guarded: no nodev
    assert kernel.named("mount")[0][3] == 0
    # (only the read-only volume asks for a flag; the /etc files are always nodev)
    assert [args[2:] for args in kernel.named("bind_with_attributes")] in \
        ([(False, True)] * 3 + [(True, False)], [])
