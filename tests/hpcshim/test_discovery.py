"""Discovery over the fake driver tree: driver, GPUs, nodes, libraries, files, cache."""

import os
import shutil
import subprocess

import pytest

from hpcshim.build import GpuRequest, build_plan
from hpcshim.discovery import nvidia
from hpcshim.discovery.hostroot import HostRoot
from hpcshim.errors import NoGpu
from tests.hpcshim.drivertree import (DRIVER_VERSION, LIB32_DIR, LIB64_DIR, UVM_MAJOR,
                                      compile_library, write_devices_cgroup)

def plan_for(tree, env=None, mode="any", **kw):
    environment = {"HPCSHIM_NO_CACHE": "1"}
    environment.update(env or {})
    return build_plan(GpuRequest(mode=mode, root=str(tree.root), env=environment, **kw))


def by_path(plan):
    return {d.path: d for d in plan.devices}


@pytest.mark.unit
@pytest.mark.parametrize("text, version", [
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.14  Thu Feb 22 01:44:30 UTC 2024\n"
     "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n", "550.54.14"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  555.42.06  Release Build  "
     "(abuild@host)  Thu Jul 11 12:00:00 UTC 2024\n", "555.42.06"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  540.4.0  Release Build\n", "540.4.0"),
    ("GCC version:  gcc version 12.2.0\n", None),
])
def test_driver_version_lines(text, version):
    assert nvidia.parse_version_text(text) == version


@pytest.mark.unit
def test_sys_module_version_is_the_fallback(tmp_path):
    (tmp_path / "sys/module/nvidia").mkdir(parents=True)
    (tmp_path / "sys/module/nvidia/version").write_text("535.129.03\n")
    version, finding = nvidia.driver_version(HostRoot(str(tmp_path)))
    assert version == "535.129.03" and finding.path == "/sys/module/nvidia/version"


@pytest.mark.root
def test_gpus_come_in_pci_order_with_their_minors(driver_tree):
    gpus, _findings = nvidia.gpus(HostRoot(str(driver_tree.root)))
    assert [(g.index, g.minor, g.pci_bus_id) for g in gpus] == [
        (0, 0, "0000:3b:00.0"), (1, 1, "0000:5e:00.0"), (2, 3, "0000:86:00.0"), (3, 2, "0000:af:00.0")]
    assert gpus[2].uuid == "GPU-e953c3c5-dba7-029e-ce44-7b51417131df"
    assert gpus[0].model == "Tesla V100-PCIE-16GB"


@pytest.mark.root
def test_full_plan_from_the_tree(driver_tree):
    plan = plan_for(driver_tree)
    assert plan.vendor == "nvidia" and plan.driver_version == DRIVER_VERSION
    nodes = by_path(plan)
    # major/minor/mode come from stat() of the real nodes, uvm's dynamic major included
    assert (nodes["/dev/nvidiactl"].major, nodes["/dev/nvidiactl"].minor) == (195, 255)
    assert (nodes["/dev/nvidia-uvm"].major, nodes["/dev/nvidia-uvm"].minor) == (UVM_MAJOR, 0)
    assert nodes["/dev/nvidia3"].mode == 0o666 and nodes["/dev/nvidia3"].type == "c"
    assert nodes["/dev/nvidia3"].host_path == str(driver_tree.root / "dev/nvidia3")
    assert {f"/dev/nvidia{m}" for m in range(4)} <= set(nodes)
    libs = {lib.name: lib for lib in plan.libraries}
    # 64-bit copies only, although ld.so.conf lists the i386 directory first
    assert libs["libcuda.so.1"].src == str(driver_tree.root / LIB64_DIR / f"libcuda.so.{DRIVER_VERSION}")
    assert libs["libcuda.so.1"].link == str(driver_tree.root / LIB64_DIR / "libcuda.so.1")
    assert all(LIB32_DIR not in lib.src for lib in plan.libraries)
    assert plan.libraries32 == []
    # a library in no name list, found because its name ends in the driver version
    assert "libnvidia-futurething.so.1" in libs
    assert "libunrelated.so.1" not in libs
    assert f"libnvidia-gpucomp.so.{DRIVER_VERSION}" in libs
    binds = {b.dst: b for b in plan.binds}
    assert binds["/usr/bin/nvidia-smi"].kind == "binary"
    assert binds[f"/lib/firmware/nvidia/{DRIVER_VERSION}/gsp_ga10x.bin"].kind == "firmware"
    assert binds["/usr/share/vulkan/icd.d/nvidia_icd.json"].kind == "icd"
    assert binds["/run/nvidia-persistenced/socket"].kind == "socket" and not binds["/run/nvidia-persistenced/socket"].ro
    assert plan.env == {"CUDA_VISIBLE_DEVICES": "0,1,2,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert plan.ld_library_path == [plan.lib_dir]
    assert plan.pitfalls == []
    skipped = {f.name for f in plan.findings if f.status == "skipped"}
    assert "nvidia-debugdump" in skipped and "libnvidia-opencl.so" in skipped


@pytest.mark.root
def test_compat32_adds_the_i386_copies(driver_tree):
    plan = plan_for(driver_tree, compat32=True)
    libs32 = {lib.name: lib.src for lib in plan.libraries32}
    assert libs32 == {
        "libcuda.so.1": str(driver_tree.root / LIB32_DIR / f"libcuda.so.{DRIVER_VERSION}"),
        "libnvidia-ml.so.1": str(driver_tree.root / LIB32_DIR / f"libnvidia-ml.so.{DRIVER_VERSION}")}
    assert plan.ld_library_path == [plan.lib_dir, plan.lib32_dir]


@pytest.mark.root
def test_selection_picks_nodes_and_renumbers(driver_tree):
    plan = plan_for(driver_tree, {"CUDA_VISIBLE_DEVICES": "3,1"})
    gpu_nodes = sorted(p for p in by_path(plan) if p[len("/dev/nvidia"):].isdigit())
    assert gpu_nodes == ["/dev/nvidia1", "/dev/nvidia2"]      # PCI index 3 is /dev/nvidia2
    assert plan.env["CUDA_VISIBLE_DEVICES"] == "1,0"
    assert plan.env_if_host_dev["CUDA_VISIBLE_DEVICES"] == "3,1"


@pytest.mark.root
def test_slurm_device_constraint_is_detected_from_the_devices_cgroup(driver_tree):
    write_devices_cgroup(driver_tree.root, allowed_minors=[3, 2])
    plan = plan_for(driver_tree, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_GPUS": "2,3",
                                  "SLURM_JOB_ID": "42"})
    gpu_nodes = sorted(p for p in by_path(plan) if p[len("/dev/nvidia"):].isdigit())
    assert gpu_nodes == ["/dev/nvidia2", "/dev/nvidia3"]
    constraint = [f for f in plan.findings if f.name == "device constraint"][0]
    assert "only 2 of 4" in constraint.reason and constraint.path.endswith("devices.list")
    assert plan.env_if_host_dev["CUDA_VISIBLE_DEVICES"] == "0,1"
    denied = [f for f in plan.findings if f.status == "skipped" and "devices cgroup denies" in f.reason]
    assert {f.name for f in denied} == {"/dev/nvidia0", "/dev/nvidia1"}


@pytest.mark.root
def test_without_constraint_the_same_indices_mean_host_gpus(driver_tree):
    write_devices_cgroup(driver_tree.root, allowed_minors=[0, 1, 2, 3])
    plan = plan_for(driver_tree, {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert sorted(p for p in by_path(plan) if p[len("/dev/nvidia"):].isdigit()) == ["/dev/nvidia0", "/dev/nvidia1"]


@pytest.mark.root
def test_a_missing_node_is_not_visible(driver_tree):
    os.unlink(driver_tree.root / "dev/nvidia0")
    plan = plan_for(driver_tree, {"CUDA_VISIBLE_DEVICES": "0"})
    assert "/dev/nvidia1" in by_path(plan) and "/dev/nvidia0" not in by_path(plan)


@pytest.mark.root
def test_missing_uvm_is_a_pitfall(make_tree):
    tree = make_tree(with_uvm=False)
    plan = plan_for(tree)
    assert "/dev/nvidia-uvm" not in by_path(plan)
    assert any("nvidia_uvm module is not loaded" in p for p in plan.pitfalls)


@pytest.mark.root
def test_mig_selection_uses_nvidia_smi_and_the_caps(make_tree):
    tree = make_tree(mig=True)
    plan = plan_for(tree, {"NVIDIA_VISIBLE_DEVICES": "MIG-3f1b8c1e-6a1d-5c8e-9d3a-1c2b3d4e5f60"})
    caps = sorted(p for p in by_path(plan) if p.startswith("/dev/nvidia-caps/"))
    assert caps == [f"/dev/nvidia-caps/nvidia-cap{m}" for m in (1, 12, 13, 2)]
    assert "/dev/nvidia0" in by_path(plan) and "/dev/nvidia1" not in by_path(plan)
    assert plan.env["CUDA_VISIBLE_DEVICES"] == "MIG-3f1b8c1e-6a1d-5c8e-9d3a-1c2b3d4e5f60"


@pytest.mark.root
def test_no_ld_so_cache_falls_back_to_scanning(make_tree):
    tree = make_tree(with_cache=False)
    plan = plan_for(tree)
    names = {lib.name for lib in plan.libraries}
    assert {"libcuda.so.1", "libnvidia-ml.so.1", "libnvidia-futurething.so.1"} <= names
    assert all(LIB32_DIR not in lib.src for lib in plan.libraries)
    assert any(f.name == "ld.so.cache" and f.status == "skipped" for f in plan.findings)


@pytest.mark.root
def test_wrong_machine_library_is_skipped(driver_tree):
    # An aarch64-looking copy in the driver directory (ldconfig would not index it;
    # the driver-version scan does find it): the same ELF with e_machine set to 183.
    src = driver_tree.root / LIB64_DIR / f"libnvidia-ml.so.{DRIVER_VERSION}"
    data = bytearray(src.read_bytes())
    data[18:20] = (183).to_bytes(2, "little")
    (driver_tree.root / LIB64_DIR / f"libnvidia-cfg.so.{DRIVER_VERSION}").write_bytes(bytes(data))
    plan = plan_for(driver_tree)
    assert not any("libnvidia-cfg" in lib.src for lib in plan.libraries)
    reasons = [f.reason for f in plan.findings if f.path and "libnvidia-cfg" in f.path]
    assert reasons and "aarch64" in reasons[0] and "x86-64" in reasons[0]


@pytest.mark.root
def test_absolute_symlinks_resolve_inside_the_root(driver_tree):
    link = driver_tree.root / LIB64_DIR / "libcuda.so.1"
    link.unlink()
    link.symlink_to(f"/{LIB64_DIR}/libcuda.so.{DRIVER_VERSION}")   # absolute: must stay in the tree
    plan = plan_for(driver_tree)
    lib = {x.name: x for x in plan.libraries}["libcuda.so.1"]
    assert lib.src == str(driver_tree.root / LIB64_DIR / f"libcuda.so.{DRIVER_VERSION}")


@pytest.mark.root
def test_site_name_list_extends_the_built_in_one(driver_tree):
    extra = driver_tree.root / "opt/site/lib"
    extra.mkdir(parents=True)
    compile_library(extra / "libsitegpu.so.2.0", "libsitegpu.so.2", "site")
    os.symlink("libsitegpu.so.2.0", extra / "libsitegpu.so.2")
    conf = driver_tree.root / "etc/ld.so.conf"
    conf.write_text(conf.read_text() + "/opt/site/lib\n")
    subprocess.run(["ldconfig", "-r", str(driver_tree.root), "-C", "/etc/ld.so.cache", "-f", "/etc/ld.so.conf"],
                   check=True, capture_output=True)
    assert "libsitegpu.so.2" not in {lib.name for lib in plan_for(driver_tree).libraries}
    (driver_tree.root / "etc/hpcshim").mkdir()
    (driver_tree.root / "etc/hpcshim/nvliblist.conf").write_text("# site additions\nlibsitegpu.so\n")
    assert "libsitegpu.so.2" in {lib.name for lib in plan_for(driver_tree).libraries}


@pytest.mark.root
def test_discovery_cache_is_used_and_invalidated(driver_tree, tmp_path):
    import json
    env = {"HPCSHIM_CACHE_DIR": str(tmp_path / "cache")}

    def names():
        plan = build_plan(GpuRequest(mode="any", root=str(driver_tree.root), env=env))
        return {lib.name for lib in plan.libraries}

    first = names()
    files = os.listdir(tmp_path / "cache")
    assert len(files) == 1 and files[0].startswith("discovery-")
    # Proof that the cache is read: drop an entry from it, and the next run lacks it.
    path = tmp_path / "cache" / files[0]
    doc = json.loads(path.read_text())
    doc["data"]["libraries"] = [x for x in doc["data"]["libraries"] if x["name"] != "libnvidia-nvvm.so.4"]
    path.write_text(json.dumps(doc))
    assert names() == first - {"libnvidia-nvvm.so.4"}
    # A new driver library changes its directory's mtime: the cache is rebuilt.
    compile_library(driver_tree.root / LIB64_DIR / f"libnvidia-newer.so.{DRIVER_VERSION}",
                    "libnvidia-newer.so.1", "newer")
    assert names() == first | {"libnvidia-newer.so.1"}
    # HPCSHIM_NO_CACHE=1 neither reads nor writes it
    shutil.rmtree(tmp_path / "cache")
    env["HPCSHIM_NO_CACHE"] = "1"
    assert names() == first | {"libnvidia-newer.so.1"}
    assert not (tmp_path / "cache").exists()


@pytest.mark.unit
def test_no_driver_means_no_gpu(tmp_path):
    with pytest.raises(NoGpu) as info:
        build_plan(GpuRequest(mode="any", root=str(tmp_path), env={}))
    assert info.value.exit_code == 12
    with pytest.raises(NoGpu):
        build_plan(GpuRequest(mode="nvidia", root=str(tmp_path), env={}))
    assert build_plan(GpuRequest(mode="auto", root=str(tmp_path), env={})).empty


@pytest.mark.root
def test_void_means_no_injection_none_means_driver_only(driver_tree):
    assert plan_for(driver_tree, {"NVIDIA_VISIBLE_DEVICES": "void"}).empty
    none = plan_for(driver_tree, {"NVIDIA_VISIBLE_DEVICES": "none"})
    assert none.vendor == "nvidia" and none.gpus == []
    assert not any(p[len("/dev/nvidia"):].isdigit() for p in by_path(none))
    assert "/dev/nvidiactl" in by_path(none) and none.libraries
    assert none.env["CUDA_VISIBLE_DEVICES"] == ""


@pytest.mark.root
def test_rocm_tree(tmp_path):
    """AMD: /dev/kfd, the amdgpu device's render node (found through sysfs), the ROCm libraries."""
    root = tmp_path / "amd"
    for path, major, minor in (("dev/kfd", 511, 0), ("dev/dri/renderD128", 226, 128), ("dev/dri/card0", 226, 0)):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        os.mknod(root / path, 0o20666, os.makedev(major, minor))
    # sysfs's real shape: bus/pci/devices/X -> devices/pci0000:00/X, whose driver -> bus/pci/drivers/amdgpu
    (root / "sys/bus/pci/drivers/amdgpu").mkdir(parents=True)
    device = root / "sys/devices/pci0000:00/0000:03:00.0"
    (device / "drm/renderD128").mkdir(parents=True)
    os.symlink("../../../bus/pci/drivers/amdgpu", device / "driver")
    (root / "sys/bus/pci/devices").mkdir(parents=True)
    os.symlink("../../../devices/pci0000:00/0000:03:00.0", root / "sys/bus/pci/devices/0000:03:00.0")
    lib = root / "opt/rocm/lib"
    lib.mkdir(parents=True)
    compile_library(lib / "libamdhip64.so.6.0.60000", "libamdhip64.so.6", "hip")
    (root / "etc").mkdir()
    (root / "etc/ld.so.conf").write_text("/opt/rocm/lib\n")
    subprocess.run(["ldconfig", "-r", str(root), "-C", "/etc/ld.so.cache", "-f", "/etc/ld.so.conf"],
                   check=True, capture_output=True)
    plan = build_plan(GpuRequest(mode="any", root=str(root), env={"HPCSHIM_NO_CACHE": "1"}))
    assert plan.vendor == "rocm"
    assert sorted(d.path for d in plan.devices) == ["/dev/dri/renderD128", "/dev/kfd"]
    assert [(g.index, g.pci_bus_id) for g in plan.gpus] == [(0, "0000:03:00.0")]
    assert [lib.name for lib in plan.libraries] == ["libamdhip64.so.6"]
    with pytest.raises(NoGpu) as info:
        build_plan(GpuRequest(mode="nvidia", root=str(root), env={}))
    assert "(it has AMD ROCm)" in info.value.message
