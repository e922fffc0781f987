"""Issue 18: hpcshim on Singularity 3.x with a bare root filesystem.

A plain root-filesystem directory (an unpacked OCI image, ch-convert or
minict output) has no /.singularity.d/env/99-base.sh, the only place where
Singularity 3.4 adds /.singularity.d/libs to LD_LIBRARY_PATH. hpcshim sets
LD_LIBRARY_PATH itself. Singularity cannot be installed here, so: golden
argv/env recorded by a stand-in on PATH (as in test_backends), and a replay
of the recorded library binds and LD_LIBRARY_PATH through the real ch-run on
a glibc image, where a real dynamic loader must find libcuda.so.1 in
/.singularity.d/libs. The same on a real Apptainer: test_apptainer_real.py.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcshim.backends import ExecRequest, apptainer, chrun, minict
from tests.hpcshim.drivertree import DRIVER_VERSION, LIB64_DIR, LIBRARIES64
from tests.hpcshim.test_backends import PLAN, STUB, read_record

HPCSHIM = str(Path(sys.executable).parent / "hpcshim")


@pytest.fixture
def setup(tmp_path, driver_tree):
    """(env, record dir, bare rootfs image, make_stub): the fake host as HPCSHIM_HOST_ROOT."""
    bindir, record, image = tmp_path / "bin", tmp_path / "record", tmp_path / "rootfs"
    for d in (bindir, record, image / "usr/bin"):
        d.mkdir(parents=True)
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "STUB_RECORD": str(record), "HOME": str(tmp_path),
           "HPCSHIM_NO_CACHE": "1", "USER": "root", "HPCSHIM_HOST_ROOT": str(driver_tree.root)}

    def make_stub(name, version):
        (bindir / name).write_text(STUB.format(name=name, version=version))
        (bindir / name).chmod(0o755)
    return env, record, image, make_stub


def lib_paths(root: Path) -> list[str]:
    """The driver tree's libraries as --containlibs lists them (host soname links)."""
    return sorted(f"{root}/{LIB64_DIR}/{soname or stem + '.' + DRIVER_VERSION}"
                  for stem, soname in LIBRARIES64.items())


def split_argv(argv):
    """(flags before the image, containlibs list, binds) of a recorded `exec` argv."""
    containlibs = next(a for a in argv if a.startswith("--containlibs=")).split("=", 1)[1].split(",")
    binds = [argv[i + 1] for i, a in enumerate(argv) if a == "--bind"]
    return containlibs, binds


@pytest.mark.root
def test_singularity_34_golden_on_a_bare_rootfs(setup, driver_tree):
    env, record, image, make_stub = setup
    make_stub("singularity", "singularity version 3.4.2")
    result = subprocess.run([HPCSHIM, "exec", "--gpu", "--runtime", "singularity", "--env", "LD_LIBRARY_PATH=/opt/user",
                             image, "true"], env=dict(env, CUDA_VISIBLE_DEVICES="1"),
                            capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")   # no note on a plain run: stderr is the job's log
    argv, seen = read_record(record)
    assert argv[0] == "exec" and argv[-2:] == [str(image), "true"] and "--env" not in argv
    containlibs, binds = split_argv(argv)
    assert sorted(containlibs) == lib_paths(driver_tree.root)
    assert {k: v for k, v in seen.items() if k.startswith("SINGULARITYENV_")} == {
        "SINGULARITYENV_CUDA_VISIBLE_DEVICES": "1",       # host /dev shared: the host's numbering
        "SINGULARITYENV_CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        # the libs directory first, the user's value after it (the image has none)
        "SINGULARITYENV_LD_LIBRARY_PATH": "/.singularity.d/libs:/opt/user"}
    assert not any(k.startswith("APPTAINERENV_") for k in seen)


@pytest.mark.root
def test_singularity_34_compat32_puts_both_dirs_in_order(setup):
    env, record, image, make_stub = setup
    make_stub("singularity", "singularity version 3.4.2")
    result = subprocess.run([HPCSHIM, "exec", "--gpu", "--compat32", "--runtime", "singularity", image, "true"],
                            env=env, capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
    argv, seen = read_record(record)
    assert seen["SINGULARITYENV_LD_LIBRARY_PATH"] == "/.singularity.d/libs:/.singularity.d/libs32"
    assert any(b.endswith(":/.singularity.d/libs32/libcuda.so.1:ro") for b in split_argv(argv)[1])


@pytest.mark.root
def test_verbose_says_what_singularity_34_really_does(setup):
    env, _record, image, make_stub = setup
    make_stub("singularity", "singularity version 3.4.2")
    result = subprocess.run([HPCSHIM, "exec", "-v", "--gpu", "--contain", "--runtime", "singularity", image, "true"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert not any(line.startswith("hpcshim: note:") for line in lines)   # variables: always SINGULARITYENV_
    assert "hpcshim: found: nvidia driver 550.54.14, 4 GPU(s), 8 device node(s), 8 libraries, " \
           "6 other bind(s)" in lines
    assert any(line.startswith("hpcshim: Singularity 3.4: 8 device node(s) of the --host-root tree NOT in "
                               "the container") and "nodev" in line for line in lines), lines
    assert not any("bound into the minimal /dev" in line for line in lines)
    assert any("8 libraries in /.singularity.d/libs; LD_LIBRARY_PATH set by hpcshim through "
               "SINGULARITYENV_" in line for line in lines)


@pytest.mark.unit
def test_delivery_wording_per_backend_on_a_real_node():
    """PLAN's nodes are the host's own (/dev/...): what each backend does with them."""
    contain = ExecRequest("img", ["true"], contain=True)
    plain = ExecRequest("img", ["true"])
    assert apptainer.delivery(PLAN, contain, "singularity", (3, 4))[0] == \
        "Singularity 3.4: 2 device node(s) bound into the minimal /dev (--contain): /dev/nvidiactl, /dev/nvidia2"
    assert apptainer.delivery(PLAN, plain, "apptainer", (1, 2))[0] == \
        ("Apptainer 1.2: 2 device node(s) present through the host's /dev, which the runtime mounts whole "
         "(not bound: a bind there would be nodev)")
    assert "through APPTAINERENV_" in apptainer.delivery(PLAN, plain, "apptainer", (1, 2))[1]
    assert chrun.delivery(PLAN)[0].startswith("ch-run: 2 device node(s) present through the host's /dev")
    assert minict.delivery(PLAN)[0] == ("minict: 2 device node(s) made in the container's own /dev "
                                        "(no other GPU node is there)")


@pytest.mark.unit
def test_image_ld_library_path_is_kept_after_the_users():
    req = ExecRequest("img", ["true"], env={"LD_LIBRARY_PATH": "/u:/.singularity.d/libs"},
                      image_env={"LD_LIBRARY_PATH": "/usr/local/cuda/lib64:/u"})
    cmd = apptainer.render("apptainer", PLAN, req, ("apptainer", (1, 3)))
    assert cmd.extra_env["APPTAINERENV_LD_LIBRARY_PATH"] == "/.singularity.d/libs:/u:/usr/local/cuda/lib64"


@pytest.mark.root
@pytest.mark.skipif(shutil.which("ch-run") is None, reason="ch-run missing")
def test_recorded_singularity_libs_are_found_by_a_real_loader(setup, busybox_rootfs, tmp_path):
    """Replay what Singularity 3.4 would mount (the recorded --containlibs/--bind into
    /.singularity.d/libs) and the recorded LD_LIBRARY_PATH with the real ch-run on a
    glibc image with no /.singularity.d: the loader resolves the driver's libcuda."""
    from tests.runtime.test_gpu_plan import build_probe_rootfs
    env, record, _image, make_stub = setup
    make_stub("singularity", "singularity version 3.4.2")
    image = build_probe_rootfs(tmp_path / "probe", busybox_rootfs)
    assert not (image / ".singularity.d").exists()
    result = subprocess.run([HPCSHIM, "exec", "--gpu", "--runtime", "singularity", image, "true"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    argv, seen = read_record(record)
    containlibs, binds = split_argv(argv)
    mounts = [(p, "/.singularity.d/libs/" + p.rsplit("/", 1)[1]) for p in containlibs]
    mounts += [tuple(b.split(":")[:2]) for b in binds if ":/.singularity.d/" in b]
    (image / ".singularity.d/libs").mkdir(parents=True)
    for _src, dst in mounts:
        (image / dst.lstrip("/")).touch()
    chrun_argv = ["ch-run", "--unset-env=*"] + [f"--bind={s}:{d}" for s, d in mounts]
    probe = [str(image), "--", "gpuprobe", "libcuda.so.1"]
    found = subprocess.run(chrun_argv + [f"--set-env=LD_LIBRARY_PATH={seen['SINGULARITYENV_LD_LIBRARY_PATH']}"]
                           + probe, env=env, capture_output=True, text=True, timeout=60)
    assert found.stdout.strip() == (f"libcuda.so.1|64|/.singularity.d/libs/libcuda.so.1|"
                                    f"libcuda.so 64-bit {DRIVER_VERSION}"), found.stderr
    # without it (what 3.4 gave a bare rootfs before the fix) the loader finds nothing
    lost = subprocess.run(chrun_argv + probe, env=env, capture_output=True, text=True, timeout=60)
    assert lost.stdout.startswith("libcuda.so.1: not found"), lost.stdout + lost.stderr


@pytest.mark.root
def test_doctor_says_what_each_runtime_on_path_does(setup):
    env, _record, _image, make_stub = setup
    make_stub("singularity", "singularity version 3.4.2")
    result = subprocess.run([HPCSHIM, "doctor"], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("What each runtime does with this plan (exec without --contain):\n", 1)[1]
    assert section.splitlines()[0].startswith(
        "  Singularity 3.4: 8 device node(s) of the --host-root tree NOT in the container")
