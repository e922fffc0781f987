"""CDI specs (write, validate, read back, select) and the Plan's JSON contract."""

import json

import pytest

from hpcshim import cdi
from hpcshim.build import GpuRequest, build_plan
from hpcshim.discovery.hostroot import HostRoot
from hpcshim.errors import BadCdiSpec, BadPlan, CdiDeviceNotFound
from hpcshim.plan import PLAN_VERSION, Bind, DeviceNode, Finding, Gpu, Library, Plan


def full_plan(tree):
    return build_plan(GpuRequest(mode="any", root=str(tree.root), env={"HPCSHIM_NO_CACHE": "1"}, use_cdi=False))


def install_spec(tree, spec, name="hpcshim-nvidia.json", directory="etc/cdi"):
    target = tree.root / directory
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_text(json.dumps(spec))


@pytest.mark.root
def test_generated_spec_is_valid_and_complete(driver_tree):
    plan = full_plan(driver_tree)
    spec = cdi.generate(plan, HostRoot(str(driver_tree.root)))
    cdi.validate(spec, "test")
    assert spec["cdiVersion"] == "0.5.0" and spec["kind"] == "nvidia.com/gpu"
    devices = {d["name"]: d["containerEdits"]["deviceNodes"] for d in spec["devices"]}
    assert [n["path"] for n in devices["2"]] == ["/dev/nvidia3"]       # PCI index 2 is minor 3
    assert sorted(n["path"] for n in devices["all"]) == [f"/dev/nvidia{m}" for m in range(4)]
    assert devices["0"][0]["major"] == 195 and devices["0"][0]["hostPath"].endswith("/dev/nvidia0")
    common = spec["containerEdits"]
    assert {n["path"] for n in common["deviceNodes"]} == {"/dev/nvidiactl", "/dev/nvidia-uvm",
                                                          "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset"}
    mounts = {m["containerPath"]: m for m in common["mounts"]}
    assert mounts["/.hpcshim/lib/libcuda.so.1"]["options"] == ["ro", "nosuid", "nodev", "bind"]
    assert "LD_LIBRARY_PATH=/.hpcshim/lib" in common["env"]
    assert not any(e.startswith("CUDA_VISIBLE_DEVICES=") for e in common["env"])


@pytest.mark.root
def test_installed_spec_drives_gpu_selection(driver_tree):
    spec = cdi.generate(full_plan(driver_tree), HostRoot(str(driver_tree.root)))
    install_spec(driver_tree, spec)
    root = str(driver_tree.root)
    by_device = build_plan(GpuRequest(mode="any", root=root, env={}, cdi_devices=["nvidia.com/gpu=1"]))
    paths = {d.path for d in by_device.devices}
    assert "/dev/nvidia1" in paths and "/dev/nvidia0" not in paths and "/dev/nvidiactl" in paths
    assert by_device.vendor == "nvidia" and by_device.ld_library_path == ["/.hpcshim/lib"]
    assert any(b.dst == "/.hpcshim/lib/libcuda.so.1" for b in by_device.binds)
    assert any(f.kind == "cdi" and f.name == "nvidia.com/gpu=1" for f in by_device.findings)
    # --gpu with no --device: the GPU variables name the devices
    by_env = build_plan(GpuRequest(mode="any", root=root, env={"NVIDIA_VISIBLE_DEVICES": "2,3"}))
    assert {d.path for d in by_env.devices if d.path[11:].isdigit()} == {"/dev/nvidia3", "/dev/nvidia2"}
    assert build_plan(GpuRequest(mode="any", root=root, env={"NVIDIA_VISIBLE_DEVICES": "void"})).empty
    with pytest.raises(CdiDeviceNotFound) as info:
        build_plan(GpuRequest(mode="any", root=root, env={}, cdi_devices=["nvidia.com/gpu=7"]))
    assert "nvidia.com/gpu=all" in info.value.hint and info.value.exit_code == 33


@pytest.mark.root
def test_foreign_spec_with_hooks_is_usable(driver_tree):
    # The shape nvidia-ctk writes: libraries at their host paths, and an update-ldcache hook.
    lib = "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.14"
    spec = {"cdiVersion": "0.6.0", "kind": "nvidia.com/gpu",
            "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "/dev/nvidia0"}]}}],
            "containerEdits": {
                "env": ["NVIDIA_VISIBLE_DEVICES=void"],
                "deviceNodes": [{"path": "/dev/nvidiactl"}],
                "mounts": [{"hostPath": lib, "containerPath": lib, "options": ["ro", "nosuid", "nodev", "bind"]}],
                "hooks": [{"hookName": "createContainer", "path": "/usr/bin/nvidia-ctk",
                           "args": ["nvidia-ctk", "hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"]}]}}
    install_spec(driver_tree, spec, "nvidia.json", "var/run/cdi")
    plan = build_plan(GpuRequest(mode="nvidia", root=str(driver_tree.root), env={"CUDA_VISIBLE_DEVICES": "0"}))
    nodes = {d.path: d for d in plan.devices}
    assert (nodes["/dev/nvidia0"].major, nodes["/dev/nvidia0"].minor) == (195, 0)   # from stat(): not in the spec
    assert nodes["/dev/nvidia0"].host_path == str(driver_tree.root / "dev/nvidia0")
    assert plan.ld_library_path == ["/usr/lib/x86_64-linux-gnu"]
    assert [b.src for b in plan.binds] == [str(driver_tree.root) + lib]
    assert any(f.status == "skipped" and "no CDI hooks" in f.reason for f in plan.findings)


@pytest.mark.root
@pytest.mark.parametrize("spec, message", [
    ({"cdiVersion": "9.9.9", "kind": "nvidia.com/gpu", "devices": []}, "unknown cdiVersion"),
    ({"cdiVersion": "0.5.0", "kind": "nvidia", "devices": [{"name": "0", "containerEdits": {}}]}, "is not vendor.com/class"),
    ({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": []}, "no devices"),
    ({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
      "devices": [{"name": "0", "containerEdits": {}}, {"name": "0", "containerEdits": {}}]}, "appears twice"),
    ({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
      "devices": [{"name": "-bad", "containerEdits": {}}]}, "is not valid"),
    ({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
      "devices": [{"name": "0", "containerEdits": {"deviceNodes": [{"path": "dev/nvidia0"}]}}]}, "absolute path"),
    ({"cdiVersion": "0.5.0", "kind": "nvidia.com/gpu",
      "devices": [{"name": "0", "containerEdits": {"env": ["NOVALUE"]}}]}, "is not KEY=VALUE"),
])
def test_invalid_specs_are_refused(driver_tree, spec, message):
    install_spec(driver_tree, spec)
    with pytest.raises(BadCdiSpec) as info:
        build_plan(GpuRequest(mode="any", root=str(driver_tree.root), env={}))
    assert message in info.value.message and info.value.exit_code == 32


@pytest.mark.root
def test_broken_json_spec(driver_tree):
    (driver_tree.root / "etc/cdi").mkdir(parents=True)
    (driver_tree.root / "etc/cdi/x.json").write_text("{not json")
    with pytest.raises(BadCdiSpec) as info:
        build_plan(GpuRequest(mode="any", root=str(driver_tree.root), env={}))
    assert "is not valid JSON" in info.value.message


# ---- the Plan's JSON ---------------------------------------------------------

SAMPLE = Plan(vendor="nvidia", driver_version="550.54.14",
              gpus=[Gpu(1, 1, "GPU-x", "0000:5e:00.0", "V100")],
              devices=[DeviceNode("/dev/nvidia1", "/h/dev/nvidia1", 195, 1, 0o666)],
              binds=[Bind("/h/bin/nvidia-smi", "/usr/bin/nvidia-smi", True, "binary")],
              libraries=[Library("/h/lib/libcuda.so.550.54.14", "libcuda.so.1", "/h/lib/libcuda.so.1")],
              libraries32=[Library("/h/lib32/libcuda.so.550.54.14", "libcuda.so.1", None)],
              env={"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
              env_if_host_dev={"CUDA_VISIBLE_DEVICES": "1"},
              ld_library_path=["/.hpcshim/lib", "/.hpcshim/lib32"],
              findings=[Finding("library", "libcuda.so.1", "/lib/libcuda.so.1", "found", "ld.so.cache")],
              pitfalls=["p"])


@pytest.mark.unit
def test_plan_json_round_trip_and_stable_keys():
    text = SAMPLE.to_json()
    assert Plan.from_json(text) == SAMPLE
    doc = json.loads(text)
    assert list(doc) == ["hpcshimPlanVersion", "vendor", "driverVersion", "gpus", "devices", "binds", "libDir",
                         "libraries", "lib32Dir", "libraries32", "env", "envIfHostDev", "ldLibraryPath",
                         "findings", "pitfalls"]
    assert doc["hpcshimPlanVersion"] == PLAN_VERSION
    assert doc["devices"][0] == {"path": "/dev/nvidia1", "hostPath": "/h/dev/nvidia1", "type": "c",
                                 "major": 195, "minor": 1, "mode": 438}
    assert doc["libraries"][0] == {"src": "/h/lib/libcuda.so.550.54.14", "name": "libcuda.so.1",
                                   "link": "/h/lib/libcuda.so.1"}
    assert SAMPLE.env_for(host_dev=True)["CUDA_VISIBLE_DEVICES"] == "1"
    assert SAMPLE.env_for(host_dev=False)["CUDA_VISIBLE_DEVICES"] == "0"


@pytest.mark.unit
@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"),
    ('{"hpcshimPlanVersion": 2, "vendor": null}', "unsupported GPU plan version 2"),
    ('{"hpcshimPlanVersion": 1}', "missing or mistypes a field"),
    ('{"hpcshimPlanVersion": 1, "vendor": "nvidia", "devices": [{"path": "/dev/x"}]}', "missing or mistypes"),
    ("[1, 2]", "unsupported GPU plan version None"),
])
def test_bad_plans(text, message):
    with pytest.raises(BadPlan) as info:
        Plan.from_json(text)
    assert message in info.value.message and info.value.exit_code == 31
