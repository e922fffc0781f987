"""The hpcshim command line on this GPU-less machine: doctor, errors, dry runs, exit codes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcshim.cli import parse_binds, parse_env
from hpcshim.errors import BadArgument
from hpcshim.plan import Plan

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")


def run(args, env, timeout=60):
    return subprocess.run([HPCSHIM, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def no_gpu_here():
    return not (Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia/version").exists()
                or Path("/dev/kfd").exists())


needs_no_gpu = pytest.mark.skipif(not no_gpu_here(), reason="this machine has a GPU driver")


@pytest.mark.unit
@needs_no_gpu
def test_doctor_says_plainly_there_is_no_gpu(shim_env):
    result = run(["doctor"], shim_env)
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == "GPU: none - this host has no NVIDIA or AMD GPU driver."
    assert "--gpu=auto` runs without a GPU" in result.stdout
    doc = json.loads(run(["doctor", "--json"], shim_env).stdout)
    assert doc["vendor"] is None and Plan.from_dict(doc).empty


@pytest.mark.unit
@needs_no_gpu
@pytest.mark.parametrize("flag", ["--gpu", "--gpu=nvidia", "--nv", "--gpu=rocm", "--rocm"])
def test_asking_for_a_gpu_without_one_is_a_distinct_error(flag, shim_env, tmp_path):
    result = run(["exec", flag, "--runtime", "ch-run", tmp_path, "true"], shim_env)
    assert result.returncode == 12
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcshim: --gpu")
    assert "--gpu=auto" in lines[0]


@pytest.mark.root
@needs_no_gpu
@pytest.mark.skipif(shutil.which("ch-run") is None, reason="ch-run missing")
def test_gpu_auto_runs_without_a_gpu(shim_env, tmp_path, busybox_rootfs):
    image = tmp_path / "img"
    shutil.copytree(busybox_rootfs, image, symlinks=True)
    result = run(["exec", "--gpu=auto", "--runtime", "ch-run", image, "sh", "-c", "echo in; exit 4"], shim_env)
    assert result.returncode == 4 and result.stdout == "in\n"


@pytest.mark.unit
@pytest.mark.parametrize("args, code, message", [
    (["exec", "--gpu=bogus", "img", "true"], 2, "--gpu takes auto, nvidia, rocm or none"),
    (["exec", "--runtime", "docker", "img", "true"], 2, "invalid choice: 'docker'"),
    (["exec", "--runtime", "ch-run", "img"], 10, "no command given after the image"),
    (["exec", "--runtime", "ch-run", "-B", "relative:/x", "img", "true"], 10, "paths must be absolute"),
    (["exec", "--runtime", "ch-run", "-B", "/nonexistent-hpcshim:/x", "img", "true"], 10, "does not exist"),
    (["exec", "--runtime", "ch-run", "-B", "/tmp:/x:rx", "img", "true"], 10, "is not SRC[:DST[:ro|rw]]"),
    (["exec", "--runtime", "ch-run", "--env", "1BAD=x", "img", "true"], 10, "is not NAME=VALUE"),
    (["exec", "--runtime", "ch-run", "--env", "NOEQUALS", "img", "true"], 10, "is not NAME=VALUE"),
    (["exec", "--runtime", "apptainer", "img", "true"], 20, "`apptainer` is not on PATH"),
    (["exec", "--device", "nvidia.com/gpu", "--runtime", "ch-run", "img", "true"], 33, "is not vendor.com/class=name"),
    (["exec", "--device", "nvidia.com/gpu=0", "--runtime", "ch-run", "img", "true"], 33, "no CDI spec"),
    (["frobnicate"], 2, "invalid choice"),
])
def test_bad_input_one_line_and_distinct_code(args, code, message, shim_env):
    env = dict(shim_env, PATH="/usr/bin:/bin", HPCSHIM_HOST_ROOT="/nonexistent-root")
    result = run(args, env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcshim: ") and message in lines[0]


@pytest.mark.unit
def test_options_end_at_the_image(shim_env, tmp_path):
    # `-B` after the image belongs to the command, as with apptainer exec
    result = run(["exec", "--runtime", "ch-run", "--dry-run", tmp_path, "ls", "-B", "--dry-run"], shim_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f"{tmp_path} -- ls -B --dry-run")


@pytest.mark.unit
def test_parse_env_and_binds(tmp_path):
    assert parse_env(["A=1,B=2", "C=x,y=z,w", "D="]) == {"A": "1", "B": "2", "C": "x", "y": "z,w", "D": ""}
    binds = parse_binds([f"{tmp_path},{tmp_path}:/in:ro", f"{tmp_path}:/rw:rw"])
    assert [(b.src, b.dst, b.ro) for b in binds] == [(str(tmp_path), str(tmp_path), False),
                                                    (str(tmp_path), "/in", True), (str(tmp_path), "/rw", False)]
    with pytest.raises(BadArgument):
        parse_binds([":/x"])


@pytest.mark.root
def test_doctor_and_cdi_generate_on_the_fake_tree(driver_tree, shim_env, tmp_path):
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(driver_tree.root), CUDA_VISIBLE_DEVICES="2")
    doctor = run(["doctor"], env)
    assert doctor.returncode == 0
    assert doctor.stdout.startswith("GPU: nvidia, driver 550.54.14")
    assert "CUDA_VISIBLE_DEVICES='2' -> GPU 2" in doctor.stdout
    assert "libnvidia-futurething.so.1" in doctor.stdout and "directory scan" in doctor.stdout
    plan = Plan.from_json(run(["doctor", "--json"], env).stdout)
    assert [g.minor for g in plan.gpus] == [3]
    # cdi generate ignores the job's selection: one device per GPU, plus all
    out = tmp_path / "nvidia.json"
    result = run(["cdi", "generate", "--output", out], env)
    assert result.returncode == 0, result.stderr
    spec = json.loads(out.read_text())
    assert [d["name"] for d in spec["devices"]] == ["0", "1", "2", "3", "all"]
    bad = run(["cdi", "generate", "--output", tmp_path / "missing-dir" / "x.json"], env)
    assert bad.returncode == 34 and "cannot write" in bad.stderr
    assert not (tmp_path / "missing-dir").exists()


@pytest.mark.unit
@needs_no_gpu
def test_cdi_generate_without_a_gpu(shim_env):
    result = run(["cdi", "generate"], shim_env)
    assert result.returncode == 12 and result.stdout == ""


@pytest.mark.unit
def test_version_and_help(shim_env):
    assert run(["--version"], shim_env).stdout.startswith("hpcshim ")
    helptext = run(["exec", "--help"], shim_env).stdout
    for flag in ("--gpu=auto", "--nv", "--cleanenv", "--contain", "--compat32", "--dry-run", "--device"):
        assert flag in helptext


@pytest.mark.unit
def test_only_the_named_commands_options_are_built():
    from hpcshim.cli import build_parser, command_named
    assert command_named(["exec", "--gpu", "img", "doctor"]) == "exec"
    assert command_named(["--host-root", "exec", "doctor", "--json"]) == "doctor"   # a root named "exec"
    assert command_named(["--host-root=/x", "cdi", "generate"]) == "cdi"
    assert command_named(["--version"]) is None and command_named(["frobnicate"]) is None
    args = build_parser("doctor").parse_args(["--host-root", "exec", "doctor", "--json"])
    assert (args.command, args.host_root, args.json) == ("doctor", "exec", True)
    listing = build_parser("exec").format_help()
    assert all(name in listing for name in ("exec", "run", "shell", "doctor", "cdi"))
