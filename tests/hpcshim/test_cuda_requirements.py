"""Will this image run on this node? NVIDIA_REQUIRE_CUDA against the driver.

The parser and the verdicts on real NGC strings first (no root); then the
command line on the fake driver tree (tests/hpcshim/drivertree.py) at two
driver versions - 550.54.14 with V100s (CUDA 12.4) and 470.82.01 with K40s,
the newest driver an old Kepler node can have (CUDA 11.4) - with images made
by the project's tools: OCI and docker archives (tests/helpers/images.py),
an image in minict's store, and directories carrying Charliecloud's
/ch/environment, run for real by ch-run.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpcshim.discovery.capability import CudaSupport, compute_capability, cuda_for_driver
from hpcshim.plan import Gpu, Plan
from hpcshim.requirements import Requirement, _parse_exports, check, read_requirements
from tests.hpcshim.conftest import minict_store_env
from tests.helpers.apptainer import find_apptainer
from tests.helpers.images import Entry, ImageBuilder, tar_from_dir, tar_of
from tests.hpcshim.test_backends import read_record, stub_path  # noqa: F401 (fixture)

BIN = Path(sys.executable).parent
HPCSHIM = str(BIN / "hpcshim")

# NGC's PyTorch 22.03 (CUDA 11.6): CUDA 11.6, or a Tesla on one of four older
# data-centre branches (the image's forward-compatibility libraries run there).
PYTORCH_2203 = ("cuda>=11.6 brand=tesla,driver>=418,driver<419 brand=tesla,driver>=440,driver<441 "
                "brand=tesla,driver>=450,driver<451 brand=tesla,driver>=460,driver<461")
# nvidia/cuda:10.0-base
CUDA_100 = "cuda>=10.0 brand=tesla,driver>=384,driver<385 brand=tesla,driver>=410,driver<411"
# nvidia/cuda:12.2.0-base-ubuntu22.04 (its form: every brand, on the 470 and 525 branches)
BRANDS = ("tesla", "unknown", "nvidia", "nvidiartx", "geforce", "geforcertx", "quadro", "quadrortx",
          "titan", "titanrtx")
CUDA_122 = "cuda>=12.2 " + " ".join(f"brand={b},driver>={d},driver<{d + 1}" for d in (470, 525) for b in BRANDS)

K40_GPUS = (("0000:02:00.0", 0, "GPU-2e1c7a54-5d0e-6f4e-1b8e-3c7f5a9d2e10", "Tesla K40m"),
            ("0000:03:00.0", 1, "GPU-6b3d9f12-8a4c-2e7b-9c1d-4f6e8a2b3c57", "Tesla K40m"))
OLD_DRIVER = "470.82.01"


def plan(driver: str, model: str = "Tesla V100-PCIE-16GB", count: int = 2) -> Plan:
    return Plan(vendor="nvidia", driver_version=driver,
                gpus=[Gpu(index=i, minor=i, model=model) for i in range(count)])


# ---- the tables -----------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("driver, cuda", [
    ("550.54.14", CudaSupport("12.4", False)), ("550.54.15", CudaSupport("12.4", False)),
    ("550.54.13", CudaSupport("12.3", False)), ("470.82.01", CudaSupport("11.4", False)),
    ("418.87.01", CudaSupport("10.1", False)), ("535.104.05", CudaSupport("12.2", False)),
    ("580.65.06", CudaSupport("13.0", False)), ("590.10", CudaSupport("13.0", True)),
    ("340.108", None), ("abc", None), (None, None)])
def test_cuda_version_of_a_driver(driver, cuda):
    assert cuda_for_driver(driver) == cuda


@pytest.mark.unit
@pytest.mark.parametrize("model, capability", [
    ("Tesla K40m", "3.5"), ("Tesla K80", "3.7"), ("Tesla V100-PCIE-16GB", "7.0"),
    ("Tesla V100S-PCIE-32GB", "7.0"), ("Tesla T4", "7.5"), ("A100-SXM4-40GB", "8.0"),
    ("NVIDIA A100 80GB PCIe", "8.0"), ("NVIDIA H100 80GB HBM3", "9.0"), ("NVIDIA GH200 480GB", "9.0"),
    ("NVIDIA L40S", "8.9"), ("NVIDIA GeForce RTX 3090", None), ("Quadro RTX 6000", None),
    ("NVIDIA RTX A6000", None), ("Tesla M2090", None), (None, None)])
def test_compute_capability_only_from_names_nvidia_lists(model, capability):
    assert compute_capability(model) == capability


# ---- parsing ---------------------------------------------------------------------------------

@pytest.mark.unit
def test_ngc_strings_parse_into_alternatives_of_conditions():
    req = Requirement("NVIDIA_REQUIRE_CUDA", PYTORCH_2203)
    assert [[c.text for c in term] for term in req.terms] == [
        ["cuda>=11.6"], ["brand=tesla", "driver>=418", "driver<419"], ["brand=tesla", "driver>=440", "driver<441"],
        ["brand=tesla", "driver>=450", "driver<451"], ["brand=tesla", "driver>=460", "driver<461"]]
    assert [(c.name, c.op, c.value) for c in req.terms[1]] == [("brand", "=", "tesla"), ("driver", ">=", "418"),
                                                               ("driver", "<", "419")]
    assert len(Requirement("NVIDIA_REQUIRE_CUDA", CUDA_122).terms) == 21
    assert len(Requirement("NVIDIA_REQUIRE_CUDA", CUDA_100).terms) == 3
    # a property nobody knows is skipped (as the toolkit does), extra spaces are nothing
    assert [[c.text for c in t] for t in Requirement("X", "  cuda>=11.0  os=linux,driver>=450 ").terms] == \
        [["cuda>=11.0"], ["driver>=450"]]


@pytest.mark.unit
def test_which_variables_count():
    env = {"NVIDIA_REQUIRE_CUDA": "cuda>=11.0", "NVIDIA_REQUIRE_ARCH": "arch>=7.0",
           "NVIDIA_REQUIRE_JETPACK": "l4t>=35", "PATH": "/bin"}
    assert [r.variable for r in read_requirements(env)] == ["NVIDIA_REQUIRE_ARCH", "NVIDIA_REQUIRE_CUDA"]
    assert read_requirements(dict(env, NVIDIA_DISABLE_REQUIRE="true")) == []
    assert len(read_requirements(dict(env, NVIDIA_DISABLE_REQUIRE="no"))) == 2     # not a true word
    legacy = read_requirements({"CUDA_VERSION": "9.0.176"})       # the oldest images: CUDA_VERSION only
    assert [(r.variable, r.text) for r in legacy] == [("CUDA_VERSION", "cuda>=9.0")]
    assert read_requirements({"CUDA_VERSION": "12.4.1", "NVIDIA_REQUIRE_CUDA": "cuda>=12.4"})[0].text == "cuda>=12.4"
    for bad in ("cuda", "cuda>>11", "cuda>=", ">=11", "cuda>=eleven", "driver<4x9"):
        with pytest.raises(ValueError, match="NVIDIA_REQUIRE_CUDA: "):
            read_requirements({"NVIDIA_REQUIRE_CUDA": bad})


# ---- verdicts --------------------------------------------------------------------------------

@pytest.mark.unit
def test_a_new_driver_meets_cuda_directly():
    verdict = check("img", {"NVIDIA_REQUIRE_CUDA": PYTORCH_2203}, plan("550.54.14"))
    assert verdict.status == "ok"
    assert verdict.has == "driver 550.54.14, CUDA 12.4, GPU 0,1 Tesla V100-PCIE-16GB (compute capability 7.0)"
    assert "  cuda>=11.6: yes (CUDA 12.4)" in verdict.lines
    assert "  brand=tesla,driver>=418,driver<419: no (driver<419; the node has driver 550.54.14)" in verdict.lines


@pytest.mark.unit
def test_the_kepler_node_cannot_run_pytorch_2203():
    verdict = check("img", {"NVIDIA_REQUIRE_CUDA": PYTORCH_2203}, plan(OLD_DRIVER, "Tesla K40m"))
    assert verdict.status == "mismatch"
    assert verdict.summary() == (
        "img needs cuda>=11.6 or brand=tesla,driver>=418,driver<419 or brand=tesla,driver>=440,driver<441 or "
        "brand=tesla,driver>=450,driver<451 or brand=tesla,driver>=460,driver<461; this node has driver "
        "470.82.01, CUDA 11.4, GPU 0,1 Tesla K40m (compute capability 3.5)")
    assert "  cuda>=11.6: no (cuda>=11.6; the node has CUDA 11.4)" in verdict.lines
    assert check("img", {"NVIDIA_REQUIRE_CUDA": CUDA_100}, plan(OLD_DRIVER, "Tesla K40m")).status == "ok"


@pytest.mark.unit
def test_a_brand_only_nvml_knows_makes_cannot_tell():
    # 460.x is a forward-compatible branch for a Tesla: whether this GPU is one, only NVML says
    verdict = check("img", {"NVIDIA_REQUIRE_CUDA": PYTORCH_2203}, plan("460.32.03"))
    assert verdict.status == "unknown"
    assert verdict.summary().startswith("cannot tell whether this node can run img: it needs cuda>=11.6 or ")
    assert ("  brand=tesla,driver>=460,driver<461: unknown (brand=tesla; the node has GPU brand unknown "
            "(only NVML tells it, no driver file))") in verdict.lines
    # every brand listed on a 525 driver: still only NVML could say which one this is
    assert check("img", {"NVIDIA_REQUIRE_CUDA": CUDA_122}, plan("525.60.13")).status == "unknown"
    assert check("img", {"NVIDIA_REQUIRE_CUDA": CUDA_122}, plan("530.30.02")).status == "mismatch"


@pytest.mark.unit
def test_arch_is_checked_per_gpu_and_a_newer_driver_than_the_table_is_a_floor():
    mixed = Plan(vendor="nvidia", driver_version="550.54.14",
                 gpus=[Gpu(0, 0, model="NVIDIA A100-SXM4-40GB"), Gpu(1, 1, model="Tesla V100-SXM2-16GB")])
    verdict = check("img", {"NVIDIA_REQUIRE_ARCH": "arch>=8.0"}, mixed)
    assert verdict.status == "mismatch"
    assert "  arch>=8.0 (GPU 1): no (arch>=8.0; the node has compute capability 7.0 (Tesla V100-SXM2-16GB))" \
        in verdict.lines
    assert check("img", {"NVIDIA_REQUIRE_ARCH": "arch>=7.0"}, mixed).status == "ok"
    assert check("img", {"NVIDIA_REQUIRE_ARCH": "arch>=7.0"}, plan("550.54.14", "NVIDIA GeForce RTX 4090")).status \
        == "unknown"
    assert check("img", {"NVIDIA_REQUIRE_CUDA": "cuda>=12.4"}, plan("590.10")).status == "ok"
    assert check("img", {"NVIDIA_REQUIRE_CUDA": "cuda>=13.1"}, plan("590.10")).status == "unknown"


@pytest.mark.unit
def test_disabled_none_unreadable_and_user_overrides():
    need = {"NVIDIA_REQUIRE_CUDA": PYTORCH_2203}
    old = plan(OLD_DRIVER, "Tesla K40m")
    assert check("img", dict(need, NVIDIA_DISABLE_REQUIRE="1"), old).status == "disabled"
    assert check("img", need, old, user_env={"NVIDIA_DISABLE_REQUIRE": "true"}).status == "disabled"
    assert check("img", need, old, user_env={"NVIDIA_REQUIRE_CUDA": "cuda>=11.0"}).status == "ok"
    assert check("img", {"PATH": "/bin"}, old).summary() == "img states no CUDA requirement (no NVIDIA_REQUIRE_*)"
    assert check("img", None, old, source="a SIF file").summary() == "img: requirements not checked (a SIF file)"
    bad = check("img", {"NVIDIA_REQUIRE_CUDA": "cuda=>11"}, old)
    assert bad.status == "unknown" and "'cuda=>11' is not PROPERTY OP VALUE" in bad.summary()


@pytest.mark.unit
def test_apptainer_environment_script_both_forms():
    text = ('#!/bin/sh\nexport PATH="/usr/local/bin:/usr/bin"\n'
            'export NVIDIA_REQUIRE_CUDA="${NVIDIA_REQUIRE_CUDA:-"cuda>=11.6 brand=tesla,driver>=418,driver<419"}"\n'
            'export PRICE="${PRICE:-"\\$5 \\"cheap\\""}"\n')
    assert _parse_exports(text) == {"PATH": "/usr/local/bin:/usr/bin", "PRICE": '$5 "cheap"',
                                    "NVIDIA_REQUIRE_CUDA": "cuda>=11.6 brand=tesla,driver>=418,driver<419"}


# ---- the command line, on the fake driver tree -------------------------------------------------

def shim(env, *args, timeout=120):
    return subprocess.run([HPCSHIM, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def cuda_image(env_lines: list[str]) -> ImageBuilder:
    config = {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", *env_lines], "Cmd": ["true"]}
    return ImageBuilder(config).add_layer(tar_of([Entry.file("etc/motd", b"cuda image\n")]))


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("cuda-images")
    need = f"NVIDIA_REQUIRE_CUDA={PYTORCH_2203}"
    return {"pytorch": cuda_image(["CUDA_VERSION=11.6.1", need]).write_oci_archive(d / "pytorch.tar", "pt:22.03"),
            "docker": cuda_image([need]).write_docker_archive(d / "pytorch-docker.tar", ["pt:22.03"]),
            "disabled": cuda_image([need, "NVIDIA_DISABLE_REQUIRE=true"]).write_oci_archive(d / "off.tar", "off:1"),
            "plain": cuda_image([]).write_oci_archive(d / "plain.tar", "plain:1")}


@pytest.fixture
def nodes(make_tree) -> dict:
    return {"new": make_tree("new"), "old": make_tree("old", gpus=K40_GPUS, version=OLD_DRIVER)}


@pytest.fixture
def apptainer_stub(stub_path, shim_env):  # noqa: F811
    make, env, record = stub_path
    make("apptainer", "apptainer version 1.2.5")
    return dict(env, HPCSHIM_CACHE_DIR=shim_env["HPCSHIM_CACHE_DIR"]), record


def refusal(image) -> str:
    return (f"hpcshim: {image} needs cuda>=11.6 or brand=tesla,driver>=418,driver<419 or "
            "brand=tesla,driver>=440,driver<441 or brand=tesla,driver>=450,driver<451 or "
            "brand=tesla,driver>=460,driver<461; this node has driver 470.82.01, CUDA 11.4, GPU 0,1 Tesla K40m "
            "(compute capability 3.5) (run it where the driver is new enough, or use an image built for this "
            "driver; --gpu=auto warns and runs anyway, --env NVIDIA_DISABLE_REQUIRE=1 skips the check)\n")


@pytest.mark.root
def test_exec_gpu_refuses_a_mismatch_in_one_line(nodes, archives, apptainer_stub):
    env, record = apptainer_stub
    env["HPCSHIM_HOST_ROOT"] = str(nodes["old"].root)
    for image in (archives["pytorch"], archives["docker"]):
        result = shim(env, "exec", "--gpu", "--runtime", "apptainer", image, "true")
        assert (result.returncode, result.stderr) == (60, refusal(image))
        assert not (record / "argv").exists()                        # nothing ran
    dry = shim(env, "exec", "--nv", "--dry-run", "--runtime", "apptainer", archives["pytorch"], "true")
    assert dry.returncode == 60                                       # --dry-run says the same


@pytest.mark.root
def test_gpu_auto_warns_and_runs(nodes, archives, apptainer_stub):
    env, record = apptainer_stub
    env["HPCSHIM_HOST_ROOT"] = str(nodes["old"].root)
    image = archives["pytorch"]
    result = shim(env, "exec", "--gpu=auto", "--runtime", "apptainer", image, "true")
    assert result.returncode == 0, result.stderr
    assert result.stderr == refusal(image).replace("hpcshim: ", "hpcshim: warning: ", 1).split(" (run it")[0] \
        + " (running anyway: --gpu=auto)\n"
    assert read_record(record)[0][-2:] == [f"oci-archive:{image}", "true"]


@pytest.mark.root
def test_a_match_runs_quietly_and_v_shows_the_comparison(nodes, archives, apptainer_stub):
    env, record = apptainer_stub
    env["HPCSHIM_HOST_ROOT"] = str(nodes["new"].root)
    image = archives["pytorch"]
    quiet = shim(env, "exec", "--gpu", "--runtime", "apptainer", image, "true")
    assert (quiet.returncode, quiet.stderr) == (0, "")
    loud = shim(env, "exec", "--gpu", "-v", "--runtime", "apptainer", image, "true")
    assert loud.returncode == 0, loud.stderr
    lines = [line for line in loud.stderr.splitlines() if line.startswith("hpcshim: requirements: ")]
    assert lines[:3] == [f"hpcshim: requirements: NVIDIA_REQUIRE_CUDA={PYTORCH_2203}",
                         "hpcshim: requirements: node: driver 550.54.14, CUDA 12.4, GPU 0,1,2,3 "
                         "Tesla V100-PCIE-16GB (compute capability 7.0)",
                         "hpcshim: requirements:   cuda>=11.6: yes (CUDA 12.4)"]
    assert lines[-1] == "hpcshim: requirements: ok: `hpcshim exec --gpu` runs it"
    # no GPU asked: nothing is compared, on any node
    env["HPCSHIM_HOST_ROOT"] = str(nodes["old"].root)
    plain = shim(env, "exec", "-v", "--runtime", "apptainer", image, "true")
    assert plain.returncode == 0 and "requirements" not in plain.stderr


@pytest.mark.root
def test_disable_require_in_the_image_or_given_with_env(nodes, archives, apptainer_stub):
    env, _record = apptainer_stub
    env["HPCSHIM_HOST_ROOT"] = str(nodes["old"].root)
    off = shim(env, "exec", "--gpu", "-v", "--runtime", "apptainer", archives["disabled"], "true")
    assert off.returncode == 0, off.stderr
    assert (f"hpcshim: requirements: {archives['disabled']}: NVIDIA_DISABLE_REQUIRE=true, its requirements are "
            "not checked\n") in off.stderr
    given = shim(env, "exec", "--gpu", "--env", "NVIDIA_DISABLE_REQUIRE=1", "--runtime", "apptainer",
                 archives["pytorch"], "true")
    assert (given.returncode, given.stderr) == (0, "")
    plain = shim(env, "exec", "--gpu", "--runtime", "apptainer", archives["plain"], "true")
    assert (plain.returncode, plain.stderr) == (0, "")


@pytest.mark.root
def test_a_plan_from_a_cdi_spec_is_checked_against_the_drivers_own_file(nodes, archives, apptainer_stub):
    env, _record = apptainer_stub
    root = nodes["old"].root
    env["HPCSHIM_HOST_ROOT"] = str(root)
    (root / "etc/cdi").mkdir(parents=True)
    made = shim(env, "cdi", "generate", "--output", root / "etc/cdi/nvidia.json")
    assert made.returncode == 0, made.stderr
    result = shim(env, "exec", "--gpu", "-v", "--runtime", "apptainer", archives["pytorch"], "true")
    assert result.returncode == 60                           # the CDI plan has no GPU models: no GPU part
    assert result.stderr.endswith("; this node has driver 470.82.01, CUDA 11.4 (run it where the driver is new "
                                  "enough, or use an image built for this driver; --gpu=auto warns and runs "
                                  "anyway, --env NVIDIA_DISABLE_REQUIRE=1 skips the check)\n"), result.stderr


@pytest.mark.root
def test_doctor_image(nodes, archives, shim_env):
    image = archives["pytorch"]
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(nodes["old"].root))
    old = shim(env, "doctor", image)
    assert old.returncode == 0, old.stderr
    assert old.stdout.startswith(f"GPU: nvidia, driver 470.82.01, supports CUDA 11.4 (host root {nodes['old'].root})\n")
    assert "  compute capability of Tesla K40m: 3.5 (NVIDIA's CUDA GPUs table)\n" in old.stdout
    tail = old.stdout[old.stdout.index(f"Image {image}: can it run here?"):].splitlines()
    assert tail[1:4] == [f"  NVIDIA_REQUIRE_CUDA={PYTORCH_2203}",
                         "  node: driver 470.82.01, CUDA 11.4, GPU 0,1 Tesla K40m (compute capability 3.5)",
                         "    cuda>=11.6: no (cuda>=11.6; the node has CUDA 11.4)"]
    assert tail[-1] == ("  mismatch: `hpcshim exec --gpu` refuses it (exit 60); --gpu=auto warns and runs it")
    doc = json.loads(shim(env, "doctor", "--json", image).stdout)
    assert doc["imageRequirements"]["status"] == "mismatch" and doc["driverVersion"] == OLD_DRIVER
    assert Plan.from_dict(doc).driver_version == OLD_DRIVER                # still a Plan document
    env["HPCSHIM_HOST_ROOT"] = str(nodes["new"].root)
    new = shim(env, "doctor", f"docker-archive:{archives['docker']}")
    assert new.stdout.endswith("  ok: `hpcshim doctor --gpu` runs it\n".replace("doctor", "exec")), new.stdout
    without = shim(env, "doctor")
    assert without.returncode == 0 and "can it run here" not in without.stdout
    assert "imageRequirements" not in json.loads(shim(env, "doctor", "--json").stdout)


@pytest.mark.root
def test_doctor_image_errors_and_hosts_without_nvidia(archives, shim_env, tmp_path, nodes):
    missing = shim(dict(shim_env, HPCSHIM_HOST_ROOT=str(nodes["new"].root)), "doctor", tmp_path / "nope.tar")
    assert (missing.returncode, len(missing.stderr.splitlines())) == (40, 1)
    assert "does not exist" in missing.stderr
    empty = tmp_path / "empty-host"
    empty.mkdir()
    none = shim(dict(shim_env, HPCSHIM_HOST_ROOT=str(empty)), "doctor", archives["pytorch"])
    assert none.returncode == 0
    assert none.stdout.endswith(f"  {archives['pytorch']}: no NVIDIA driver here to compare with (it needs "
                                f"NVIDIA_REQUIRE_CUDA={PYTORCH_2203})\n")


# ---- minict's store and directories -----------------------------------------------------------

@pytest.fixture
def minict_env(shim_env, tmp_path, archives):
    return minict_store_env(shim_env, tmp_path, archives["docker"])


@pytest.mark.root
def test_minict_images_are_read_from_the_store(minict_env, nodes):
    env = dict(minict_env, HPCSHIM_HOST_ROOT=str(nodes["old"].root))
    doctor = shim(env, "doctor", "minict:pt:22.03")
    assert doctor.returncode == 0, doctor.stderr
    assert doctor.stdout.endswith("  mismatch: `hpcshim exec --gpu` refuses it (exit 60); --gpu=auto warns and runs it\n")
    refused = shim(env, "exec", "--gpu", "--runtime", "minict", "minict:pt:22.03", "true")
    assert (refused.returncode, refused.stderr) == (60, refusal("minict:pt:22.03"))


def directory_image(busybox_rootfs, dest: Path, environment: str) -> Path:
    shutil.copytree(busybox_rootfs, dest, symlinks=True)
    (dest / "ch").mkdir()
    (dest / "ch/environment").write_text(environment)
    return dest


@pytest.mark.root
@pytest.mark.skipif(shutil.which("ch-run") is None, reason="ch-run (charliecloud-runtime) missing")
def test_chrun_directories_carry_their_environment(busybox_rootfs, tmp_path, shim_env, nodes):
    image = directory_image(busybox_rootfs, tmp_path / "pytorch",
                            f"PATH=/usr/bin:/bin\nNVIDIA_REQUIRE_CUDA='{PYTORCH_2203}'\n")
    env = dict(shim_env, HPCSHIM_HOST_ROOT=str(nodes["old"].root))
    refused = shim(env, "exec", "--gpu", "--runtime", "ch-run", image, "echo", "ran")
    assert (refused.returncode, refused.stderr) == (60, refusal(image))
    anyway = shim(env, "exec", "--gpu=auto", "--runtime", "ch-run", image, "echo", "ran")
    assert (anyway.returncode, anyway.stdout) == (0, "ran\n"), anyway.stderr
    assert anyway.stderr.startswith(f"hpcshim: warning: {image} needs cuda>=11.6 or ")
    env["HPCSHIM_HOST_ROOT"] = str(nodes["new"].root)
    fine = shim(env, "exec", "--gpu", "--runtime", "ch-run", image, "echo", "ran")
    assert (fine.returncode, fine.stdout, fine.stderr) == (0, "ran\n", "")
    bare = tmp_path / "bare"
    shutil.copytree(busybox_rootfs, bare, symlinks=True)
    unknown = shim(dict(env, HPCSHIM_HOST_ROOT=str(nodes["old"].root)), "exec", "--gpu", "-v",
                   "--runtime", "ch-run", bare, "echo", "ran")
    assert unknown.returncode == 0, unknown.stderr
    assert (f"hpcshim: requirements: {bare}: requirements not checked ({bare} has neither /ch/environment "
            "nor /.singularity.d/env/10-docker2singularity.sh)\n") in unknown.stderr
    doctor = shim(env, "doctor", bare)
    assert doctor.stdout.endswith(f"  {bare}: requirements not checked ({bare} has neither /ch/environment "
                                  "nor /.singularity.d/env/10-docker2singularity.sh)\n"), doctor.stdout
    assert shim(env, "doctor", image).stdout.endswith("  ok: `hpcshim exec --gpu` runs it\n")


@pytest.mark.root
def test_an_apptainer_sandbox_built_from_an_oci_image(busybox_rootfs, tmp_path, shim_env, nodes):
    apptainer = find_apptainer()
    config = {"Env": ["PATH=/usr/bin:/bin", f"NVIDIA_REQUIRE_CUDA={PYTORCH_2203}"], "Cmd": ["sh"]}
    archive = ImageBuilder(config).add_layer(tar_from_dir(busybox_rootfs)).write_oci_archive(tmp_path / "pt.tar")
    env = apptainer.env(dict(shim_env, HPCSHIM_HOST_ROOT=str(nodes["old"].root)), tmp_path)
    sandbox = tmp_path / "sandbox"
    built = subprocess.run([str(apptainer.exe), "build", "--sandbox", str(sandbox), f"oci-archive:{archive}"],
                           env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    assert (sandbox / ".singularity.d/env/10-docker2singularity.sh").is_file()     # what hpcshim reads
    doctor = shim(env, "doctor", sandbox)
    assert doctor.stdout.endswith("  mismatch: `hpcshim exec --gpu` refuses it (exit 60); --gpu=auto warns and "
                                  "runs it\n"), doctor.stdout
    refused = shim(env, "exec", "--gpu", "--runtime", "apptainer", sandbox, "true")
    assert (refused.returncode, refused.stderr) == (60, refusal(sandbox))
    env["HPCSHIM_HOST_ROOT"] = str(nodes["new"].root)
    runs = shim(env, "exec", "--gpu", "--runtime", "apptainer", sandbox, "sh", "-c", "echo $NVIDIA_REQUIRE_CUDA")
    assert (runs.returncode, runs.stdout) == (0, PYTORCH_2203 + "\n"), runs.stderr
