"""config.json checks: each malformed or unsupported field is one line naming it.

No root needed: oci/config.py reads and checks, and creates nothing.
"""

import json

import pytest

from minicontainer.errors import BadConfig, UnsupportedConfig
from minicontainer.oci import config as config_file
from minicontainer.oci.defaults import default_spec, features

pytestmark = pytest.mark.unit


def checked(spec, tmp_path):
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    return config_file.check(spec, tmp_path)


def test_the_default_spec_passes(spec, tmp_path):
    assert checked(spec, tmp_path) is spec


def edit(spec, path, value):
    """Set spec[a][b]... = value for path "a.b...", list indexes as digits."""
    parts = path.split(".")
    target = spec
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return spec


MALFORMED = [
    ("process.args", "sh", "process.args"),
    ("process.args", [], "process.args"),
    ("process.cwd", "tmp", "process.cwd"),
    ("process.env", ["NOEQUALS"], "process.env[0]"),
    ("process.user.uid", -1, "process.user.uid"),
    ("process.user.gid", "0", "process.user.gid"),
    ("process.capabilities.bounding", ["CAP_NOPE"], "process.capabilities.bounding[0]"),
    ("process.rlimits", [{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}], "process.rlimits[0].type"),
    ("process.rlimits", [{"type": "RLIMIT_NOFILE", "soft": 9, "hard": 1}], "process.rlimits[0]"),
    ("process.oomScoreAdj", 5000, "process.oomScoreAdj"),
    ("process.terminal", "yes", "process.terminal"),
    ("mounts.0.destination", "proc", "mounts[0].destination"),
    ("mounts.0.options", "ro", "mounts[0].options"),
    ("linux.namespaces", [{"type": "pid"}, {"type": "pidd"}], "linux.namespaces[1].type"),
    ("linux.namespaces", [{"type": "pid"}, {"type": "pid"}], "linux.namespaces[1]"),
    ("linux.namespaces", [{"type": "uts"}, {"type": "user"}], "uidMappings"),
    ("linux.namespaces", [{"type": "network", "path": "/proc/nope/ns/net"}],
     "linux.namespaces[0].path"),
    ("linux.maskedPaths", ["proc/kcore"], "linux.maskedPaths[0]"),
    ("linux.devices", [{"path": "/dev/x", "type": "q", "major": 1, "minor": 1}],
     "linux.devices[0].type"),
    ("linux.devices", [{"path": "/dev/x", "type": "c", "major": 1, "minor": 3},
                       {"path": "/dev/./x", "type": "c", "major": 1, "minor": 5}],
     "linux.devices[1].path"),
    ("process.capabilities.effective", ["CAP_SYS_ADMIN"], "process.capabilities.effective"),
    ("linux.sysctl", {"kernel.core_pattern": "|/tmp/x"}, "linux.sysctl kernel.core_pattern"),
    ("linux.sysctl", {"vm.overcommit_memory": "1"}, "linux.sysctl vm.overcommit_memory"),
    ("linux.sysctl", {"kernel.hostname": "x"}, "linux.sysctl kernel.hostname"),
    ("linux.rootfsPropagation", "sideways", "linux.rootfsPropagation"),
    ("linux.resources.devices", [{"allow": "no"}], "linux.resources.devices[0].allow"),
    ("linux.resources.memory", {"limit": "1g"}, "linux.resources.memory.limit"),
    ("linux.resources.blockIO", {"throttleWriteBpsDevice": [{"major": 8, "minor": 0}]},
     "linux.resources.blockIO.throttleWriteBpsDevice[0].rate"),
    ("linux.resources.blockIO", {"throttleReadBpsDevice": {"major": 8}},
     "linux.resources.blockIO.throttleReadBpsDevice"),
    ("linux.resources.unified", {"cpu.weight": "lots"}, "linux.resources.unified.cpu.weight"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_MAYBE"}, "linux.seccomp.defaultAction"),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [],
                       "action": "SCMP_ACT_ERRNO"}]}, "linux.seccomp.syscalls[0].names"),
    ("hooks.prestart", [{"path": "/no/such/hook"}], "hooks.prestart[0].path"),
    ("hooks.beforeLunch", [], "hooks.beforeLunch"),
    ("ociVersion", "2.0.0", "ociVersion"),
    ("root.path", "no-such-rootfs", "root.path"),
]


@pytest.mark.parametrize("path, value, named", MALFORMED, ids=[m[2] for m in MALFORMED])
def test_malformed_fields_are_named(spec, tmp_path, path, value, named):
    with pytest.raises(BadConfig) as caught:
        checked(edit(spec, path, value), tmp_path)
    assert named in caught.value.message
    assert "\n" not in caught.value.one_line()
    assert caught.value.exit_code == 80


SYSCTLS = [
    # (the namespaces, the key, whether it is the container's own)
    (["network"], "net.ipv4.ip_forward", True),
    (["network"], "net/ipv4/ip_forward", True),        # runc's other spelling
    (["ipc"], "kernel.shmmax", True),
    (["ipc"], "fs.mqueue.msg_max", True),
    (["uts"], "kernel.domainname", True),
    (["ipc", "uts"], "net.ipv4.ip_forward", False),    # the host's network namespace
    (["network", "uts"], "kernel.msgmax", False),      # the host's IPC namespace
    (["network"], "kernel.domainname", False),         # the host's UTS namespace
    ([{"type": "network", "path": "/proc/self/ns/net"}], "net.ipv4.ip_forward", False),
]


@pytest.mark.parametrize("namespaces, key, own", SYSCTLS)
def test_a_sysctl_is_set_only_in_a_namespace_the_host_does_not_share(spec, tmp_path, namespaces,
                                                                     key, own):
    """Otherwise the container's write would change the host's value (runc's rule)."""
    spec["linux"]["namespaces"] = [{"type": "mount"}] + [
        kind if isinstance(kind, dict) else {"type": kind} for kind in namespaces]
    spec["linux"]["sysctl"] = {key: "1"}
    spec.pop("hostname", None)
    if own:
        checked(spec, tmp_path)
        return
    with pytest.raises(BadConfig) as caught:
        checked(spec, tmp_path)
    assert f"linux.sysctl {key} needs a" in caught.value.message
    assert caught.value.exit_code == 80


UNSUPPORTED = [
    ("process.apparmorProfile", "docker-default"),
    ("process.selinuxLabel", "system_u:system_r:container_t:s0"),
    ("linux.mountLabel", "system_u:object_r:container_file_t:s0"),
    ("linux.intelRdt", {"closID": "x"}),
    ("linux.resources.blockIO", {"weight": 10}),
    ("linux.resources.blockIO", {"throttleReadIOPSDevice": [{"major": 8, "minor": 0,
                                                             "rate": 10}]}),
    ("linux.resources.unified", {"memory.high": "1000000"}),
    ("linux.resources.memory", {"swappiness": 10}),
    ("linux.resources.cpu", {"realtimeRuntime": 1000}),
    ("linux.resources.hugepageLimits", [{"pageSize": "2MB", "limit": 1}]),
    ("linux.personality", {"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]}),
    ("linux.seccomp", {"defaultAction": "SCMP_ACT_NOTIFY"}),
    ("windows", {"layerFolders": []}),
    ("linux.namespaces", [{"type": "uts"}, {"type": "user", "path": "/proc/self/ns/user"}]),
    ("linux.namespaces", [{"type": "uts"}, {"type": "time"}]),
    ("mounts.0.options", ["ridmap"]),
    ("mounts.0.options", ["rnoatime"]),
]


@pytest.mark.parametrize("path, value", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_fields_are_refused_by_name(spec, tmp_path, path, value):
    with pytest.raises(UnsupportedConfig) as caught:
        checked(edit(spec, path, value), tmp_path)
    assert path in caught.value.message or path.split(".")[-1] in caught.value.message
    assert caught.value.exit_code == 81


def test_empty_values_of_unsupported_fields_are_fine(spec, tmp_path):
    """Engines write "" and {} for what they do not use: that asks nothing."""
    spec["process"]["apparmorProfile"] = ""
    spec["linux"]["mountLabel"] = ""
    spec["linux"]["resources"]["blockIO"] = {}
    checked(spec, tmp_path)


def test_an_unknown_field_is_ignored_with_a_warning(spec, tmp_path, capsys):
    """The runtime spec: runtimes MUST NOT generate an error on unknown
    properties (runtime-tools' misc_props checks it). Not silently, though."""
    spec["frobnicate"] = True
    spec["linux"]["frobnicate"] = {"a": 1}
    assert checked(spec, tmp_path) is spec
    assert capsys.readouterr().err.splitlines() == [
        "minict-oci: warning: config.json: unknown field frobnicate ignored",
        "minict-oci: warning: config.json: unknown field linux.frobnicate ignored"]


def test_load_names_a_missing_or_broken_file(tmp_path):
    with pytest.raises(BadConfig, match="does not exist"):
        config_file.load(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(BadConfig, match="not readable JSON"):
        config_file.load(tmp_path)


def test_features_lists_what_config_accepts():
    shown = json.loads(json.dumps(features()))
    assert "createRuntime" in shown["hooks"]
    assert "rbind" in shown["mountOptions"] and "tmpcopyup" in shown["mountOptions"]
    assert shown["linux"]["cgroup"]["systemd"] is False
    assert "SCMP_ACT_ERRNO" in shown["linux"]["seccomp"]["actions"]
    assert "user" in shown["linux"]["namespaces"] and "time" not in shown["linux"]["namespaces"]
    assert shown["linux"]["seccomp"]["supportedFlags"] == ["SECCOMP_FILTER_FLAG_LOG"]
    assert shown["linux"]["mountExtensions"]["idmap"]["enabled"] is False
    assert "rro" in shown["mountOptions"] and "nosymfollow" in shown["mountOptions"]


def test_spec_is_runc_s_starting_config():
    spec = default_spec()
    assert spec["process"]["args"] == ["sh"] and spec["process"]["terminal"] is True
    assert [ns["type"] for ns in spec["linux"]["namespaces"]] == \
        ["pid", "network", "ipc", "uts", "mount"]
    rootless = default_spec(rootless=True)
    assert {"type": "user"} in rootless["linux"]["namespaces"]
    assert rootless["linux"]["uidMappings"][0]["size"] == 1
