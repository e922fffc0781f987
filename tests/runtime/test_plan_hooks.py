"""The general mount and device lists a GPU plan (hpcshim) will fill:
file and directory binds to destinations the image lacks, and device
nodes in the container's /dev. Driven through the Python API, as the
`--gpu-plan` flag will drive it."""

import os

import pytest

from minicontainer.config import Config
from minicontainer.runtime import lifecycle
from minicontainer.runtime.create import container_from
from minicontainer.runtime.flags import Bind, DeviceNode
from minicontainer.runtime.gpu import GpuInjection
from minicontainer.runtime.request import RunRequest
from minicontainer.runtime.state import Layout
from minicontainer.image.store import Store
from minicontainer.syscalls import Kernel
from tests.runtime.conftest import container_dirs, mount_table

pytestmark = pytest.mark.root


def test_binds_and_device_nodes_from_a_plan(image_root, tmp_path, capfd):
    library = tmp_path / "libnvidia-fake.so.1"
    library.write_bytes(b"\x7fELF fake driver\n")
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "nvidia-smi").write_text("#!/bin/sh\necho fake-smi\n")
    (tools / "nvidia-smi").chmod(0o755)
    config = Config(root=image_root, state=tmp_path / "state")
    image = Store(image_root).resolve("busybox")
    plan = GpuInjection(
        binds=[Bind(str(library), "/usr/lib/x86_64-linux-gnu/libnvidia-fake.so.1", True),
               Bind(str(tools), "/usr/local/nvidia/bin", True)],
        devices=[DeviceNode("/dev/nvidia0", "c", 195, 0, 0o666),
                 DeviceNode("/dev/dri/card0", "c", 226, 0, 0o660, gid=44)],
        env=["NVIDIA_VISIBLE_DEVICES=0"], ld_library_path=[])
    request = RunRequest(image="busybox", auto_remove=True, command=(
        "sh", "-c", "stat -c '%n %t:%T %a %g' /dev/nvidia0 /dev/dri/card0; "
                    "cat /usr/lib/x86_64-linux-gnu/libnvidia-fake.so.1; "
                    "/usr/local/nvidia/bin/nvidia-smi; echo $NVIDIA_VISIBLE_DEVICES; "
                    "echo x >> /usr/lib/x86_64-linux-gnu/libnvidia-fake.so.1 || echo RO"))
    engine, container = container_from(image, request, Layout.of(config).containers, gpu=plan)
    mounts = mount_table()
    code, _ = lifecycle.run(config, engine, container, Kernel())
    out = capfd.readouterr().out.splitlines()
    assert code == 0
    assert out[:2] == ["/dev/nvidia0 c3:0 666 0", "/dev/dri/card0 e2:0 660 44"]
    assert out[2:5] == ["\x7fELF fake driver", "fake-smi", "0"] and out[-1] == "RO"
    assert library.read_bytes() == b"\x7fELF fake driver\n"
    # the destinations were made in the container's upper layer, not the image
    layers = [p / "fs" for p in (image_root / "layers").iterdir()]
    assert not any((layer / "usr/local/nvidia").exists() for layer in layers)
    assert mount_table() == mounts
    assert not any(engine.id in str(p) for p in container_dirs(image_root))
    assert os.listdir(tmp_path / "state" / "containers") == []
