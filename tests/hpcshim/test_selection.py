"""Which GPUs a job owns: every variable, every value form, both Slurm cases."""

import pytest

from hpcshim.errors import BadSelection
from hpcshim.plan import Gpu
from hpcshim.selection import (container_visible_devices, parse_value, read_request, select,
                               slurm_cross_check)

pytestmark = pytest.mark.unit

# Four GPUs in PCI order; the last two have their minors swapped (the driver
# does not promise /dev/nvidiaN follows PCI order).
GPUS = [
    Gpu(0, 0, "GPU-8a41a3a5-2a7b-5d6a-7d8a-0f2c1c5e9a3b", "0000:3b:00.0"),
    Gpu(1, 1, "GPU-4ce175fe-a313-4c4a-d620-560e96e8ef2e", "0000:5e:00.0"),
    Gpu(2, 3, "GPU-e953c3c5-dba7-029e-ce44-7b51417131df", "0000:86:00.0"),
    Gpu(3, 2, "GPU-1b724e78-eef5-4163-d43c-e4da15d41176", "0000:af:00.0"),
]
MIG = "MIG-3f1b8c1e-6a1d-5c8e-9d3a-1c2b3d4e5f60"
PARENTS = {MIG: GPUS[0].uuid}


def minors(selection):
    return [g.minor for g in selection.gpus]


@pytest.mark.parametrize("env, source, mode", [
    ({}, "default", "all"),
    ({"NVIDIA_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "2", "SLURM_JOB_GPUS": "3"},
     "NVIDIA_VISIBLE_DEVICES", "list"),
    ({"CUDA_VISIBLE_DEVICES": "2", "SLURM_STEP_GPUS": "1", "SLURM_JOB_GPUS": "3"}, "CUDA_VISIBLE_DEVICES", "list"),
    ({"SLURM_STEP_GPUS": "1", "SLURM_JOB_GPUS": "3", "GPU_DEVICE_ORDINAL": "0"}, "SLURM_STEP_GPUS", "list"),
    ({"SLURM_JOB_GPUS": "3", "GPU_DEVICE_ORDINAL": "0"}, "SLURM_JOB_GPUS", "list"),
    ({"GPU_DEVICE_ORDINAL": "0"}, "GPU_DEVICE_ORDINAL", "list"),
    # Slurm leaves its variables empty (or "(null)") without GPUs: fall through
    ({"SLURM_JOB_GPUS": "", "GPU_DEVICE_ORDINAL": "(null)"}, "default", "all"),
    # NVIDIA: set but empty is void; CUDA: empty means no device
    ({"NVIDIA_VISIBLE_DEVICES": "", "CUDA_VISIBLE_DEVICES": "0"}, "NVIDIA_VISIBLE_DEVICES", "void"),
    ({"CUDA_VISIBLE_DEVICES": ""}, "CUDA_VISIBLE_DEVICES", "none"),
    ({"NVIDIA_VISIBLE_DEVICES": "all"}, "NVIDIA_VISIBLE_DEVICES", "all"),
    ({"NVIDIA_VISIBLE_DEVICES": "none"}, "NVIDIA_VISIBLE_DEVICES", "none"),
    ({"NVIDIA_VISIBLE_DEVICES": "void"}, "NVIDIA_VISIBLE_DEVICES", "void"),
    ({"CUDA_VISIBLE_DEVICES": "ALL"}, "CUDA_VISIBLE_DEVICES", "all"),
])
def test_precedence_and_words(env, source, mode):
    request = read_request(env)
    assert (request.source, request.mode) == (source, mode)


# (variable, value, visible minors, expected minors in the order asked)
TABLE = [
    # host numbering (nvidia-smi index = PCI order)
    ("NVIDIA_VISIBLE_DEVICES", "2", [0, 1, 3, 2], [3]),
    ("NVIDIA_VISIBLE_DEVICES", "3,0", [0, 1, 3, 2], [2, 0]),
    ("NVIDIA_VISIBLE_DEVICES", "all", [0, 1, 3, 2], [0, 1, 3, 2]),
    # CUDA numbering, no device constraint: same as host
    ("CUDA_VISIBLE_DEVICES", "2", [0, 1, 3, 2], [3]),
    ("CUDA_VISIBLE_DEVICES", "1,0,1", [0, 1, 3, 2], [1, 0]),     # duplicates dropped
    # CUDA numbering under Slurm ConstrainDevices: only minors 3 and 2 open -> 0,1 are those
    ("CUDA_VISIBLE_DEVICES", "0,1", [3, 2], [3, 2]),
    ("CUDA_VISIBLE_DEVICES", "1", [3, 2], [2]),
    ("GPU_DEVICE_ORDINAL", "0", [1], [1]),
    ("CUDA_VISIBLE_DEVICES", "all", [3, 2], [3, 2]),
    # a negative index ends the list, as in CUDA
    ("CUDA_VISIBLE_DEVICES", "1,-1,2", [0, 1, 3, 2], [1]),
    ("CUDA_VISIBLE_DEVICES", "-1", [0, 1, 3, 2], []),
    # Slurm GRES indices: i-th /dev/nvidiaN by N, whatever the constraint
    ("SLURM_JOB_GPUS", "2,3", [0, 1, 3, 2], [2, 3]),
    ("SLURM_STEP_GPUS", "2", [2], [2]),
    # UUIDs: full, a unique prefix, any case
    ("CUDA_VISIBLE_DEVICES", "GPU-e953c3c5-dba7-029e-ce44-7b51417131df", [0, 1, 3, 2], [3]),
    ("NVIDIA_VISIBLE_DEVICES", "GPU-1b72,GPU-8A41", [0, 1, 3, 2], [2, 0]),
    ("CUDA_VISIBLE_DEVICES", "GPU-4ce1,0", [0, 1, 3, 2], [1, 0]),
    # none/void select no GPU
    ("NVIDIA_VISIBLE_DEVICES", "none", [0, 1, 3, 2], []),
    ("NVIDIA_VISIBLE_DEVICES", "void", [0, 1, 3, 2], []),
]


@pytest.mark.parametrize("variable, value, visible_minors, expected", TABLE)
def test_selection_table(variable, value, visible_minors, expected):
    visible = [g for g in GPUS if g.minor in visible_minors]
    selection = select(read_request({variable: value}), GPUS, visible, PARENTS)
    assert minors(selection) == expected
    assert selection.request.source == variable


def test_default_selects_what_the_process_can_open():
    visible = [GPUS[1], GPUS[2]]
    assert minors(select(read_request({}), GPUS, visible)) == [1, 3]


def test_void_injects_nothing_none_injects_the_driver():
    assert not select(read_request({"NVIDIA_VISIBLE_DEVICES": "void"}), GPUS, GPUS).inject
    none = select(read_request({"NVIDIA_VISIBLE_DEVICES": "none"}), GPUS, GPUS)
    assert none.inject and none.gpus == []


@pytest.mark.parametrize("value", [MIG, f"MIG-{GPUS[0].uuid}/1/0"])
def test_mig_uuids_select_their_parent_gpu(value):
    selection = select(read_request({"CUDA_VISIBLE_DEVICES": value}), GPUS, GPUS, PARENTS)
    assert selection.gpus == []
    assert selection.migs == [(value, GPUS[0])]
    assert [g.minor for g in selection.nodes_needed] == [0]
    assert container_visible_devices(selection, selection.nodes_needed) == value


@pytest.mark.parametrize("variable, value, message", [
    ("CUDA_VISIBLE_DEVICES", "0,foo", "'foo' is not a GPU index"),
    ("CUDA_VISIBLE_DEVICES", "0,,1", "empty entry"),
    ("NVIDIA_VISIBLE_DEVICES", "4", "asks for GPU 4 but this node has 4 GPU(s)"),
    ("CUDA_VISIBLE_DEVICES", "2", "asks for GPU 2 but this process can open 2 GPU(s)"),
    ("SLURM_JOB_GPUS", "7", "asks for GPU 7"),
    ("CUDA_VISIBLE_DEVICES", "GPU-ffff", "no GPU on this node match GPU-ffff"),
    ("CUDA_VISIBLE_DEVICES", "GPU-", "4 GPUs on this node match"),
    ("CUDA_VISIBLE_DEVICES", "MIG-00000000-0000-0000-0000-000000000000", "no GPU on this node has that MIG"),
    ("CUDA_VISIBLE_DEVICES", "GPU-8a41", "which this process may not open"),
])
def test_bad_selections_are_errors(variable, value, message):
    visible = [GPUS[2], GPUS[3]]      # constrained: only minors 3 and 2
    with pytest.raises(BadSelection) as info:
        select(read_request({variable: value}), GPUS, visible, PARENTS)
    assert message in info.value.message
    assert info.value.exit_code == 11 and info.value.hint


def test_parse_value_keeps_tokens():
    request = parse_value("CUDA_VISIBLE_DEVICES", " 1, GPU-abc ")
    assert request.tokens == ("1", "GPU-abc") and request.numbering == "visible"


@pytest.mark.parametrize("asked, seen_minors, expected", [
    ("3,1", [1, 2], "1,0"),           # isolated runtime: sees only the two, order kept
    ("3,1", [0, 1, 3, 2], "3,1"),     # shared /dev, no constraint: host indices
    ("1,0", [3, 2], "1,0"),           # (visible numbering) constrained to minors 3,2
])
def test_container_renumbering(asked, seen_minors, expected):
    visible = [g for g in GPUS if g.minor in (3, 2)] if seen_minors == [3, 2] else GPUS
    selection = select(read_request({"CUDA_VISIBLE_DEVICES": asked}), GPUS, visible)
    seen = [g for g in GPUS if g.minor in seen_minors]
    assert container_visible_devices(selection, seen) == expected


def test_cross_check_warns_when_gres_order_differs_from_pci_order():
    # Slurm allocated /dev/nvidia2,/dev/nvidia3 (GRES 2,3) and wrote CUDA_VISIBLE_DEVICES=2,3;
    # to CUDA (PCI order) 2,3 are /dev/nvidia3 and /dev/nvidia2: the same set, no warning.
    env = {"CUDA_VISIBLE_DEVICES": "2,3", "SLURM_JOB_GPUS": "2,3"}
    selection = select(read_request(env), GPUS, GPUS)
    assert slurm_cross_check(env, selection, GPUS, GPUS) is None
    # GRES 1,2 -> /dev/nvidia1,/dev/nvidia2, but CUDA's 1,2 are /dev/nvidia1,/dev/nvidia3.
    env = {"CUDA_VISIBLE_DEVICES": "1,2", "SLURM_JOB_GPUS": "1,2"}
    selection = select(read_request(env), GPUS, GPUS)
    warning = slurm_cross_check(env, selection, GPUS, GPUS)
    assert "/dev/nvidia1, /dev/nvidia3 to CUDA" in warning and "allocated /dev/nvidia1, /dev/nvidia2" in warning
