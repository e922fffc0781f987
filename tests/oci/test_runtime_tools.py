"""minict-oci, checked by a reading of the runtime spec that is not ours:
the OCI runtime-tools validator (tests/helpers/runtime_tools.py).

- What `minict-oci spec` writes gets no finding that runc's own `runc spec`
  does not also get. (What minict's engine writes is checked in
  tests/runtime/test_bundle.py.)
- `minict-oci state` answers as the spec's state schema says.
- Each config the validator calls invalid, minict-oci refuses: one line,
  exit 80 (BadConfig), and nothing left behind."""

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.runtime_tools import findings
from tests.helpers.waiting import wait_for
from .conftest import MINICT_OCI

pytestmark = pytest.mark.root


def spec_of(runtime: str, directory: Path, *flags) -> Path:
    directory.mkdir()
    (directory / "rootfs").mkdir()
    subprocess.run([runtime, "spec", *flags], cwd=directory, check=True, timeout=30)
    return directory


@pytest.mark.parametrize("flags", [[], ["--rootless"]], ids=["default", "rootless"])
def test_minict_oci_spec_gets_no_finding_runc_s_own_spec_does_not(oci_validator, tmp_path, flags):
    ours = findings(oci_validator, spec_of(MINICT_OCI, tmp_path / "ours", *flags))
    runc_s = findings(oci_validator, spec_of("runc", tmp_path / "runc", *flags))
    assert set(ours) <= set(runc_s), set(ours) - set(runc_s)


def test_state_answers_match_the_spec_s_state_schema(oci_validator, bundle, tmp_path):
    bundle.process("sleep", "60")
    bundle.oci("create", "-b", str(bundle.path), "c1", check=True)
    answers = {"created": bundle.oci("state", "c1", check=True).stdout}
    bundle.oci("start", "c1", check=True)
    answers["running"] = bundle.oci("state", "c1", check=True).stdout
    bundle.oci("kill", "c1", "KILL", check=True)
    wait_for(lambda: bundle.state("c1")["status"] == "stopped", 10, "c1 stopped")
    answers["stopped"] = bundle.oci("state", "c1", check=True).stdout
    for status, answer in answers.items():
        assert json.loads(answer)["status"] == status
        (tmp_path / f"{status}.json").write_text(answer)
        assert findings(oci_validator, "--state", tmp_path / f"{status}.json") == [], status


def _with(path: str, value):
    """A change to config.json: set the field at dotted PATH to VALUE."""
    def change(config):
        *parents, last = path.split(".")
        part = config
        for name in parents:
            part = part[int(name)] if isinstance(part, list) else part.setdefault(name, {})
        part[last] = value
    return change


def _without_namespace(kind):
    def change(config):
        config["linux"]["namespaces"] = [n for n in config["linux"]["namespaces"]
                                         if n["type"] != kind]
    return change


def _and(*changes):
    def change(config):
        for each in changes:
            each(config)
    return change


CHAR_DEVICE = {"path": "/dev/mine", "type": "c", "major": 1, "minor": 3}

INVALID = {
    "relative-cwd": _with("process.cwd", "tmp"),
    "env-without-equals": _with("process.env", ["PATH=/bin", "JUSTANAME"]),
    "no-args": _with("process.args", []),
    "unknown-capability": _with("process.capabilities.bounding", ["CAP_CHOWN", "CAP_NOPE"]),
    "effective-not-permitted": _with("process.capabilities.effective", ["CAP_SYS_ADMIN"]),
    "rlimit-twice": _with("process.rlimits", [{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 64},
                                              {"type": "RLIMIT_NOFILE", "hard": 32, "soft": 32}]),
    "rlimit-soft-above-hard": _with("process.rlimits",
                                    [{"type": "RLIMIT_NOFILE", "hard": 64, "soft": 128}]),
    "unknown-rlimit": _with("process.rlimits", [{"type": "RLIMIT_NOPE", "hard": 1, "soft": 1}]),
    "relative-mount-destination": _with("mounts.0.destination", "proc"),
    # (a program there, from the bundle: the validator crashes on a hook it cannot find)
    "relative-hook-path": _with("hooks", {"prestart": [{"path": "rootfs/bin/true"}]}),
    "relative-namespace-path": _with("linux.namespaces", [{"type": "pid"}, {"type": "mount"},
                                                          {"type": "network", "path": "ns/net"}]),
    "namespace-twice": _with("linux.namespaces", [{"type": "pid"}, {"type": "mount"},
                                                  {"type": "pid"}]),
    "mappings-without-user-namespace": _with("linux.uidMappings",
                                             [{"containerID": 0, "hostID": 1000, "size": 1}]),
    "net-sysctl-without-network-namespace": _and(_without_namespace("network"),
                                                 _with("linux.sysctl",
                                                       {"net.ipv4.ip_forward": "1"})),
    "ipc-sysctl-without-ipc-namespace": _and(_without_namespace("ipc"),
                                             _with("linux.sysctl", {"kernel.msgmax": "8192"})),
    "hostname-without-uts-namespace": _and(_without_namespace("uts"), _with("hostname", "x")),
    "unknown-device-type": _with("linux.devices", [dict(CHAR_DEVICE, type="x")]),
    "device-twice": _with("linux.devices", [CHAR_DEVICE, dict(CHAR_DEVICE, minor=5)]),
    "relative-masked-path": _with("linux.maskedPaths", ["proc/kcore"]),
    "relative-readonly-path": _with("linux.readonlyPaths", ["proc/sys"]),
    "no-root-directory": _with("root.path", "missing"),
}


@pytest.mark.parametrize("change", INVALID.values(), ids=INVALID.keys())
def test_what_the_validator_calls_invalid_minict_oci_refuses(oci_validator, bundle, change):
    config = copy.deepcopy(bundle.config)
    bundle.path.mkdir()                 # the conventional layout: bundle/rootfs
    shutil.move(config["root"]["path"], bundle.path / "rootfs")
    config["root"]["path"] = "rootfs"
    change(config)
    bundle.config = config
    bundle.write()
    assert findings(oci_validator, bundle.path, cwd=bundle.path), "the validator finds it valid"
    refused = bundle.oci("create", "-b", str(bundle.path), "c1")
    assert refused.returncode == 80, refused
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert not (bundle.state_root / "c1").exists()
