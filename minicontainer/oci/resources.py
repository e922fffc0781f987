"""config.json's linux.resources, checked: the limits minict-oci sets on
cgroup v2 (oci/cgroup.py writes them), and those it refuses by name.

Used by oci/config.py for a whole config, and by `update --resources` for
the resources alone.
"""

import re

from ..errors import BadConfig, UnsupportedConfig
from . import fields

# Limits in linux.resources that minict-oci does not set (refused when
# asked), and values that ask nothing (cgroup v2 is always hierarchical).
NOT_DONE = {"kernel": "kernel memory limits are not supported (gone in cgroup v2)",
            "kernelTCP": "kernel TCP memory limits are not supported",
            "swappiness": "swappiness is not supported (cgroup v1 only)",
            "disableOOMKiller": "disabling the OOM killer is not supported",
            "realtimeRuntime": "real-time CPU limits are not supported",
            "realtimePeriod": "real-time CPU limits are not supported",
            "burst": "CPU burst is not supported", "mems": "cpuset.mems is not supported",
            "idle": "SCHED_IDLE cgroups are not supported"}
HARMLESS = {("useHierarchy", True), ("disableOOMKiller", False), ("checkBeforeUpdate", False),
            ("checkBeforeUpdate", True), ("mems", ""), ("idle", 0)}
BLOCK_IO_DONE = ("throttleReadBpsDevice", "throttleWriteBpsDevice")   # io.max's rbps, wbps
UNIFIED_DONE = ("cpu.weight",)     # what minict run's --cpu-weight writes


def check(resources) -> None:
    fields.an_object(resources, "linux.resources")
    for i, rule in enumerate(fields.a_list(resources.get("devices", []), "linux.resources.devices")):
        where = f"linux.resources.devices[{i}]"
        fields.an_object(rule, where)
        fields.a_bool(rule.get("allow"), f"{where}.allow", required=True)
        if rule.get("type", "a") not in ("a", "c", "b"):
            raise BadConfig(f"{where}.type must be a, c or b", "")
        access = rule.get("access", "rwm")
        if not isinstance(access, str) or not re.fullmatch(r"[rwm]{1,3}", access):
            raise BadConfig(f"{where}.access {access!r} is not letters from rwm", "")
        for key in ("major", "minor"):
            if rule.get(key) is not None:
                fields.an_int(rule[key], f"{where}.{key}")
    for group, keys in (("memory", ("limit", "reservation", "swap")),
                        ("cpu", ("shares", "quota", "period")), ("pids", ("limit",))):
        values = fields.an_object(resources.get(group, {}), f"linux.resources.{group}")
        for key, value in values.items():
            where = f"linux.resources.{group}.{key}"
            if value is None or (key, value) in HARMLESS:
                continue
            if key in keys:
                fields.an_int(value, where)
            elif group == "cpu" and key == "cpus":
                fields.a_string(value, where)
            elif key in NOT_DONE:
                raise UnsupportedConfig(f"config.json: {where}: {NOT_DONE[key]} by minict-oci",
                                        f"remove {where}")
            else:
                raise BadConfig(f"{where} is not a field of the spec", "")
    _check_block_io(resources.get("blockIO", {}))
    unified = fields.an_object(resources.get("unified", {}), "linux.resources.unified")
    for key, value in unified.items():
        where = f"linux.resources.unified.{key}"
        if key not in UNIFIED_DONE:
            raise UnsupportedConfig(f"config.json: {where}: of the raw cgroup v2 files minict-oci "
                                    f"writes only {', '.join(UNIFIED_DONE)}", f"remove {where}")
        if not (isinstance(value, str) and value.isdigit()):
            raise BadConfig(f"{where} {value!r} is not a number in a string", "")


def _check_block_io(block_io) -> None:
    """Of blockIO, the bytes-per-second throttles (io.max); the rest is refused by name."""
    block_io = fields.an_object(block_io, "linux.resources.blockIO")
    for key, value in block_io.items():
        where = f"linux.resources.blockIO.{key}"
        if value in (None, [], 0):
            continue
        if key not in BLOCK_IO_DONE:
            raise UnsupportedConfig(f"config.json: {where}: of blockIO minict-oci does only "
                                    f"{' and '.join(BLOCK_IO_DONE)}", f"remove {where}")
        for i, entry in enumerate(fields.a_list(value, where)):
            fields.an_object(entry, f"{where}[{i}]")
            for field in ("major", "minor", "rate"):
                fields.an_int(entry.get(field), f"{where}[{i}].{field}", required=True)
