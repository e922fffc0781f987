"""Docker-style resource flags -> cgroup v2 control-file writes.

Everything here is checked before anything is created: `limits_from_cli()`
turns the strings a user typed into a `Limits`, or raises BadArgument with
one line saying which flag was wrong and what to type instead. `Limits.writes()`
then lists the exact (file, value) pairs that hierarchy.py writes, each with
the sentence `--explain` prints.

Flag -> file, as the kernel's cgroup v2 documentation
(Documentation/admin-guide/cgroup-v2.rst) names them:

  --memory              memory.max         hard limit; above it the OOM killer runs
  --memory-swap         memory.swap.max    docker's value is memory+swap, the
                                           kernel's is swap alone: swap - memory
  --memory-reservation  memory.low         best-effort protection from reclaim
  --pids-limit          pids.max           fork()/clone() fail with EAGAIN above it
  --cpus                cpu.max            "QUOTA PERIOD" in microseconds
  --cpu-shares          cpu.weight         v1 shares converted (see cpu_shares_to_weight)
  --cpu-weight          cpu.weight         the v2 value itself, 1..10000
  --cpuset-cpus         cpuset.cpus        which CPUs the tasks may run on
  --device-read-bps     io.max             "MAJ:MIN rbps=N"
  --device-write-bps    io.max             "MAJ:MIN wbps=N"
"""

import math
import os
import re
import stat
from dataclasses import asdict, dataclass, field, fields, replace

from ..errors import BadArgument
from .units import describe_bytes, parse_size

UNLIMITED = -1          # a Limits field holding this writes "max"
CPU_PERIOD_US = 100_000  # docker's and the kernel's default cpu.max period
MIN_MEMORY = 6 << 20     # docker refuses --memory below 6 MiB; so do we
SHARES_MIN, SHARES_MAX = 2, 262_144   # kernel's v1 cpu.shares range (MIN/MAX_SHARES)
WEIGHT_MIN, WEIGHT_MAX = 1, 10_000    # cgroup v2 cpu.weight range

# The resource flags of `minict run` and `minict update`, named as click
# names their parameters, in the order limits_from_cli takes them.
RESOURCE_FLAGS = ("memory", "memory_swap", "memory_reservation", "pids_limit", "cpus",
                  "cpu_shares", "cpu_weight", "cpuset_cpus", "device_read_bps",
                  "device_write_bps")

# The controller each of those flags needs (the first word of its control
# file in the table above). Without root, a flag whose controller is not
# delegated to the caller is refused by name (delegated.py).
FLAG_CONTROLLERS = {"memory": "memory", "memory_swap": "memory", "memory_reservation": "memory",
                    "pids_limit": "pids", "cpus": "cpu", "cpu_shares": "cpu", "cpu_weight": "cpu",
                    "cpuset_cpus": "cpuset", "device_read_bps": "io", "device_write_bps": "io"}

SIZE_HINT = "use a number with an optional binary unit (64m, 1g, 512k) or plain bytes"


@dataclass(frozen=True)
class DeviceRate:
    """One block device's throughput limits (io.max line)."""
    path: str
    major: int
    minor: int
    read_bps: int | None = None   # 0 means "remove the limit" (writes max)
    write_bps: int | None = None


@dataclass(frozen=True)
class ControlWrite:
    """One write to one control file, with the sentence --explain prints.

    `required=False` marks a write that docker makes only as a default
    (swap equal to memory): if this kernel has no such file (no swap
    accounting) it is skipped, as docker does, instead of failing the run.
    """
    filename: str
    value: str
    sentence: str
    required: bool = True

    @property
    def controller(self) -> str:
        return self.filename.split(".", 1)[0]


@dataclass(frozen=True)
class Limits:
    """Resource limits for one container, already validated.

    None means "not asked for, leave the kernel's default". UNLIMITED means
    "asked for no limit" and writes "max".
    """
    memory: int | None = None
    memory_swap: int | None = None        # docker's total memory+swap
    memory_reservation: int | None = None
    pids_limit: int | None = None
    cpus: float | None = None
    cpu_weight: int | None = None
    cpu_shares: int | None = None         # only remembered to narrate the conversion
    cpuset_cpus: str | None = None
    devices: tuple[DeviceRate, ...] = field(default_factory=tuple)
    updating: bool = False                # from `minict update`: no run-time defaults

    def to_dict(self) -> dict:
        """Plain JSON-able data, for the container record (inspect, restart)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Limits":
        return cls(**{**data, "devices": tuple(DeviceRate(**d) for d in data.get("devices", ()))})

    def updated(self, changes: "Limits") -> "Limits":
        """These limits after `minict update` applied `changes` (what the
        container has now, to save in its record). Fields `changes` leaves
        at None keep their value; device rates merge per device."""
        values = {f.name: getattr(changes, f.name) for f in fields(self)
                  if f.name not in ("devices", "updating", "cpu_shares")
                  and getattr(changes, f.name) is not None}
        if changes.cpu_weight is not None:
            values["cpu_shares"] = changes.cpu_shares   # None when --cpu-weight was given
        devices = {(d.major, d.minor): d for d in self.devices}
        for new in changes.devices:
            old = devices.get((new.major, new.minor)) or DeviceRate(new.path, new.major, new.minor)
            devices[(new.major, new.minor)] = DeviceRate(
                new.path, new.major, new.minor,
                read_bps=old.read_bps if new.read_bps is None else new.read_bps,
                write_bps=old.write_bps if new.write_bps is None else new.write_bps)
        return replace(self, **values, devices=tuple(devices[k] for k in sorted(devices)),
                       updating=False)

    def is_empty(self) -> bool:
        return not self.writes(current_memory=0)

    def controllers(self) -> set[str]:
        """The cgroup v2 controllers these limits need enabled."""
        return {w.controller for w in self.writes(current_memory=0)}

    def writes(self, current_memory: int | None = None) -> list[ControlWrite]:
        """The control-file writes, in the order they are made.

        current_memory is memory.max as the cgroup holds it now; `minict
        update --memory-swap` without --memory needs it to turn docker's
        total into the kernel's swap-only figure.
        """
        out: list[ControlWrite] = []
        if self.memory is not None:
            out.append(ControlWrite("memory.max", str(self.memory),
                                    f"Limit memory to {describe_bytes(self.memory)}"))
        out.extend(self._swap_writes(current_memory))
        if self.memory_reservation is not None:
            out.append(ControlWrite(
                "memory.low", str(self.memory_reservation),
                f"Protect {describe_bytes(self.memory_reservation)} of memory from reclaim"))
        if self.pids_limit is not None:
            if self.pids_limit == UNLIMITED:
                out.append(ControlWrite("pids.max", "max", "Allow any number of processes"))
            else:
                out.append(ControlWrite("pids.max", str(self.pids_limit),
                                        f"Allow at most {self.pids_limit} processes"))
        if self.cpus is not None:
            quota = cpus_to_quota(self.cpus)
            out.append(ControlWrite(
                "cpu.max", f"{quota} {CPU_PERIOD_US}",
                f"Limit CPU time to {self.cpus:g} CPUs ({quota} us in every {CPU_PERIOD_US} us)"))
        if self.cpu_weight is not None:
            why = (f"--cpu-shares {self.cpu_shares} is cpu.weight {self.cpu_weight}"
                   if self.cpu_shares is not None else f"CPU weight {self.cpu_weight}")
            out.append(ControlWrite("cpu.weight", str(self.cpu_weight),
                                    f"Set the CPU share under contention ({why}; default 100)"))
        if self.cpuset_cpus is not None:
            out.append(ControlWrite("cpuset.cpus", self.cpuset_cpus,
                                    f"Run only on CPUs {self.cpuset_cpus}"))
        for dev in self.devices:
            out.append(_io_write(dev))
        return out

    def _swap_writes(self, current_memory: int | None) -> list[ControlWrite]:
        if self.memory_swap == UNLIMITED:
            return [ControlWrite("memory.swap.max", "max", "Allow unlimited swap")]
        if self.memory_swap is not None:
            memory = self.memory if self.memory is not None else current_memory
            if memory is None:
                raise BadArgument("--memory-swap needs a memory limit to subtract from",
                                  "the container has no --memory; set one with --memory")
            if self.memory_swap < memory:
                raise BadArgument(
                    f"--memory-swap {describe_bytes(self.memory_swap)} is smaller than the "
                    f"memory limit {describe_bytes(memory)}",
                    "--memory-swap counts memory plus swap: give a value >= --memory, or -1")
            swap = self.memory_swap - memory
            return [ControlWrite("memory.swap.max", str(swap),
                                 f"Allow {describe_bytes(swap)} of swap (memory+swap = "
                                 f"{describe_bytes(self.memory_swap)})")]
        if self.memory is not None and not self.updating:
            # docker: "If --memory-swap is unset, the container can use as much
            # swap as the --memory setting" (docs, "--memory-swap details").
            return [ControlWrite("memory.swap.max", str(self.memory),
                                 f"Allow as much swap as memory ({describe_bytes(self.memory)}, "
                                 "docker's default)", required=False)]
        return []


def _io_write(dev: DeviceRate) -> ControlWrite:
    parts, words = [], []
    for key, rate, verb in (("rbps", dev.read_bps, "reads"), ("wbps", dev.write_bps, "writes")):
        if rate is None:
            continue
        # 0 lifts the limit (docker update's way to remove one): the kernel says "max".
        parts.append(f"{key}={rate if rate else 'max'}")
        words.append(f"{verb} to {describe_bytes(rate)}/s" if rate else f"no limit on {verb}")
    return ControlWrite("io.max", f"{dev.major}:{dev.minor} " + " ".join(parts),
                        f"Throttle {dev.path} ({dev.major}:{dev.minor}) " + " and ".join(words))


# ---- conversions ------------------------------------------------------------

def cpus_to_quota(cpus: float) -> int:
    """--cpus 0.5 -> 50000 (us of CPU time per 100000 us period)."""
    return round(cpus * CPU_PERIOD_US)


def cpu_shares_to_weight(shares: int) -> int:
    """Convert cgroup v1 cpu.shares [2..262144] to v2 cpu.weight [1..10000].

    This is the log-quadratic mapping that runc (opencontainers/runc#4785,
    runc >= 1.3.2) and crun (containers/crun#1767, crun >= 1.23) adopted in
    2025: a curve through (2 -> 1), (1024 -> 100), (262144 -> 10000), so the
    default share of 1024 stays the default weight of 100. The older linear
    formula, 1 + (shares - 2) * 9999 / 262142, turned 1024 into 39 and so gave
    every docker container less CPU than a systemd service (runc#4772).
    """
    if shares <= SHARES_MIN:
        return WEIGHT_MIN
    if shares >= SHARES_MAX:
        return WEIGHT_MAX
    l = math.log2(shares)
    exponent = (l * l + 125 * l) / 612.0 - 7.0 / 34.0
    return math.ceil(10 ** exponent)


# ---- parsing one flag at a time ------------------------------------------------

def _size(flag: str, text: str) -> int:
    try:
        return parse_size(text)
    except ValueError:
        raise BadArgument(f"invalid {flag} {text!r}: not a size", SIZE_HINT) from None


def parse_memory(text: str) -> int | None:
    value = _size("--memory", text)
    if value == 0:
        return None  # docker: 0 means "no limit", the default
    if value < MIN_MEMORY:
        raise BadArgument(f"--memory {text} is below the minimum of 6 MiB",
                          "a container cannot even start in less; docker refuses it too")
    return value


def parse_memory_swap(text: str) -> int | None:
    if text.strip() in ("-1", "max"):
        return UNLIMITED
    value = _size("--memory-swap", text)
    return value or None


def parse_pids_limit(text: str | int) -> int:
    text = str(text).strip()
    if text == "max":
        return UNLIMITED
    if not re.fullmatch(r"-?\d+", text):
        raise BadArgument(f"invalid --pids-limit {text!r}: not a whole number",
                          "give the most processes allowed, e.g. --pids-limit 100 (-1: no limit)")
    value = int(text)
    if value < -1:
        raise BadArgument(f"invalid --pids-limit {text}: negative",
                          "give a positive number, or -1 for no limit")
    return UNLIMITED if value in (0, -1) else value  # docker: 0 and -1 mean unlimited


def parse_cpus(text: str | float, host_cpus: int | None = None) -> float | None:
    text = str(text).strip()
    if not re.fullmatch(r"\d+(\.\d+)?|\.\d+", text):
        raise BadArgument(f"invalid --cpus {text!r}: not a number",
                          "give a number of CPUs, e.g. --cpus 0.5 or --cpus 2")
    value = float(text)
    if value == 0:
        return None  # docker: 0 means "no limit"
    if cpus_to_quota(value) < 1000:
        # The kernel refuses a cpu.max quota under 1 ms (EINVAL).
        raise BadArgument(f"--cpus {text} is below the minimum of 0.01",
                          "the kernel's smallest CPU quota is 1 ms per 100 ms period")
    host_cpus = host_cpus or os.cpu_count() or 1
    if value > host_cpus:
        raise BadArgument(f"--cpus {text} is more than the {host_cpus} CPUs this machine has",
                          f"give a value from 0.01 to {host_cpus}")
    return value


def parse_cpu_shares(text: str | int) -> int | None:
    text = str(text).strip()
    if not re.fullmatch(r"\d+", text):
        raise BadArgument(f"invalid --cpu-shares {text!r}: not a whole number",
                          "give a relative share from 2 to 262144 (1024 is the default)")
    value = int(text)
    if value == 0:
        return None  # docker: 0 means "default"
    if not SHARES_MIN <= value <= SHARES_MAX:
        raise BadArgument(f"--cpu-shares {value} is outside 2..262144",
                          "give a relative share from 2 to 262144 (1024 is the default)")
    return value


def parse_cpu_weight(text: str | int) -> int:
    text = str(text).strip()
    if not re.fullmatch(r"\d+", text) or not WEIGHT_MIN <= int(text) <= WEIGHT_MAX:
        raise BadArgument(f"invalid --cpu-weight {text!r}: not a whole number in 1..10000",
                          "cgroup v2's weight: 100 is the default, 10000 the most")
    return int(text)


_CPU_ITEM = re.compile(r"(\d+)(?:-(\d+))?")


def parse_cpuset(text: str) -> str:
    """Validate a CPU list ("0-3,5"); return it normalised (no spaces)."""
    value = text.replace(" ", "")
    hint = "use CPU numbers and ranges, e.g. --cpuset-cpus 0-1,3"
    if not value:
        raise BadArgument("empty --cpuset-cpus", hint)
    for item in value.split(","):
        match = _CPU_ITEM.fullmatch(item)
        if not match:
            raise BadArgument(f"invalid --cpuset-cpus {text!r}: {item!r} is not a CPU or range", hint)
        first, last = match.group(1), match.group(2)
        if last is not None and int(last) < int(first):
            raise BadArgument(f"invalid --cpuset-cpus {text!r}: range {item} runs backwards", hint)
    return value


def cpuset_members(value: str) -> set[int]:
    """The CPU numbers a (validated) list names: "0-2,5" -> {0, 1, 2, 5}."""
    cpus: set[int] = set()
    for item in value.split(","):
        if not item:
            continue
        first, _, last = item.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def parse_device_rate(flag: str, text: str) -> tuple[str, int, int, int]:
    """'/dev/sda:1mb' -> (path, major, minor, bytes per second).

    The path is stat()ed now (symlinks followed, so /dev/disk/by-id/... works)
    because io.max speaks major:minor, not paths.
    """
    hint = f"use {flag} DEVICE:RATE, e.g. {flag} /dev/sda:1mb"
    path, sep, rate_text = text.rpartition(":")
    if not sep or not path or not rate_text:
        raise BadArgument(f"invalid {flag} {text!r}: expected DEVICE:RATE", hint)
    try:
        rate = parse_size(rate_text)
    except ValueError:
        raise BadArgument(f"invalid {flag} {text!r}: {rate_text!r} is not a rate", hint) from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BadArgument(f"{flag}: no such device {path}", "name a block device, e.g. /dev/sda") from None
    except OSError as exc:
        raise BadArgument(f"{flag}: cannot stat {path}: {exc.strerror}", hint) from None
    if not stat.S_ISBLK(st.st_mode):
        raise BadArgument(f"{flag}: {path} is not a block device",
                          "io limits apply to disks: name one from lsblk, e.g. /dev/sda")
    return path, os.major(st.st_rdev), os.minor(st.st_rdev), rate


def _merge_devices(read: list[tuple], write: list[tuple]) -> tuple[DeviceRate, ...]:
    """One DeviceRate per major:minor, read and write limits together."""
    by_dev: dict[tuple[int, int], dict] = {}
    for kind, entries in (("read_bps", read), ("write_bps", write)):
        for path, major, minor, rate in entries:
            slot = by_dev.setdefault((major, minor), {"path": path})
            slot[kind] = rate
    return tuple(DeviceRate(path=v.pop("path"), major=k[0], minor=k[1], **v)
                 for k, v in sorted(by_dev.items()))


# ---- the whole flag set ----------------------------------------------------------

def limits_from_cli(memory: str | None = None,
                    memory_swap: str | None = None,
                    memory_reservation: str | None = None,
                    pids_limit: str | int | None = None,
                    cpus: str | float | None = None,
                    cpu_shares: str | int | None = None,
                    cpu_weight: str | int | None = None,
                    cpuset_cpus: str | None = None,
                    device_read_bps: tuple[str, ...] | list[str] = (),
                    device_write_bps: tuple[str, ...] | list[str] = (),
                    updating: bool = False,
                    host_cpus: int | None = None) -> Limits:
    """Validate `minict run`/`update` resource flags (strings, as click gives them).

    Raises BadArgument naming the flag; creates nothing. `updating=True` is
    for `minict update`: --memory-swap may come without --memory (the
    container's current memory.max is used) and no docker defaults are added.
    """
    mem = parse_memory(memory) if memory is not None else None
    swap = parse_memory_swap(memory_swap) if memory_swap is not None else None
    low = _size("--memory-reservation", memory_reservation) if memory_reservation is not None else None
    if swap is not None and swap != UNLIMITED and mem is None and not updating:
        raise BadArgument("--memory-swap needs --memory",
                          "--memory-swap is memory plus swap: e.g. --memory 64m --memory-swap 128m")
    if swap not in (None, UNLIMITED) and mem is not None and swap < mem:
        raise BadArgument(f"--memory-swap {memory_swap} is smaller than --memory {memory}",
                          "--memory-swap counts memory plus swap: give a value >= --memory, or -1")
    if low is not None and mem is not None and low > mem:
        raise BadArgument(f"--memory-reservation {memory_reservation} is above --memory {memory}",
                          "the reservation is a soft floor under the hard limit: make it smaller")
    shares = parse_cpu_shares(cpu_shares) if cpu_shares is not None else None
    weight = parse_cpu_weight(cpu_weight) if cpu_weight is not None else None
    if shares is not None and weight is not None:
        raise BadArgument("--cpu-shares and --cpu-weight both set cpu.weight",
                          "give one: --cpu-weight is cgroup v2's own scale, --cpu-shares docker's")
    if shares is not None:
        weight = cpu_shares_to_weight(shares)
    reads = [parse_device_rate("--device-read-bps", t) for t in device_read_bps]
    writes = [parse_device_rate("--device-write-bps", t) for t in device_write_bps]
    return Limits(
        memory=mem,
        memory_swap=swap,
        memory_reservation=low or None,
        pids_limit=parse_pids_limit(pids_limit) if pids_limit is not None else None,
        cpus=parse_cpus(cpus, host_cpus) if cpus is not None else None,
        cpu_weight=weight,
        cpu_shares=shares,
        cpuset_cpus=parse_cpuset(cpuset_cpus) if cpuset_cpus is not None else None,
        devices=_merge_devices(reads, writes),
        updating=updating,
    )
