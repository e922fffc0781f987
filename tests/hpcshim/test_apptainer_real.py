"""hpcshim on a real Apptainer (1.1.9 from the project's kit: tests/helpers/apptainer.py).

Every path of the Apptainer backend runs a container for real and is
checked from inside it: exec, binds, variables (with and without --cleanenv),
exit codes and signals, SIF files and the archives Apptainer converts
itself, and --gpu on the fake driver tree (drivertree.py) for the selection
cases the ch-run backend has. run and shell are in test_run_shell.py (with
ch-run's), minict: images in test_images.py, the Slurm cases in
test_slurm.py, the ordinary-user ones in test_apptainer_user.py.
"""

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hpcshim.backends import ExecRequest, find_runtime, render
from hpcshim.plan import DeviceNode, Plan
from tests.helpers.apptainer import find_apptainer
from tests.helpers.images import busybox_image
from tests.hpcshim.drivertree import DRIVER_VERSION, LIB64_DIR
from tests.hpcshim.test_images import builder

pytestmark = [pytest.mark.root]

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")
NUL_SEPARATED = 'for v in "$@"; do printf "%s\\0" "$v"; done'


@pytest.fixture(scope="module")
def apptainer():
    return find_apptainer()


@pytest.fixture
def env(apptainer, shim_env, tmp_path):
    return apptainer.env(shim_env, tmp_path)


def shim(env, *args, timeout=120, **kw):
    return subprocess.run([HPCSHIM, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def printed_values(result) -> list[str]:
    """What NUL_SEPARATED printed, one value each."""
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\0")[:-1]


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ---- a plain container --------------------------------------------------------------------

def test_exit_status_passes_through_and_stderr_stays_quiet(env, busybox_rootfs):
    result = shim(env, "exec", "--runtime", "apptainer", busybox_rootfs, "sh", "-c", "echo in; exit 42")
    assert (result.returncode, result.stdout, result.stderr) == (42, "in\n", "")
    killed = shim(env, "exec", "--runtime", "apptainer", busybox_rootfs, "sh", "-c", "kill -TERM $$")
    assert killed.returncode == -signal.SIGTERM    # Apptainer dies of the same signal (a shell shows 143)
    missing = shim(env, "exec", "--runtime", "apptainer", busybox_rootfs, "no-such-command")
    assert missing.returncode == 255 and '"no-such-command": executable file not found' in missing.stderr


def test_a_signal_to_hpcshim_reaches_the_workload(env, busybox_rootfs):
    # hpcshim has exec'd Apptainer, whose starter forwards the signal into the container
    script = 'trap "echo got TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done'
    proc = subprocess.Popen([HPCSHIM, "exec", "--runtime", "apptainer", str(busybox_rootfs), "sh", "-c", script],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (7, "got TERM\n"), err


def test_binds_with_a_space_and_read_only(env, busybox_rootfs, tmp_path):
    data = tmp_path / "my data"
    data.mkdir()
    (data / "in.txt").write_text("from the host\n")
    script = "cat '/in put/in.txt'; cat /ro/in.txt; echo new > '/in put/out.txt'; touch /ro/x || echo ro-refused"
    result = shim(env, "exec", "--runtime", "apptainer", "-B", f"{data}:/in put", "-B", f"{data}:/ro:ro",
                  busybox_rootfs, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from the host\nfrom the host\nro-refused\n"
    assert "Read-only file system" in result.stderr
    assert (data / "out.txt").read_text() == "new\n" and not (data / "x").exists()


def test_env_values_follow_apptainers_own_rules(env, busybox_rootfs):
    """--env values reach Apptainer as the user wrote them (no CSV splitting of
    commas and quotes, which Apptainer's own --env flag does), and Apptainer
    evaluates them: $HOME is the container's home, \\$ is a literal $."""
    script = NUL_SEPARATED.replace('"$@"', '"$A" "$B" "$C" "$D" "$E"')
    result = shim(env, "exec", "--runtime", "apptainer", "--env", "A=x,y", "--env", "B=$HOME/data",
                  "--env", r"C=\$HOME", "--env", 'D="quoted"', "--env", "E=k=v,w",
                  busybox_rootfs, "sh", "-c", script)
    values = printed_values(result)
    assert values == ["x,y", "/root/data", "$HOME", '"quoted"', "k=v,w"]


def nasty_values() -> dict[str, str]:
    """Values with every character Apptainer's shell would act on, and random mixes of them."""
    rng = random.Random(22)
    pieces = ["\\", "$", "`", '"', "'", "a", "{", "}", "(", ")", "\n", " ", "=", ",", "*", "~", "!", "#", ";"]
    values = {"SLURM_ISSUE": "a $HOME `id` b", "SLURM_BACKSLASH_DOLLAR": "\\$X", "SLURM_PAIRS": "\\\\\\",
              "PMIX_QUOTES": "\\\"q\\\"", "OMPI_SUBST": "$(id -u) ${HOME:-x}", "SLURM_EMPTY": "",
              "SLURM_TRAILING": "end\\"}
    for i in range(12):
        values[f"SLURM_RANDOM_{i}"] = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 16)))
    return values


def test_cleanenv_keeps_job_variables_byte_for_byte(env, busybox_rootfs):
    kept = nasty_values()
    host = dict(env, UNRELATED="dropped", **kept)
    names = sorted(kept) + ["UNRELATED"]
    script = NUL_SEPARATED.replace('"$@"', " ".join(f'"${{{n}-unset}}"' for n in names))
    result = shim(host, "exec", "--cleanenv", "--runtime", "apptainer", busybox_rootfs, "sh", "-c", script)
    assert printed_values(result) == [kept[n] for n in sorted(kept)] + ["unset"]
    assert result.stderr == ""


def test_without_cleanenv_host_values_arrive_as_they_are(env, busybox_rootfs):
    kept = nasty_values()
    script = NUL_SEPARATED.replace('"$@"', " ".join(f'"${n}"' for n in sorted(kept)))
    result = shim(dict(env, **kept), "exec", "--runtime", "apptainer", busybox_rootfs, "sh", "-c", script)
    assert printed_values(result) == [kept[n] for n in sorted(kept)]
    assert result.stderr == ""


# ---- images Apptainer takes itself ----------------------------------------------------------

@pytest.fixture(scope="module")
def archives(tmp_path_factory, busybox_rootfs) -> dict:
    """The image of test_images.py (a layer whose whiteout deletes /etc/doomed) in each format."""
    d = tmp_path_factory.mktemp("apptainer-images")
    img = builder(busybox_rootfs)
    return {"oci-archive": img.write_oci_archive(d / "demo-oci.tar", "demo:1"),
            "docker-archive": img.write_docker_archive(d / "demo-docker.tar", ["demo:1"]),
            "oci-layout": img.write_oci_layout(d / "layout", "demo:1")}


@pytest.mark.parametrize("given", ["{oci-archive}", "oci-archive:{oci-archive}", "{docker-archive}",
                                   "docker-archive:{docker-archive}:demo:1", "oci:{oci-layout}"])
def test_archives_and_layouts_run_as_apptainer_converts_them(env, archives, given):
    image = given.format(**archives)
    probe = "cat /etc/motd; test -e /etc/doomed && echo doomed-present || echo doomed-absent; echo $LD_LIBRARY_PATH"
    result = shim(env, "exec", "--runtime", "apptainer", image, "sh", "-c", probe)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["hello from layer 2", "doomed-absent"]
    assert lines[2].startswith("/opt/imglib")               # the image's own Env, applied by Apptainer
    ran = shim(env, "run", "--runtime", "apptainer", image)   # the image's CMD (cat /etc/motd)
    assert (ran.returncode, ran.stdout) == (0, "hello from layer 2\n"), ran.stderr


def test_sif_built_from_a_sandbox_and_from_a_docker_archive(env, apptainer, busybox_rootfs, tmp_path):
    archive = busybox_image(busybox_rootfs).write_docker_archive(tmp_path / "bb.tar", ["bb:1"])
    for name, source in (("sandbox.sif", str(busybox_rootfs)), ("docker.sif", f"docker-archive:{archive}")):
        built = subprocess.run([str(apptainer.exe), "build", str(tmp_path / name), source], env=env,
                               capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, built.stderr
        result = shim(env, "exec", "--runtime", "apptainer", tmp_path / name, "sh", "-c",
                      "grep -q ' / ' /proc/self/mountinfo && echo rooted; exit 5")
        assert (result.returncode, result.stdout) == (5, "rooted\n"), result.stderr


# ---- GPUs on the fake driver tree ---------------------------------------------------------

INSIDE = ("md5sum /.singularity.d/libs/libcuda.so.1; echo CVD=$CUDA_VISIBLE_DEVICES; "
          "echo ORDER=$CUDA_DEVICE_ORDER; echo LDP=$LD_LIBRARY_PATH; nvidia-smi -L | head -1; "
          "ls /.singularity.d/libs | wc -l; test -S /run/nvidia-persistenced/socket && echo SOCKET; "
          "ls /lib/firmware/nvidia/*/; echo NODES=$(ls /dev | grep -c '^nvidia'); exit 3")


@pytest.mark.parametrize("contain", [False, True])
def test_gpu_injection_seen_from_inside(env, driver_tree, busybox_rootfs, contain):
    gpu_env = dict(env, HPCSHIM_HOST_ROOT=str(driver_tree.root), CUDA_VISIBLE_DEVICES="3,1")
    flags = ["--contain"] if contain else []
    result = shim(gpu_env, "exec", "--gpu", *flags, "--runtime", "apptainer", busybox_rootfs, "sh", "-c", INSIDE)
    assert (result.returncode, result.stderr) == (3, ""), result.stderr   # the run itself succeeds
    out = result.stdout
    assert f"{md5(driver_tree.root / LIB64_DIR / f'libcuda.so.{DRIVER_VERSION}')}  " \
           "/.singularity.d/libs/libcuda.so.1" in out
    # CUDA's numbering, in the order given: among all GPUs with the host's /dev; under
    # --contain among the two it sees, in PCI order (GPU 1 is 0 there, GPU 3 is 1)
    assert ("CVD=1,0" if contain else "CVD=3,1") in out
    assert "ORDER=PCI_BUS_ID" in out and "LDP=/.singularity.d/libs:" in out
    assert "GPU 0: Tesla V100-PCIE-16GB" in out and "\n8\n" in out and "SOCKET" in out
    assert "gsp_ga10x.bin" in out
    assert "NODES=0" in out          # the tree's nodes cannot be devices in a container


def test_contain_cleanenv_on_a_bare_rootfs(env, driver_tree, busybox_rootfs):
    """The command hpcshim hands Apptainer 1.x (the driver's libraries by soname
    through --containlibs, no bind of the tree's nodes), and what arrives."""
    from tests.hpcshim.test_singularity_bare_rootfs import lib_paths, split_argv
    gpu_env = dict(env, HPCSHIM_HOST_ROOT=str(driver_tree.root), CUDA_VISIBLE_DEVICES="2", SLURM_JOB_ID="8")
    args = ["exec", "--gpu", "--contain", "--cleanenv", "--runtime", "apptainer"]
    dry = shim(gpu_env, *args, "--dry-run", busybox_rootfs, "true")
    assert dry.returncode == 0, dry.stderr
    argv = dry.stdout.split()
    containlibs, binds = split_argv(argv)
    assert sorted(containlibs) == lib_paths(driver_tree.root)
    assert not [b for b in binds if b.startswith(str(driver_tree.root / "dev"))]
    assert not (busybox_rootfs / ".singularity.d").exists()
    script = "echo $CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER $LD_LIBRARY_PATH $SLURM_JOB_ID ${UNRELATED-unset}"
    result = shim(dict(gpu_env, UNRELATED="x"), *args, busybox_rootfs, "sh", "-c", script)
    assert (result.returncode, result.stderr) == (0, "")
    # GPU 2 is the only one the container may see: 0 there
    assert result.stdout.split() == ["0", "PCI_BUS_ID", "/.singularity.d/libs:/.singularity.d/libs", "8", "unset"]


def test_verbose_says_what_apptainer_1x_really_does(env, driver_tree, busybox_rootfs):
    gpu_env = dict(env, HPCSHIM_HOST_ROOT=str(driver_tree.root))
    result = shim(gpu_env, "exec", "-v", "--gpu", "--contain", "--runtime", "apptainer", busybox_rootfs, "true")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("hpcshim: Apptainer 1.1: 8 device node(s) of the --host-root tree NOT in the "
                               "container, and not handed over: Apptainer 1.1 refuses the whole run")
               for line in lines), lines
    assert "hpcshim: Apptainer 1.1: 8 libraries in /.singularity.d/libs; LD_LIBRARY_PATH set by hpcshim " \
           "through APPTAINERENV_ (images without /.singularity.d/env get no other)" in lines
    assert not any("bound into the minimal /dev" in line for line in lines)


@pytest.mark.parametrize("variables, contain, expected", [
    ({"NVIDIA_VISIBLE_DEVICES": "1"}, False, "CVD=1"),
    ({"CUDA_VISIBLE_DEVICES": "GPU-e953c3c5"}, False, "CVD=2"),       # a UUID prefix: GPU 2 in PCI order
    ({"CUDA_VISIBLE_DEVICES": "GPU-e953c3c5"}, True, "CVD=0"),
    # GRES 2 and 3 are /dev/nvidia2 and /dev/nvidia3, the 4th and 3rd GPU in PCI order
    ({"SLURM_JOB_GPUS": "2,3"}, False, "CVD=3,2"),
    ({"SLURM_JOB_GPUS": "2,3"}, True, "CVD=1,0"),
])
def test_gpu_selection_cases(env, driver_tree, busybox_rootfs, variables, contain, expected):
    gpu_env = dict(env, HPCSHIM_HOST_ROOT=str(driver_tree.root), **variables)
    flags = ["--contain"] if contain else []
    result = shim(gpu_env, "exec", "--gpu", *flags, "--runtime", "apptainer", busybox_rootfs,
                  "sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES")
    assert (result.returncode, result.stdout.strip()) == (0, expected), result.stderr


def test_the_loader_finds_the_drivers_libcuda(env, driver_tree, busybox_rootfs, tmp_path):
    """A real dynamic loader in a glibc image without /.singularity.d (a bare rootfs)
    resolves libcuda.so.1 to the injected driver library, not the image's stub."""
    from tests.runtime.test_gpu_plan import IMAGE_LIB_PATH, build_probe_rootfs
    image = build_probe_rootfs(tmp_path / "probe", busybox_rootfs)
    assert not (image / ".singularity.d").exists()
    gpu_env = dict(env, HPCSHIM_HOST_ROOT=str(driver_tree.root))
    result = shim(gpu_env, "exec", "--gpu", "--cleanenv", "--env", f"LD_LIBRARY_PATH={IMAGE_LIB_PATH}",
                  "--runtime", "apptainer", image, "gpuprobe", "libcuda.so.1")
    assert result.stdout.strip() == (f"libcuda.so.1|64|/.singularity.d/libs/libcuda.so.1|"
                                     f"libcuda.so 64-bit {DRIVER_VERSION}"), result.stderr


# ---- device nodes from the real /dev ----------------------------------------------------------

def real_node(path: str) -> DeviceNode:
    st = os.stat(path)
    return DeviceNode(path, path, os.major(st.st_rdev), os.minor(st.st_rdev), st.st_mode & 0o777)


@pytest.mark.parametrize("contain", [False, True])
def test_nodes_of_the_real_dev(env, apptainer, busybox_rootfs, contain):
    """A Plan naming real nodes (/dev/fuse; /dev/net/tun, in a directory like
    /dev/nvidia-caps): with --contain each is bound into the minimal /dev and
    can be opened; without, the host's /dev is there whole and nothing is bound
    (a bind would be remounted nodev: opening the node would fail)."""
    nodes = [p for p in ("/dev/fuse", "/dev/net/tun") if os.path.exists(p)]
    if not nodes:
        pytest.skip("neither /dev/fuse nor /dev/net/tun on this host")
    plan = Plan(vendor="nvidia", driver_version="0", devices=[real_node(p) for p in nodes],
                env={"CUDA_VISIBLE_DEVICES": "0"}, env_if_host_dev={"CUDA_VISIBLE_DEVICES": "0"})
    script = "; ".join(f"test -c {p} && exec 3<>{p} && echo opened {p}; "
                       f"grep -q ' {p} ' /proc/self/mountinfo && echo bound {p}" for p in nodes) + "; true"
    request = ExecRequest(str(busybox_rootfs), ["sh", "-c", script], contain=contain, host_env=env)
    command = render(find_runtime("apptainer", env), plan, request)
    assert ("--bind" in command.argv) == contain
    result = subprocess.run(command.argv, env=command.env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (0, "")
    expected = [line for p in nodes for line in [f"opened {p}"] + ([f"bound {p}"] if contain else [])]
    assert result.stdout.splitlines() == expected


# ---- doctor --------------------------------------------------------------------------------

def test_doctor_describes_apptainer_once_and_its_library_directory(env, apptainer, driver_tree):
    """Apptainer installs `singularity` as a link to itself: one runtime, two names."""
    assert os.path.realpath(apptainer.bindir / "singularity") == os.path.realpath(apptainer.exe)
    gpu_env = dict(env, HPCSHIM_HOST_ROOT=str(driver_tree.root), PATH=f"{apptainer.bindir}:/usr/bin:/bin")
    result = shim(gpu_env, "doctor")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    runtimes = next(line for line in out.splitlines() if line.startswith("Runtimes on PATH: "))
    assert runtimes.startswith(f"Runtimes on PATH: apptainer ({apptainer.exe}; also as singularity "
                               f"({apptainer.bindir / 'singularity'}), a link to it: the same runtime)")
    section = out.split("What each runtime does with this plan (exec without --contain):\n", 1)[1]
    assert section.count("Apptainer 1.1: 8 libraries in /.singularity.d/libs") == 1
    assert "Singularity" not in section
    assert ("Libraries (8), each bound under its soname into /.hpcshim/lib (Apptainer, Singularity: "
            "/.singularity.d/libs), which is put first on LD_LIBRARY_PATH:") in out.splitlines()


def test_the_version_is_asked_once_per_executable(env, apptainer, busybox_rootfs, tmp_path):
    """`apptainer --version` is cached by path, size and mtime: a second run asks nothing,
    a changed executable is asked again."""
    wrapper = tmp_path / "bin" / "apptainer"
    wrapper.parent.mkdir()
    log = tmp_path / "asked"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo asked >> {log}\nexec {apptainer.exe} "$@"\n')
    wrapper.chmod(0o755)
    wrapped = dict(env, PATH=f"{wrapper.parent}:{env['PATH']}")
    for _ in range(3):
        assert shim(wrapped, "exec", "--runtime", "apptainer", busybox_rootfs, "true").returncode == 0
    assert log.read_text() == "asked\n"
    wrapper.write_text(wrapper.read_text() + "# changed\n")
    assert shim(wrapped, "exec", "--runtime", "apptainer", busybox_rootfs, "true").returncode == 0
    assert log.read_text() == "asked\nasked\n"
