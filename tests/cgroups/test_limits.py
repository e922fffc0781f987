"""Resource flags -> validated Limits -> the exact control-file writes."""

import json
import os

import pytest

from minicontainer.cgroups.limits import (UNLIMITED, DeviceRate, Limits, cpu_shares_to_weight,
                                          cpuset_members, limits_from_cli)
from minicontainer.errors import BadArgument

pytestmark = pytest.mark.unit


def writes(**flags) -> dict[str, str]:
    """{file: value} that the flags produce on a 2-CPU machine."""
    return {w.filename: w.value for w in limits_from_cli(host_cpus=2, **flags).writes()}


@pytest.mark.parametrize("flags, expected", [
    ({}, {}),
    ({"memory": "64m"}, {"memory.max": "67108864", "memory.swap.max": "67108864"}),
    ({"memory": "64m", "memory_swap": "64m"}, {"memory.max": "67108864", "memory.swap.max": "0"}),
    ({"memory": "64m", "memory_swap": "128m"},
     {"memory.max": "67108864", "memory.swap.max": "67108864"}),
    ({"memory": "64m", "memory_swap": "1g"},
     {"memory.max": "67108864", "memory.swap.max": str((1 << 30) - (64 << 20))}),
    ({"memory": "64m", "memory_swap": "-1"}, {"memory.max": "67108864", "memory.swap.max": "max"}),
    ({"memory": "1g", "memory_reservation": "512m"},
     {"memory.max": str(1 << 30), "memory.swap.max": str(1 << 30), "memory.low": str(512 << 20)}),
    ({"memory_reservation": "100m"}, {"memory.low": str(100 << 20)}),
    ({"memory": "0"}, {}),   # docker: 0 = no limit
    ({"pids_limit": "20"}, {"pids.max": "20"}),
    ({"pids_limit": 20}, {"pids.max": "20"}),
    ({"pids_limit": "-1"}, {"pids.max": "max"}),
    ({"pids_limit": "0"}, {"pids.max": "max"}),
    ({"pids_limit": "max"}, {"pids.max": "max"}),
    ({"cpus": "0.5"}, {"cpu.max": "50000 100000"}),
    ({"cpus": "1.5"}, {"cpu.max": "150000 100000"}),
    ({"cpus": "2"}, {"cpu.max": "200000 100000"}),
    ({"cpus": ".25"}, {"cpu.max": "25000 100000"}),
    ({"cpus": "0.01"}, {"cpu.max": "1000 100000"}),
    ({"cpus": "0"}, {}),
    ({"cpu_shares": "1024"}, {"cpu.weight": "100"}),
    ({"cpu_shares": "512"}, {"cpu.weight": "59"}),
    ({"cpu_shares": "2"}, {"cpu.weight": "1"}),
    ({"cpu_shares": "262144"}, {"cpu.weight": "10000"}),
    ({"cpu_weight": "300"}, {"cpu.weight": "300"}),
    ({"cpuset_cpus": "0-1"}, {"cpuset.cpus": "0-1"}),
    ({"cpuset_cpus": "0, 1"}, {"cpuset.cpus": "0,1"}),
    ({"cpuset_cpus": "0-3,5,7-8"}, {"cpuset.cpus": "0-3,5,7-8"}),
])
def test_flags_to_writes(flags, expected):
    assert writes(**flags) == expected


def test_implied_swap_is_optional_and_explicit_swap_is_not():
    implied = limits_from_cli(memory="64m").writes()
    explicit = limits_from_cli(memory="64m", memory_swap="128m").writes()
    assert [w.required for w in implied if w.filename == "memory.swap.max"] == [False]
    assert [w.required for w in explicit if w.filename == "memory.swap.max"] == [True]


def test_update_adds_no_docker_defaults_and_uses_current_memory():
    only_memory = limits_from_cli(memory="128m", updating=True)
    assert [w.filename for w in only_memory.writes()] == ["memory.max"]
    only_swap = limits_from_cli(memory_swap="96m", updating=True)
    assert {w.filename: w.value for w in only_swap.writes(current_memory=64 << 20)} == \
        {"memory.swap.max": str(32 << 20)}
    with pytest.raises(BadArgument, match="needs a memory limit"):
        only_swap.writes(current_memory=None)
    with pytest.raises(BadArgument, match="smaller than the memory limit"):
        only_swap.writes(current_memory=128 << 20)


def test_sentences_name_the_limit_in_human_units():
    sentences = {w.filename: w.sentence for w in
                 limits_from_cli(memory="64m", pids_limit="20", cpus="0.5", cpu_shares="512",
                                 host_cpus=2).writes()}
    assert sentences["memory.max"] == "Limit memory to 64 MiB"
    assert sentences["pids.max"] == "Allow at most 20 processes"
    assert "0.5 CPUs" in sentences["cpu.max"]
    assert "--cpu-shares 512 is cpu.weight 59" in sentences["cpu.weight"]


def test_controllers_and_emptiness():
    assert limits_from_cli().is_empty()
    assert Limits().controllers() == set()
    limits = limits_from_cli(memory="64m", pids_limit="5", cpus="1", cpuset_cpus="0", host_cpus=2)
    assert limits.controllers() == {"memory", "pids", "cpu", "cpuset"}
    assert not limits.is_empty()


@pytest.mark.parametrize("shares, weight", [
    (2, 1), (3, 2), (10, 4), (100, 17), (1024, 100), (2048, 174), (4096, 303),
    (100000, 4340), (262143, 10000), (262144, 10000),
])
def test_cpu_shares_to_weight_curve(shares, weight):
    # Points of runc/crun's log-quadratic curve: 2->1, 1024->100, 262144->10000.
    assert cpu_shares_to_weight(shares) == weight


def test_cpu_shares_to_weight_is_monotonic_and_in_range():
    weights = [cpu_shares_to_weight(s) for s in range(2, 262145, 97)]
    assert weights == sorted(weights)
    assert weights[0] == 1 and max(weights) <= 10000


@pytest.mark.parametrize("flags, message", [
    ({"memory": "64q"}, "invalid --memory '64q': not a size"),
    ({"memory": "-1"}, "invalid --memory '-1': not a size"),
    ({"memory": "1m"}, "--memory 1m is below the minimum of 6 MiB"),
    ({"memory_swap": "128m"}, "--memory-swap needs --memory"),
    ({"memory": "64m", "memory_swap": "32m"}, "--memory-swap 32m is smaller than --memory 64m"),
    ({"memory": "64m", "memory_swap": "lots"}, "invalid --memory-swap 'lots'"),
    ({"memory": "64m", "memory_reservation": "128m"}, "--memory-reservation 128m is above --memory 64m"),
    ({"memory_reservation": "x"}, "invalid --memory-reservation 'x'"),
    ({"pids_limit": "ten"}, "invalid --pids-limit 'ten': not a whole number"),
    ({"pids_limit": "-5"}, "invalid --pids-limit -5: negative"),
    ({"pids_limit": "1.5"}, "invalid --pids-limit '1.5'"),
    ({"cpus": "half"}, "invalid --cpus 'half': not a number"),
    ({"cpus": "-1"}, "invalid --cpus '-1'"),
    ({"cpus": "nan"}, "invalid --cpus 'nan'"),
    ({"cpus": "0.001"}, "--cpus 0.001 is below the minimum of 0.01"),
    ({"cpus": "3"}, "--cpus 3 is more than the 2 CPUs this machine has"),
    ({"cpu_shares": "1"}, "--cpu-shares 1 is outside 2..262144"),
    ({"cpu_shares": "300000"}, "--cpu-shares 300000 is outside 2..262144"),
    ({"cpu_shares": "-3"}, "invalid --cpu-shares '-3'"),
    ({"cpu_weight": "0"}, "invalid --cpu-weight '0'"),
    ({"cpu_weight": "10001"}, "invalid --cpu-weight '10001'"),
    ({"cpu_shares": "512", "cpu_weight": "50"}, "--cpu-shares and --cpu-weight both set cpu.weight"),
    ({"cpuset_cpus": ""}, "empty --cpuset-cpus"),
    ({"cpuset_cpus": "3-1"}, "range 3-1 runs backwards"),
    ({"cpuset_cpus": "0,,1"}, "'' is not a CPU or range"),
    ({"cpuset_cpus": "a-b"}, "'a-b' is not a CPU or range"),
    ({"cpuset_cpus": "0-"}, "'0-' is not a CPU or range"),
    ({"device_read_bps": ("/dev/null",)}, "expected DEVICE:RATE"),
    ({"device_read_bps": ("/dev/null:fast",)}, "'fast' is not a rate"),
    ({"device_write_bps": ("/dev/no-such-disk:1m",)}, "no such device /dev/no-such-disk"),
    ({"device_write_bps": ("/dev/null:1m",)}, "/dev/null is not a block device"),
])
def test_bad_values_are_one_line_with_a_hint(flags, message):
    with pytest.raises(BadArgument) as caught:
        limits_from_cli(host_cpus=2, **flags)
    error = caught.value
    assert message in error.message
    assert error.hint, "every refusal says what to do"
    assert "\n" not in error.one_line()
    assert error.exit_code == 27


@pytest.mark.root
def test_device_rates_resolve_major_minor(tmp_path):
    # A block device node of our own (mknod needs root); io.max wants numbers.
    disk = tmp_path / "disk"
    os.mknod(disk, 0o600 | 0o060000, os.makedev(7, 42))   # S_IFBLK
    link = tmp_path / "by-id-link"
    link.symlink_to(disk)
    limits = limits_from_cli(device_read_bps=(f"{disk}:1mb",),
                             device_write_bps=(f"{link}:512k", f"{disk}:0"))
    # one io.max line per device; the later write rate wins; 0 lifts the limit
    assert [w.value for w in limits.writes()] == ["7:42 rbps=1048576 wbps=max"]
    assert limits.controllers() == {"io"}
    only_write = limits_from_cli(device_write_bps=(f"{link}:2m",))
    (w,) = only_write.writes()
    assert (w.filename, w.value) == ("io.max", "7:42 wbps=2097152")
    assert "writes to 2 MiB/s" in w.sentence


def test_cpuset_members():
    assert cpuset_members("0-2,5") == {0, 1, 2, 5}
    assert cpuset_members("3") == {3}


def test_unlimited_marker_is_distinct_from_unset():
    assert limits_from_cli(pids_limit="-1").pids_limit == UNLIMITED
    assert limits_from_cli().pids_limit is None


def test_limits_survive_a_json_round_trip():
    limits = limits_from_cli(memory="64m", memory_swap="-1", pids_limit="7", cpus="0.5",
                             cpu_shares="512", cpuset_cpus="0", host_cpus=2)
    with_device = Limits(**{**limits.to_dict(), "devices": ()})
    assert Limits.from_dict(json.loads(json.dumps(limits.to_dict()))) == limits == with_device
    disk = Limits(devices=(DeviceRate("/dev/vda", 254, 0, write_bps=1 << 20),))
    assert Limits.from_dict(json.loads(json.dumps(disk.to_dict()))) == disk


def test_updated_applies_only_what_update_changed():
    saved = Limits(memory=64 << 20, pids_limit=20, cpus=0.5, cpu_weight=59, cpu_shares=512,
                   devices=(DeviceRate("/dev/sda", 8, 0, read_bps=1 << 20),))
    changes = limits_from_cli(memory="128m", cpu_weight="300", pids_limit="-1", updating=True)
    now = saved.updated(changes)
    assert (now.memory, now.pids_limit, now.cpus) == (128 << 20, UNLIMITED, 0.5)
    assert (now.cpu_weight, now.cpu_shares) == (300, None)   # the shares no longer apply
    assert now.devices == saved.devices and now.updating is False
    assert Limits.from_dict(json.loads(json.dumps(now.to_dict()))) == now


def test_updated_merges_device_rates_per_device():
    saved = Limits(devices=(DeviceRate("/dev/sda", 8, 0, read_bps=1 << 20),))
    changes = Limits(devices=(DeviceRate("/dev/sda", 8, 0, write_bps=2 << 20),
                              DeviceRate("/dev/sdb", 8, 16, read_bps=0)), updating=True)
    assert saved.updated(changes).devices == (
        DeviceRate("/dev/sda", 8, 0, read_bps=1 << 20, write_bps=2 << 20),
        DeviceRate("/dev/sdb", 8, 16, read_bps=0))
