"""runtime/resources.py, the runtime's side of cgroups, against fake
cgroup trees (the VM tier runs it against the kernel's): what cleanup may
remove, what inspect shows, and that the flags reach the engine's record."""

import pytest

from minicontainer.cgroups.limits import RESOURCE_FLAGS
from minicontainer.cgroups.limits import limits_from_cli
from minicontainer.runtime import resources
from tests.cgroups.fakes import Narration, fake_root

pytestmark = pytest.mark.unit


def test_cleanup_removes_ours_and_empty_strangers_but_not_the_living(tmp_path):
    root = fake_root(tmp_path)
    for cid in ("owned", "ours", "stranger-empty", "stranger-busy"):
        (root / "minict" / cid).mkdir(parents=True)
    # another minict root's running container: its cgroup holds processes
    (root / "minict" / "stranger-busy" / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    said = Narration()
    removed = resources.remove_orphans({"owned"}, {"owned", "ours"}, said, root)
    assert removed == ["ours", "stranger-empty"]
    assert sorted(p.name for p in (root / "minict").iterdir()) == ["owned", "stranger-busy"]
    assert said.calls() == [f"rmdir {root}/minict/ours", f"rmdir {root}/minict/stranger-empty"]


def test_release_removes_the_cgroup_once(tmp_path):
    root = fake_root(tmp_path)
    (root / "minict" / "c1").mkdir(parents=True)
    assert resources.release("c1", root=root) == (True, None)
    assert not (root / "minict" / "c1").exists()
    assert resources.release("c1", root=root) == (False, None)   # twice: nothing to do


def test_flags_with_no_value_are_no_limits_and_are_taken_out():
    flags = {"name": "x", **{name: None for name in RESOURCE_FLAGS}, "device_read_bps": ()}
    assert resources.limits_from_flags(flags) is None
    assert flags == {"name": "x"}     # what is left goes to create.py


def test_host_config_speaks_dockers_inspect_fields(tmp_path):
    limits = limits_from_cli(memory="64m", memory_swap="-1", pids_limit="20", cpus="0.5",
                             cpu_shares="512", cpuset_cpus="0", host_cpus=2)
    host = resources.host_config(limits.to_dict())
    assert host == {"Memory": 64 << 20, "MemorySwap": -1, "MemoryReservation": 0,
                    "PidsLimit": 20, "NanoCpus": 500_000_000, "CpuShares": 512, "CpuWeight": 59,
                    "CpusetCpus": "0", "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": []}
    assert resources.host_config({})["Memory"] == 0


def test_the_flag_lists_agree():
    """RESOURCE_FLAGS (the fast path's list), limits_from_cli's parameters and
    the click options of `run`/`update` name the same flags."""
    import inspect
    from minicontainer.cgroups.limits import limits_from_cli as parse
    from minicontainer.cli.cgroups import update_cmd
    assert tuple(inspect.signature(parse).parameters)[:len(RESOURCE_FLAGS)] == RESOURCE_FLAGS
    assert {p.name for p in update_cmd.params} - {"containers"} == set(RESOURCE_FLAGS)
