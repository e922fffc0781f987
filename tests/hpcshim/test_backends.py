"""Golden commands for Apptainer 1.x / Singularity 3.x and minict, from one Plan.

Singularity cannot be installed here (no package, no sources in the kit), and
the command line for versions other than the real Apptainer 1.1.9 of
test_apptainer_real.py can only be compared with golden values: version
detection and the exec hand-off are tested against a tiny stand-in script on
PATH that prints a real `--version` line and records the argv and environment
it was started with. Everything the Apptainer backend does also runs for
real in test_apptainer_real.py.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from hpcshim.backends import ExecRequest, find_runtime, kept_host_env
from hpcshim.backends import apptainer, minict
from hpcshim.errors import BadArgument, RuntimeNotFound, RuntimeUnsupported
from hpcshim.plan import Bind, DeviceNode, Library, Plan

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")

PLAN = Plan(
    vendor="nvidia", driver_version="550.54.14",
    devices=[DeviceNode("/dev/nvidiactl", "/dev/nvidiactl", 195, 255, 0o666),
             DeviceNode("/dev/nvidia2", "/dev/nvidia2", 195, 2, 0o666)],
    binds=[Bind("/usr/bin/nvidia-smi", "/usr/bin/nvidia-smi", True, "binary"),
           Bind("/run/nvidia-persistenced/socket", "/run/nvidia-persistenced/socket", False, "socket")],
    libraries=[Library("/usr/lib64/libcuda.so.550.54.14", "libcuda.so.1", "/usr/lib64/libcuda.so.1"),
               Library("/usr/lib64/libnvidia-gpucomp.so.550.54.14", "libnvidia-gpucomp.so.550.54.14",
                       "/usr/lib64/libnvidia-gpucomp.so.550.54.14"),
               Library("/opt/drv/libnvidia-ml.so.550.54.14", "libnvidia-ml.so.1", None)],
    env={"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
    env_if_host_dev={"CUDA_VISIBLE_DEVICES": "3"},
    ld_library_path=["/.hpcshim/lib"],
)
HOST_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/u", "SLURM_JOB_ID": "77", "SLURM_NTASKS": "4",
            "PMIX_RANK": "0", "PMI_SIZE": "4", "OMPI_COMM_WORLD_SIZE": "4", "CUDA_VISIBLE_DEVICES": "3",
            "UNRELATED": "x"}


def request(**kw):
    base = dict(image="docker://nvcr.io/nvidia/pytorch:24.01-py3", command=["python", "train.py"],
                binds=[Bind("/scratch", "/data", True)], env={"OMP_NUM_THREADS": "4"},
                host_env=dict(HOST_ENV))
    base.update(kw)
    return ExecRequest(**base)


@pytest.mark.unit
def test_apptainer_1x_golden_cleanenv_contain():
    cmd = apptainer.render("/usr/bin/apptainer", PLAN, request(cleanenv=True, contain=True),
                           ("apptainer", (1, 2)))
    assert cmd.argv == [
        "/usr/bin/apptainer", "exec", "--cleanenv", "--contain",
        "--containlibs=/usr/lib64/libcuda.so.1,/usr/lib64/libnvidia-gpucomp.so.550.54.14",
        "--bind", "/scratch:/data:ro",
        "--bind", "/dev/nvidiactl", "--bind", "/dev/nvidia2",
        "--bind", "/opt/drv/libnvidia-ml.so.550.54.14:/.singularity.d/libs/libnvidia-ml.so.1:ro",
        "--bind", "/usr/bin/nvidia-smi:/usr/bin/nvidia-smi:ro",
        "--bind", "/run/nvidia-persistenced/socket",
        "docker://nvcr.io/nvidia/pytorch:24.01-py3", "python", "train.py"]
    # every variable as APPTAINERENV_* (what --env becomes inside Apptainer); --cleanenv
    # would drop the launcher's variables, so they go over that way too
    assert cmd.extra_env == {"APPTAINERENV_SLURM_JOB_ID": "77", "APPTAINERENV_SLURM_NTASKS": "4",
                             "APPTAINERENV_PMIX_RANK": "0", "APPTAINERENV_PMI_SIZE": "4",
                             "APPTAINERENV_OMPI_COMM_WORLD_SIZE": "4",
                             "APPTAINERENV_CUDA_VISIBLE_DEVICES": "0",
                             "APPTAINERENV_CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                             "APPTAINERENV_OMP_NUM_THREADS": "4",
                             "APPTAINERENV_LD_LIBRARY_PATH": "/.singularity.d/libs"}
    assert cmd.env["APPTAINERENV_PMIX_RANK"] == "0" and cmd.env["UNRELATED"] == "x"
    assert cmd.env["CUDA_VISIBLE_DEVICES"] == "3"          # --cleanenv: the host's copy warns of nothing
    assert cmd.display().startswith("env APPTAINERENV_SLURM_JOB_ID=77 ")


@pytest.mark.unit
def test_apptainer_without_contain_uses_host_dev_numbering():
    cmd = apptainer.render("apptainer", PLAN, request(image="app.sif", binds=[], env={}),
                           ("apptainer", (1, 3)))
    assert cmd.argv == [
        "apptainer", "exec",
        "--containlibs=/usr/lib64/libcuda.so.1,/usr/lib64/libnvidia-gpucomp.so.550.54.14",
        "--bind", "/opt/drv/libnvidia-ml.so.550.54.14:/.singularity.d/libs/libnvidia-ml.so.1:ro",
        "--bind", "/usr/bin/nvidia-smi:/usr/bin/nvidia-smi:ro",
        "--bind", "/run/nvidia-persistenced/socket",
        # no device binds: the host's /dev is mounted, so CUDA counts among all GPUs
        "app.sif", "python", "train.py"]
    assert cmd.extra_env == {"APPTAINERENV_CUDA_VISIBLE_DEVICES": "3",
                             "APPTAINERENV_CUDA_DEVICE_ORDER": "PCI_BUS_ID",
                             "APPTAINERENV_LD_LIBRARY_PATH": "/.singularity.d/libs"}
    # the host's own CUDA_VISIBLE_DEVICES is left out: Apptainer would warn it is not forwarded
    assert cmd.unset_env == ["CUDA_VISIBLE_DEVICES"] and "CUDA_VISIBLE_DEVICES" not in cmd.env
    assert cmd.display().startswith("env --unset=CUDA_VISIBLE_DEVICES APPTAINERENV_CUDA_VISIBLE_DEVICES=3 ")


@pytest.mark.unit
def test_values_hpcshim_passes_on_are_escaped_and_env_values_are_not():
    req = request(image="app.sif", binds=[], env={"MINE": "$HOME"}, cleanenv=True,
                  host_env=dict(HOST_ENV, SLURM_X="a $HOME `id` \\$"))
    cmd = apptainer.render("apptainer", PLAN, req, ("apptainer", (1, 1)))
    assert cmd.extra_env["APPTAINERENV_SLURM_X"] == "a \\$HOME \\`id\\` \\\\${?:+}\\$"
    assert cmd.extra_env["APPTAINERENV_MINE"] == "$HOME"           # Apptainer's own rules
    assert cmd.container_env["SLURM_X"] == "a $HOME `id` \\$"     # what the workload gets


@pytest.mark.unit
@pytest.mark.parametrize("value, written", [
    ("plain", "plain"), ("$", "\\$"), ("`", "\\`"), ('"', '"'), ("\\", "\\\\"),
    ("\\a", "\\\\a"), ("\\$", "\\\\${?:+}\\$"), ("\\\\", "\\\\${?:+}\\\\"),
    ('\\"', '\\\\${?:+}"'), ("end\\", "end\\\\")])
def test_literal(value, written):
    assert apptainer.literal(value) == written


@pytest.mark.unit
def test_singularity_38_evaluates_and_singularity_35_does_not():
    req = request(cleanenv=True, host_env=dict(HOST_ENV, SLURM_X="$HOME"))
    new = apptainer.render("singularity", PLAN, req, ("singularity", (3, 8)))
    assert "--env" not in new.argv and new.extra_env["SINGULARITYENV_CUDA_VISIBLE_DEVICES"] == "3"
    assert new.extra_env["SINGULARITYENV_SLURM_X"] == "\\$HOME"
    assert not any(k.startswith("APPTAINERENV_") for k in new.extra_env)
    old = apptainer.render("singularity", PLAN, req, ("singularity", (3, 5)))
    assert old.extra_env["SINGULARITYENV_SLURM_X"] == "$HOME"


@pytest.mark.unit
def test_singularity_35_golden_uses_singularityenv():
    cmd = apptainer.render("/opt/singularity/bin/singularity", PLAN, request(cleanenv=True),
                           ("singularity", (3, 5)))
    assert "--env" not in cmd.argv
    assert cmd.argv[:4] == ["/opt/singularity/bin/singularity", "exec", "--cleanenv",
                            "--containlibs=/usr/lib64/libcuda.so.1,/usr/lib64/libnvidia-gpucomp.so.550.54.14"]
    assert cmd.extra_env == {
        "SINGULARITYENV_SLURM_JOB_ID": "77",
        "SINGULARITYENV_SLURM_NTASKS": "4", "SINGULARITYENV_PMIX_RANK": "0", "SINGULARITYENV_PMI_SIZE": "4",
        "SINGULARITYENV_OMPI_COMM_WORLD_SIZE": "4",
        "SINGULARITYENV_CUDA_VISIBLE_DEVICES": "3", "SINGULARITYENV_CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "SINGULARITYENV_OMP_NUM_THREADS": "4", "SINGULARITYENV_LD_LIBRARY_PATH": "/.singularity.d/libs"}


@pytest.mark.unit
def test_keep_list():
    assert kept_host_env(HOST_ENV) == {k: v for k, v in HOST_ENV.items()
                                       if k not in ("PATH", "HOME", "UNRELATED")}


@pytest.mark.unit
def test_minict_golden_argv_and_plan():
    req = request(image="busybox", command=["sh", "-c", "nvidia-smi"])
    cmd = minict.render("/usr/bin/minict", PLAN, req, "/dev/fd/3")
    assert cmd.argv == ["/usr/bin/minict", "run", "--rm", "--network", "host", "--ipc", "host",
                        "--ulimit", f"memlock={minict.memlock_value()}", "--gpu-plan", "/dev/fd/3", "busybox",
                        "sh", "-c", "nvidia-smi"]
    folded = minict.plan_for_minict(PLAN, req)
    assert Bind("/scratch", "/data", True, "user") in folded.binds
    assert folded.env["CUDA_VISIBLE_DEVICES"] == "0"      # the Plan's, renumbered, not the host's 3
    assert folded.env["SLURM_JOB_ID"] == "77" and folded.env["OMP_NUM_THREADS"] == "4"
    assert "UNRELATED" not in folded.env
    assert PLAN.binds == [b for b in folded.binds if b.kind != "user"]   # the original is untouched


# ---- the stand-in runtimes on PATH ----------------------------------------

STUB = """#!/bin/sh
# Stand-in for {name} (not installable here): prints a real --version line and
# records how it was started, then exits with $STUB_EXIT.
if [ "$1" = "--version" ]; then echo "{version}"; exit 0; fi
for a in "$@"; do printf '%s\\0' "$a"; done > "$STUB_RECORD/argv"
env -0 > "$STUB_RECORD/env"
exit "${{STUB_EXIT:-0}}"
"""


@pytest.fixture
def stub_path(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    record = tmp_path / "record"
    record.mkdir()

    def make(name, version):
        path = bindir / name
        path.write_text(STUB.format(name=name, version=version))
        path.chmod(0o755)
        return path

    env = {"PATH": f"{bindir}:/usr/bin:/bin", "STUB_RECORD": str(record), "HOME": str(tmp_path),
           "HPCSHIM_NO_CACHE": "1", "USER": "root"}
    return make, env, record


def read_record(record):
    argv = (record / "argv").read_bytes().split(b"\0")[:-1]
    env = dict(e.split(b"=", 1) for e in (record / "env").read_bytes().split(b"\0") if b"=" in e)
    return [a.decode() for a in argv], {k.decode(): v.decode() for k, v in env.items()}


@pytest.mark.unit
@pytest.mark.parametrize("line, expected", [
    ("apptainer version 1.2.5", ("apptainer", (1, 2))),
    ("apptainer version 1.3.0-rc.1", ("apptainer", (1, 3))),
    ("singularity-ce version 3.11.4", ("singularity", (3, 11))),
    ("singularity version 3.5.3", ("singularity", (3, 5))),
    ("SingularityPRO version 3.9.7", ("singularity", (3, 9))),
])
def test_version_detection(stub_path, line, expected):
    make, env, _record = stub_path
    assert apptainer.detect_version(str(make("apptainer", line)), env) == expected


@pytest.mark.unit
@pytest.mark.parametrize("line, error", [("singularity version 2.6.1", RuntimeUnsupported),
                                         ("something else", RuntimeUnsupported)])
def test_unusable_versions(stub_path, line, error):
    make, env, _record = stub_path
    with pytest.raises(error) as info:
        apptainer.detect_version(str(make("singularity", line)), env)
    assert info.value.exit_code == 21


@pytest.mark.unit
def test_auto_prefers_apptainer_then_singularity(stub_path):
    make, env, _record = stub_path
    with pytest.raises(RuntimeNotFound):
        find_runtime("auto", {"PATH": str(Path(env["PATH"].split(":")[0]))})
    make("singularity", "singularity version 3.8.7")
    assert find_runtime("auto", env)[0] == "singularity"
    make("apptainer", "apptainer version 1.2.5")
    assert find_runtime("auto", env)[0] == "apptainer"
    with pytest.raises(BadArgument):
        find_runtime("docker", env)


@pytest.mark.unit
def test_exec_hands_over_argv_env_and_exit_code(stub_path, tmp_path):
    make, env, record = stub_path
    make("apptainer", "apptainer version 1.2.5")
    env.update({"SLURM_JOB_ID": "9", "PMIX_RANK": "1", "STUB_EXIT": "7"})
    result = subprocess.run([HPCSHIM, "exec", "--cleanenv", "--env", "A=1,B=x,y", "-B", f"{tmp_path}:/w:ro",
                             "app.sif", "python", "-c", "print(1)"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 7, result.stderr       # the workload's status, passed through
    argv, seen_env = read_record(record)
    assert argv == ["exec", "--cleanenv", "--bind", f"{tmp_path}:/w:ro", "app.sif", "python", "-c", "print(1)"]
    assert seen_env["APPTAINERENV_SLURM_JOB_ID"] == "9" and seen_env["APPTAINERENV_PMIX_RANK"] == "1"
    assert seen_env["APPTAINERENV_A"] == "1" and seen_env["APPTAINERENV_B"] == "x,y"


@pytest.mark.unit
def test_singularity_35_exec_gets_singularityenv(stub_path):
    make, env, record = stub_path
    make("singularity", "singularity version 3.5.3")
    result = subprocess.run([HPCSHIM, "exec", "--runtime", "singularity", "--env", "X=1", "img.sif", "true"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    argv, seen_env = read_record(record)
    assert argv == ["exec", "img.sif", "true"] and seen_env["SINGULARITYENV_X"] == "1"


@pytest.mark.unit
def test_minict_exec_passes_the_plan_as_an_inherited_fd(stub_path, tmp_path):
    make, env, record = stub_path
    stub = make("minict", "minict 0.1.0")
    # This stand-in also copies the plan it was given, to prove the fd is readable in the child.
    stub.write_text(stub.read_text().replace('exit "${STUB_EXIT:-0}"',
                                             'cat "${10}" > "$STUB_RECORD/plan"\nexit 3'))
    env["SLURM_JOB_ID"] = "5"
    result = subprocess.run([HPCSHIM, "exec", "--runtime", "minict", "--env", "K=V", "-B", f"{tmp_path}:/w",
                             "busybox", "sh", "-c", "true"], env=env, capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    argv, _seen = read_record(record)
    assert argv[:10] == ["run", "--rm", "--network", "host", "--ipc", "host", "--ulimit",
                         f"memlock={minict.memlock_value()}", "--gpu-plan", argv[9]]
    assert argv[9].startswith("/dev/fd/") and argv[10:] == ["busybox", "sh", "-c", "true"]
    plan = Plan.from_json((record / "plan").read_text())
    assert plan.vendor is None                  # no --gpu: no GPU, but the user's binds/env
    assert plan.env == {"SLURM_JOB_ID": "5", "K": "V"}
    assert plan.binds == [Bind(str(tmp_path), "/w", False, "user")]
