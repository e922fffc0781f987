"""The seccomp filter's plan and the filter libseccomp builds from it,
without loading it (no root needed; the real containers are in test_run.py)."""

import os
import sys

import pytest
import seccomp   # libseccomp's own bindings; scripts/setup.sh links them into .venv

from minicontainer import syscalls as sc
from minicontainer.errors import BadArgument, RunFailed
from minicontainer.runtime import capabilities as caps
from minicontainer.oci import process
from minicontainer.runtime import bundle, syscall_filter
from minicontainer.runtime.engine_record import EngineRecord

pytestmark = pytest.mark.unit


def spec_with(capabilities=caps.DOCKER_DEFAULT, **fields):
    """(an EngineRecord with `fields`, the process's capabilities)"""
    base = dict(id="0" * 64, image_ref="busybox", image_id="sha256:x", layer_dirs=[])
    return EngineRecord(**{**base, **fields}), capabilities


def narrated_install(made) -> tuple[sc.RecordingKernel, list[str]]:
    """The one way a container's filter is loaded: the plan as config.json's
    linux.seccomp (runtime/bundle.py), loaded by the runtime (oci/process.py)."""
    r, w = os.pipe()
    kernel = sc.RecordingKernel(sc.Narrator(True, fd=w))
    process.load_seccomp(kernel, bundle.security_of(*made).get("seccomp"), "last")
    os.close(w)
    with os.fdopen(r) as f:
        return kernel, f.read().splitlines()


def pseudo_code(syscall_filter_object, tmp_path) -> str:
    """libseccomp's own text rendering of a filter (what it would compile to BPF)."""
    path = tmp_path / "filter.pfc"
    with open(path, "w") as f:
        syscall_filter_object.export_pfc(f)
    return path.read_text()


def test_security_opts():
    assert syscall_filter.parse_security_opts(()) == "default"
    assert syscall_filter.parse_security_opts(["seccomp=unconfined"]) == "unconfined"
    with pytest.raises(BadArgument, match="seccomp profile files are not supported"):
        syscall_filter.parse_security_opts(["seccomp=/etc/profile.json"])
    with pytest.raises(BadArgument, match="unsupported --security-opt 'apparmor=unconfined'"):
        syscall_filter.parse_security_opts(["apparmor=unconfined"])


def test_the_default_plan_refuses_namespaces_mounts_and_the_keyring():
    plan = syscall_filter.plan_for(caps.DOCKER_DEFAULT)
    assert {"keyctl", "add_key", "unshare", "setns", "mount", "io_uring_setup", "bpf",
            "open_by_handle_at", "init_module"} <= set(plan.denied)
    assert plan.clone_checked and plan.lifted == {}
    assert "clone" not in plan.denied and "ptrace" not in plan.denied


def test_a_capability_given_to_the_container_opens_what_it_is_for():
    plan = syscall_filter.plan_for([*caps.DOCKER_DEFAULT, "CAP_SYS_ADMIN", "CAP_SYS_TIME"])
    assert not {"mount", "unshare", "setns", "clock_settime", "bpf"} & set(plan.denied)
    assert {"keyctl", "init_module", "io_uring_setup"} <= set(plan.denied)
    assert not plan.clone_checked
    assert "mount" in plan.lifted["CAP_SYS_ADMIN"] and "clone3" in plan.lifted["CAP_SYS_ADMIN"]
    assert plan.lifted["CAP_SYS_TIME"] == ["settimeofday", "clock_settime", "clock_adjtime"]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the table's names are x86_64's")
def test_every_listed_call_is_one_libseccomp_knows():
    names = [name for calls, _, _ in syscall_filter.DENIED for name in calls]
    unknown = [n for n in names if seccomp.resolve_syscall(seccomp.Arch.NATIVE, n) < 0]
    assert unknown == []
    for _, lifted_by, _ in syscall_filter.DENIED:
        assert set(lifted_by) <= set(caps.NAMES)


def test_the_loaded_filter_refuses_the_planned_calls_on_every_abi(tmp_path):
    kernel, lines = narrated_install(spec_with())
    [(built,)] = kernel.named("load_seccomp")
    text = pseudo_code(built, tmp_path)
    assert text.count('# filter for arch') == 3        # x86_64, and the 32-bit x86 and x32 ABIs
    for name in ("keyctl", "unshare", "mount", "io_uring_setup", "clone"):
        assert f'filter for syscall "{name}"' in text
    assert "action ERRNO(1);" in text and "action ERRNO(38);" in text   # EPERM; ENOSYS (clone3)
    assert f"& 0x{sc.CLONE_NEWUSER:08x}" in text                          # clone's flags are read
    assert "action ALLOW;" in text and 'syscall "ptrace"' not in text
    [line] = [x for x in lines if "seccomp(" in x]
    assert "SECCOMP_SET_MODE_FILTER" in line and "keyctl" in line and "ENOSYS for 1 call: clone3" in line


@pytest.mark.parametrize("fields", [{"privileged": True}, {"seccomp": "unconfined"}])
def test_privileged_and_unconfined_load_no_filter(fields):
    kernel, lines = narrated_install(spec_with(**fields))
    assert kernel.named("load_seccomp") == []
    assert lines == ["[explain] No linux.seccomp in the config: no system call filter"]


def test_a_call_this_libseccomp_does_not_know_is_said_not_filtered(monkeypatch):
    monkeypatch.setattr(syscall_filter, "DENIED",
                        [*syscall_filter.DENIED, (("minict_no_such_call",), (), "a test")])
    kernel, lines = narrated_install(spec_with())
    assert len(kernel.named("load_seccomp")) == 1
    assert any("does not know minict_no_such_call: left out" in line for line in lines)
    assert "minict_no_such_call" not in [x for x in lines if "seccomp(" in x][0]


def test_missing_bindings_are_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "seccomp", None)     # import seccomp -> ImportError
    with pytest.raises(RunFailed, match="libseccomp's Python bindings are not installed") as caught:
        narrated_install(spec_with())
    assert "python3-seccomp" in caught.value.hint and "seccomp=unconfined" in caught.value.hint
