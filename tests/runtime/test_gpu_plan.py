"""`minict run --gpu-plan FILE` and `minict run --gpu`: hpcshim's Plan in a real container.

No GPU here, so hpcshim's fake driver tree (tests/hpcshim/drivertree.py:
real mknod nodes, gcc-built ELF libraries named like the driver's, an
ld.so.cache by the real ldconfig) stands in for the host, and the checks
are made from inside the container (crun's test style): the device nodes
with their numbers, the library files and their content, the environment,
the mount flags, and a glibc program that dlopen()s the driver library by
its soname, the way CUDA programs find libcuda.so.1.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcshim.build import GpuRequest, build_plan
from hpcshim.plan import Bind as PlanBind
from hpcshim.plan import DeviceNode as PlanDevice
from hpcshim.plan import Library, Plan
from minicontainer.errors import BadGpuPlan
from minicontainer.runtime.gpu import injection_from, with_library_path
from minicontainer.runtime.flags import Bind, DeviceNode
from tests.hpcshim.drivertree import (DRIVER_VERSION, LIB64_DIR, LibraryStore, build_driver_tree,
                                     compile_library)
from tests.runtime.conftest import MINICT, Minict, container_dirs, mount_table

PROBE_SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

/* Load each library named on the command line by its name alone, as a CUDA
   program loads libcuda.so.1: the dynamic loader must find it on its own. */
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        void *handle = dlopen(argv[i], RTLD_NOW);
        if (!handle) {
            printf("%s: not found: %s\n", argv[i], dlerror());
            return 1;
        }
        int (*fn)(void) = (int (*)(void))dlsym(handle, "hpcshim_fn");
        const char *marker = (const char *)dlsym(handle, "hpcshim_marker");
        Dl_info info;
        if (!fn || !marker || !dladdr((void *)fn, &info)) {
            printf("%s: no hpcshim_fn in it\n", argv[i]);
            return 2;
        }
        printf("%s|%d|%s|%s\n", argv[i], fn(), info.dli_fname, marker);
    }
    return 0;
}
"""
IMAGE_LIB_PATH = "/opt/app/lib"   # the probe image's own LD_LIBRARY_PATH (its ENV)


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


# ---- a glibc image: busybox + the loader + libc + the probe ------------------------------------

def shared_libraries(executable: Path) -> list[str]:
    """The host files `executable` needs, from ldd (the loader and libc)."""
    out = subprocess.run(["ldd", str(executable)], check=True, capture_output=True, text=True).stdout
    # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
    return [word for line in out.splitlines() for word in line.split()[:3] if word.startswith("/")]


def build_probe_rootfs(dest: Path, busybox_rootfs: Path) -> Path:
    """A small glibc image: busybox for the shell, /usr/bin/gpuprobe (gcc-built,
    dynamically linked) with the host's ld-linux and libc at their paths, and
    the image's own stand-in libcuda.so.1 in /opt/app/lib, which a driver
    library injected by the Plan must beat."""
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    source = dest.parent / "gpuprobe.c"
    source.write_text(PROBE_SOURCE)
    probe = dest / "usr/bin/gpuprobe"
    subprocess.run(["gcc", "-O2", "-o", str(probe), str(source)], check=True, capture_output=True)
    source.unlink()
    for path in shared_libraries(probe):
        target = dest / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)   # the file itself, not the host's symlink
    own = dest / IMAGE_LIB_PATH.lstrip("/")
    own.mkdir(parents=True)
    compile_library(own / "libcuda.so.1", "libcuda.so.1", "the image's own libcuda stub")
    return dest


def import_gpu_images(base: Path, busybox_rootfs: Path) -> Path:
    """A minict store root under `base` with busybox:latest and probe:latest
    (the dlopen() probe, whose own LD_LIBRARY_PATH names IMAGE_LIB_PATH)."""
    m = Minict(base / "root", base / "import-state")
    m("import", "-c", 'CMD ["sh"]', busybox_rootfs, "busybox:latest", check=True)
    probe = build_probe_rootfs(base / "probe-rootfs", busybox_rootfs)
    m("import", "-c", 'CMD ["gpuprobe"]', "-c", f"ENV LD_LIBRARY_PATH={IMAGE_LIB_PATH}",
      probe, "probe:latest", check=True)
    return base / "root"


# ---- fixtures ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gpu_host(tmp_path_factory) -> Path:
    """A 4-GPU fake driver tree (see drivertree.py)."""
    if os.geteuid() != 0:
        pytest.skip("the fake driver tree needs root (mknod)")
    base = tmp_path_factory.mktemp("gpu-host")
    return build_driver_tree(base / "host", LibraryStore(base / "libs")).root


@pytest.fixture(scope="module")
def gpu_images(tmp_path_factory, busybox_rootfs) -> Path:
    """A store root of this module's own with busybox:latest and probe:latest."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return import_gpu_images(tmp_path_factory.mktemp("gpu-images"), busybox_rootfs)


@pytest.fixture
def gmt(gpu_images, tmp_path, gpu_host) -> Minict:
    """minict on the GPU module's images, a state dir of this test's own, the
    fake host as HPCSHIM_HOST_ROOT and no GPU selection from the caller."""
    m = Minict(gpu_images, tmp_path / "state")
    for name in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS",
                 "GPU_DEVICE_ORDINAL", "SLURM_JOB_ID"):
        m.env.pop(name, None)
    m.env.update(HPCSHIM_HOST_ROOT=str(gpu_host), HPCSHIM_CACHE_DIR=str(tmp_path / "shim-cache"))
    return m


# index (PCI bus order) -> minor of /dev/nvidiaN in the fake tree: 0->0, 1->1, 2->3, 3->2
def write_plan(path: Path, host: Path, **env) -> Plan:
    plan = build_plan(GpuRequest(mode="any", root=str(host), env={"HPCSHIM_NO_CACHE": "1", **env}))
    path.write_text(plan.to_json())
    return plan


def leftovers(m: Minict) -> list:
    """What a finished `--rm` container (or a refused one) could have left."""
    return container_dirs(m.root) + (sorted((m.state / "containers").iterdir())
                                     if (m.state / "containers").exists() else [])


# ---- unit: Plan -> binds, devices, env ---------------------------------------------------------

@pytest.mark.unit
def test_injection_maps_every_field_of_the_plan(tmp_path):
    lib = tmp_path / "libcuda.so.550.54.14"
    lib32 = tmp_path / "libcuda32.so"
    smi = tmp_path / "nvidia-smi"
    for path in (lib, lib32, smi):
        path.write_bytes(b"x")
    plan = Plan(vendor="nvidia",
                devices=[PlanDevice("/dev/nvidia1", "/host/dev/nvidia1", 195, 1, 0o666),
                         PlanDevice("/dev/dri/renderD129", "/x", 226, 129, 0o660)],
                binds=[PlanBind(str(smi), "/usr/bin/nvidia-smi", True, "binary"),
                       PlanBind(str(tmp_path), "/run/x/", False, "socket")],
                libraries=[Library(str(lib), "libcuda.so.1")],
                libraries32=[Library(str(lib32), "libcuda.so.1")],
                env={"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
                env_if_host_dev={"CUDA_VISIBLE_DEVICES": "1"},
                ld_library_path=["/.hpcshim/lib", "/.hpcshim/lib32"])
    got = injection_from(plan)
    assert got.devices == [DeviceNode("/dev/nvidia1", "c", 195, 1, 0o666),
                           DeviceNode("/dev/dri/renderD129", "c", 226, 129, 0o660)]
    assert got.binds == [Bind(str(smi), "/usr/bin/nvidia-smi", True),
                         Bind(str(tmp_path), "/run/x", False),
                         Bind(str(lib), "/.hpcshim/lib/libcuda.so.1", True),      # always read-only
                         Bind(str(lib32), "/.hpcshim/lib32/libcuda.so.1", True)]
    # minict makes its own /dev with only these nodes: `env`, never `envIfHostDev`
    assert got.env == ["CUDA_VISIBLE_DEVICES=0", "CUDA_DEVICE_ORDER=PCI_BUS_ID"]
    assert got.ld_library_path == ["/.hpcshim/lib", "/.hpcshim/lib32"]


@pytest.mark.unit
@pytest.mark.parametrize("env, expected", [
    (["PATH=/bin"], ["PATH=/bin", "LD_LIBRARY_PATH=/.hpcshim/lib:/l32"]),
    (["LD_LIBRARY_PATH=/opt/app/lib", "A=1"], ["LD_LIBRARY_PATH=/.hpcshim/lib:/l32:/opt/app/lib", "A=1"]),
    (["LD_LIBRARY_PATH="], ["LD_LIBRARY_PATH=/.hpcshim/lib:/l32"]),
])
def test_library_path_goes_in_front_and_keeps_the_images(env, expected):
    assert with_library_path(env, ["/.hpcshim/lib", "/l32"]) == expected
    assert with_library_path(env, []) == env


@pytest.mark.unit
@pytest.mark.parametrize("change, words", [
    (lambda p, t: p.libraries.append(Library(str(t / "gone.so"), "libgone.so.1")), "does not exist"),
    (lambda p, t: p.libraries.append(Library(str(t), "libdir.so.1")), "not a regular file"),
    (lambda p, t: p.libraries.append(Library(str(t / "ok"), "../../etc/passwd")), "not a file name"),
    (lambda p, t: p.binds.append(PlanBind(str(t / "ok"), "relative/dst")), "not an absolute path"),
    (lambda p, t: p.binds.append(PlanBind(str(t / "ok"), "/")), "not an absolute path below /"),
    (lambda p, t: p.binds.append(PlanBind("host/relative", "/x")), "not an absolute path"),
    (lambda p, t: p.devices.append(PlanDevice("/etc/nvidia0", "/x", 195, 0, 0o666)), "not under /dev"),
    (lambda p, t: p.devices.append(PlanDevice("/dev/../etc/x", "/x", 195, 0, 0o666)), "not under /dev"),
    (lambda p, t: p.devices.append(PlanDevice("/dev/nvidia0", "/x", 195, 0, 0o20666)), "mode"),
    (lambda p, t: p.env.update({"BAD KEY": "1"}), "invalid variable name"),
])
def test_plans_naming_impossible_things_are_refused(tmp_path, change, words):
    (tmp_path / "ok").write_bytes(b"x")
    plan = Plan(vendor="nvidia")
    change(plan, tmp_path)
    with pytest.raises(BadGpuPlan) as caught:
        injection_from(plan)
    assert words in caught.value.message and caught.value.exit_code == 50


# ---- unit: `--gpu` alone never swallows IMAGE ------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("argv, gpu, plan, image, command", [
    (["--gpu", "busybox", "sh"], "any", None, "busybox", ["sh"]),
    (["--rm", "--gpu=auto", "busybox"], "auto", None, "busybox", []),
    (["--gpu=nvidia", "-e", "--gpu", "img", "x"], "nvidia", None, "img", ["x"]),   # -e's value stays
    (["-ie", "A=1", "--gpu", "img", "--gpu"], "any", None, "img", ["--gpu"]),     # after IMAGE: the command's
    (["-eA=1", "--gpu", "img"], "any", None, "img", []),                        # -e's value attached
    (["--gpu-plan", "/dev/fd/3", "img", "true"], None, "/dev/fd/3", "img", ["true"]),
])
def test_gpu_alone_never_takes_the_image_as_its_mode(argv, gpu, plan, image, command):
    """--gpu's mode must be attached (--gpu=auto): alone it means any GPU,
    and the next word stays IMAGE (cli/containers.py's RunCommand)."""
    from minicontainer.cli.containers import run_cmd
    params = run_cmd.make_context("run", list(argv)).params
    assert (params["image"], list(params["command"])) == (image, command)
    assert (params["gpu"], params["gpu_plan"]) == (gpu, plan)


# ---- real runs: --gpu-plan ------------------------------------------------------------------------

@pytest.mark.root
def test_gpu_plan_devices_libraries_env_and_binds_inside(gmt, gpu_host, tmp_path):
    plan = write_plan(tmp_path / "plan.json", gpu_host, CUDA_VISIBLE_DEVICES="1,3")
    names = [lib.name for lib in plan.libraries]
    script = ("stat -c '%n %F %t:%T %a' /dev/nvidia*; ls /dev | grep -c '^nvidia[0-9]'; "
              "echo CUDA=$CUDA_VISIBLE_DEVICES ORDER=$CUDA_DEVICE_ORDER LD=$LD_LIBRARY_PATH; "
              "cd /.hpcshim/lib && md5sum *; "
              "grep -E ' /(\\.hpcshim|usr/bin/nvidia-smi)' /proc/self/mountinfo | cut -d' ' -f5,6; "
              "echo x >> /.hpcshim/lib/libcuda.so.1 || echo lib-is-read-only; "
              "/usr/bin/nvidia-smi | head -1; exit 7")
    mounts = mount_table()
    result = gmt("run", "--rm", "--gpu-plan", tmp_path / "plan.json", "busybox", "sh", "-c", script)
    assert result.returncode == 7, result.stderr           # the command's exit code, passed through
    out = result.stdout.splitlines()
    # CUDA_VISIBLE_DEVICES=1,3 are the GPUs with minors 1 and 2 (bus order != minor order)
    assert out[:7] == ["/dev/nvidia-modeset character special file c3:fe 666",
                       "/dev/nvidia-uvm character special file eb:0 666",
                       "/dev/nvidia-uvm-tools character special file eb:1 666",
                       "/dev/nvidia1 character special file c3:1 666",
                       "/dev/nvidia2 character special file c3:2 666",
                       "/dev/nvidiactl character special file c3:ff 666",
                       "2"]                                   # /dev/nvidia0 and 3 do not exist
    assert out[7] == "CUDA=0,1 ORDER=PCI_BUS_ID LD=/.hpcshim/lib"
    sums = dict(reversed(line.split()) for line in out[8:8 + len(names)])
    assert sums == {lib.name: md5(lib.src) for lib in plan.libraries}
    assert "libcuda.so.1" in sums and f"libnvidia-gpucomp.so.{DRIVER_VERSION}" in sums
    flags = dict(line.split() for line in out[8 + len(names):-2])
    assert set(flags) == {f"/.hpcshim/lib/{n}" for n in names} | {"/usr/bin/nvidia-smi"}
    assert all(f.split(",")[0] == "ro" for f in flags.values()), flags
    assert out[-2:] == ["lib-is-read-only", "GPU 0: Tesla V100-PCIE-16GB "
                        "(UUID: GPU-8a41a3a5-2a7b-5d6a-7d8a-0f2c1c5e9a3b)"]
    assert mount_table() == mounts and leftovers(gmt) == []
    assert (gpu_host / LIB64_DIR / f"libcuda.so.{DRIVER_VERSION}").read_bytes() == \
        Path(plan.libraries[names.index("libcuda.so.1")].src).read_bytes()


@pytest.mark.root
def test_loader_finds_the_injected_libraries_by_soname(gmt, gpu_host, tmp_path):
    write_plan(tmp_path / "plan.json", gpu_host)
    # Without the plan the loader finds the image's own stub on its LD_LIBRARY_PATH, and no NVML.
    bare = gmt("run", "--rm", "probe", "gpuprobe", "libcuda.so.1", "libnvidia-ml.so.1")
    assert bare.returncode == 1
    assert bare.stdout.splitlines() == [
        f"libcuda.so.1|64|{IMAGE_LIB_PATH}/libcuda.so.1|the image's own libcuda stub",
        "libnvidia-ml.so.1: not found: libnvidia-ml.so.1: cannot open shared object file: "
        "No such file or directory"]
    # With it, the host's driver libraries come first, and the image's path is kept after them.
    result = gmt("run", "--rm", "--gpu-plan", tmp_path / "plan.json", "probe", "sh", "-c",
                 "echo $LD_LIBRARY_PATH; gpuprobe libcuda.so.1 libnvidia-ml.so.1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"/.hpcshim/lib:{IMAGE_LIB_PATH}",
        f"libcuda.so.1|64|/.hpcshim/lib/libcuda.so.1|libcuda.so 64-bit {DRIVER_VERSION}",
        f"libnvidia-ml.so.1|64|/.hpcshim/lib/libnvidia-ml.so.1|libnvidia-ml.so 64-bit {DRIVER_VERSION}"]


@pytest.mark.root
def test_user_env_wins_and_library_path_still_leads(gmt, gpu_host, tmp_path):
    write_plan(tmp_path / "plan.json", gpu_host, CUDA_VISIBLE_DEVICES="2")
    out = gmt.out("run", "--rm", "--gpu-plan", tmp_path / "plan.json",
                  "-e", "CUDA_DEVICE_ORDER=FASTEST_FIRST", "-e", "LD_LIBRARY_PATH=/mine", "busybox",
                  "sh", "-c", "echo $CUDA_VISIBLE_DEVICES $CUDA_DEVICE_ORDER $LD_LIBRARY_PATH; "
                              "ls /dev | grep '^nvidia[0-9]'")
    assert out.splitlines() == ["0 FASTEST_FIRST /.hpcshim/lib:/mine", "nvidia3"]


@pytest.mark.root
def test_plan_from_an_inherited_memory_file(gmt, gpu_host, tmp_path):
    """What `hpcshim exec` does: the plan in a memfd, passed as /dev/fd/N; the
    container itself does not get the descriptor."""
    plan = build_plan(GpuRequest(mode="any", root=str(gpu_host), env={"HPCSHIM_NO_CACHE": "1"}))
    fd = os.memfd_create("plan", 0)
    os.write(fd, plan.to_json().encode())
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        result = subprocess.run([MINICT, "run", "--rm", "--gpu-plan", f"/dev/fd/{fd}", "busybox", "sh", "-c",
                                 "ls /dev | grep -c '^nvidia[0-9]'; ls /proc/self/fd"],
                                env=gmt.env, capture_output=True, text=True, pass_fds=(fd,), timeout=60)
    finally:
        os.close(fd)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "0", "1", "2", "3"]     # 3: ls's own directory fd


# ---- real runs: --gpu (discovery in minict) ----------------------------------------------------------

@pytest.mark.root
def test_gpu_flag_discovers_and_selects_in_process(gmt, gpu_host):
    uuid_of_index_2 = "GPU-e953c3c5-dba7-029e-ce44-7b51417131df"    # minor 3
    result = gmt("--explain", "run", "--rm", "--gpu", "busybox", "sh", "-c",
                 "ls /dev | grep '^nvidia[0-9]'; echo $CUDA_VISIBLE_DEVICES; ls /.hpcshim/lib | wc -l",
                 env={"NVIDIA_VISIBLE_DEVICES": uuid_of_index_2})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nvidia3", "0", "8"]
    explained = result.stderr
    assert f"[explain] engine: GPU plan (found on this host): NVIDIA driver {DRIVER_VERSION}, host GPU(s) 2" \
        in explained
    assert "5 device node(s) in the container's own /dev" in explained
    assert "8 driver libraries bound read-only under /.hpcshim/lib" in explained
    assert "Create /dev/nvidia3 (linux.devices)" in explained and "makedev(195, 3)" in explained
    assert "Bind " in explained and "at /.hpcshim/lib/libcuda.so.1 (read-only)" in explained


@pytest.mark.root
def test_gpu_flag_through_the_click_cli_too(gmt):
    """`python -m minicontainer` parses with click: `--gpu` alone must not eat IMAGE there either."""
    result = subprocess.run([sys.executable, "-m", "minicontainer", "run", "--rm", "--gpu", "busybox",
                             "sh", "-c", "ls /dev | grep -c '^nvidia[0-9]'"],
                            env=gmt.env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "4"), result.stderr


@pytest.mark.root
def test_gpu_auto_without_a_gpu_runs_without(gmt, tmp_path):
    (tmp_path / "no-gpu").mkdir()
    result = gmt("run", "--rm", "--gpu=auto", "busybox", "sh", "-c",
                 "ls /dev | grep -c nvidia; echo cuda=$CUDA_VISIBLE_DEVICES ld=$LD_LIBRARY_PATH; exit 3",
                 env={"HPCSHIM_HOST_ROOT": str(tmp_path / "no-gpu")})
    assert result.returncode == 3, result.stderr
    assert result.stdout.splitlines() == ["0", "cuda= ld="]


@pytest.mark.root
@pytest.mark.parametrize("flag, words", [
    ("--gpu", "minict run --gpu asked for a GPU but this host has no NVIDIA or AMD GPU driver"),
    ("--gpu=nvidia", "--gpu=nvidia asked for a GPU but this host has no NVIDIA driver"),
])
def test_gpu_without_a_gpu_is_one_clear_line(gmt, tmp_path, flag, words):
    (tmp_path / "no-gpu").mkdir()
    mounts = mount_table()
    result = gmt("run", "--rm", flag, "busybox", "true", env={"HPCSHIM_HOST_ROOT": str(tmp_path / "no-gpu")})
    assert result.returncode == 51
    line = one_line(result.stderr)
    assert line.startswith("minict: ") and words in line and "--gpu=auto" in line
    assert mount_table() == mounts and leftovers(gmt) == []


@pytest.mark.root
def test_gpu_selection_naming_a_missing_gpu_is_refused(gmt):
    mounts = mount_table()
    result = gmt("run", "--rm", "--gpu", "busybox", "true", env={"CUDA_VISIBLE_DEVICES": "7"})
    assert result.returncode == 52
    assert one_line(result.stderr).startswith("minict: --gpu: CUDA_VISIBLE_DEVICES='7' asks for GPU 7")
    assert mount_table() == mounts and leftovers(gmt) == []


# ---- bad input: one line, its own code, nothing left behind ---------------------------------------

def _plan_text(gpu_host: Path, tmp_path: Path, how: str) -> str | None:
    plan = build_plan(GpuRequest(mode="any", root=str(gpu_host), env={"HPCSHIM_NO_CACHE": "1"}))
    doc = plan.to_dict()
    if how == "version":
        doc["hpcshimPlanVersion"] = 2
    elif how == "field":
        del doc["devices"][0]["major"]
    elif how == "library":
        doc["libraries"][0]["src"] = str(tmp_path / "vanished.so")
    elif how == "json":
        return '{"hpcshimPlanVersion": 1, "vendor": '
    elif how == "missing":
        return None
    return json.dumps(doc)


@pytest.mark.root
@pytest.mark.parametrize("how, words", [
    ("missing", "cannot read it: No such file or directory"),
    ("json", "the GPU plan is not JSON"),
    ("version", "unsupported GPU plan version 2"),
    ("field", "missing or mistypes a field"),
    ("library", "vanished.so does not exist on this host"),
])
def test_bad_gpu_plans_are_one_line_and_leave_nothing(gmt, gpu_host, tmp_path, how, words):
    path = tmp_path / "plan.json"
    text = _plan_text(gpu_host, tmp_path, how)
    if text is not None:
        path.write_text(text)
    mounts = mount_table()
    result = gmt("run", "--rm", "--gpu-plan", path, "busybox", "true")
    assert result.returncode == 50 and result.stdout == ""
    line = one_line(result.stderr)
    assert line.startswith(f"minict: --gpu-plan {path}: " if how in ("missing", "json", "version", "field")
                           else "minict: the GPU plan's library source") and words in line, line
    assert mount_table() == mounts and leftovers(gmt) == []


@pytest.mark.root
@pytest.mark.parametrize("args, words", [
    (["--gpu=bogus"], "--gpu=bogus is not a GPU mode"),
    (["--gpu=auto", "--gpu-plan", "/dev/null"], "--gpu and --gpu-plan both say which GPUs to use"),
])
def test_bad_gpu_flags(gmt, args, words):
    result = gmt("run", "--rm", *args, "busybox", "true")
    assert result.returncode == 27 and words in one_line(result.stderr)
    assert leftovers(gmt) == []


# ---- hpcshim is imported only when a GPU flag asks for it ------------------------------------------------------------------------------

@pytest.mark.root
def test_a_run_without_gpu_flags_imports_no_gpu_code(gmt):
    code = ("import sys; from minicontainer.cli import main; "
            "sys.argv = ['minict', 'run', '--rm', 'busybox', 'true']; main()")
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=gmt.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
                if line.startswith("import time:")]
    assert "minicontainer.runtime.create" in imported                       # the log is really there
    assert not [m for m in imported if m.startswith("hpcshim") or m == "minicontainer.runtime.gpu"]
