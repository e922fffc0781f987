"""Reading a cgroup's accounting files, and printing them like `docker stats`.

One sample is a snapshot of the counters a cgroup v2 directory exposes
(Documentation/admin-guide/cgroup-v2.rst, "Memory Interface Files",
"PID Interface Files", "CPU Interface Files", "IO Interface Files"):

  memory.current  bytes in use now          memory.max     the limit or "max"
  memory.events   "oom N", "oom_kill N"...   pids.current   tasks now
  pids.max        the limit or "max"         cpu.stat       usage_usec, throttling
  io.stat         one line per device: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.."

CPU % needs two samples: the CPU time used between them divided by the wall
time between them (100% = one CPU busy, like docker, so 4 busy CPUs show 400%).
A file that is missing (its controller not enabled) leaves its field None,
printed as "--".
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from .units import binary_size, decimal_size


@dataclass
class Sample:
    """The counters of one cgroup at one moment (time.monotonic() seconds)."""
    taken_at: float
    memory_current: int | None = None
    memory_max: int | None = None                                   # None: no limit ("max")
    memory_events: dict[str, int] = field(default_factory=dict)      # "oom_kill" -> count...
    pids_current: int | None = None
    pids_max: int | None = None                                     # None: no limit
    cpu: dict[str, int] = field(default_factory=dict)                # cpu.stat
    io: dict[str, dict[str, int]] = field(default_factory=dict)      # io.stat: "MAJ:MIN" -> counters

    @property
    def cpu_usage_usec(self) -> int | None:
        return self.cpu.get("usage_usec")

    @property
    def io_read_bytes(self) -> int:
        return sum(dev.get("rbytes", 0) for dev in self.io.values())

    @property
    def io_write_bytes(self) -> int:
        return sum(dev.get("wbytes", 0) for dev in self.io.values())


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _number_or_max(text: str | None) -> int | None:
    """'12345' -> 12345; 'max' (no limit) or a missing file -> None."""
    if text is None or text.strip() == "max":
        return None
    return int(text.strip())


def parse_flat_keyed(text: str | None) -> dict[str, int]:
    """'oom 0\\noom_kill 1\\n' -> {'oom': 0, 'oom_kill': 1} (memory.events, cpu.stat)."""
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def parse_io_stat(text: str | None) -> dict[str, dict[str, int]]:
    """'8:0 rbytes=1 wbytes=2 rios=3 ...' lines -> {'8:0': {'rbytes': 1, ...}}."""
    out = {}
    for line in (text or "").splitlines():
        device, *pairs = line.split()
        counters = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            if value.isdigit():
                counters[key] = int(value)
        out[device] = counters
    return out


def read_sample(path: Path) -> Sample:
    """Read one cgroup directory's counters (reads only)."""
    path = Path(path)
    return Sample(
        taken_at=time.monotonic(),
        memory_current=_number_or_max(_read(path / "memory.current")),
        memory_max=_number_or_max(_read(path / "memory.max")),
        memory_events=parse_flat_keyed(_read(path / "memory.events")),
        pids_current=_number_or_max(_read(path / "pids.current")),
        pids_max=_number_or_max(_read(path / "pids.max")),
        cpu=parse_flat_keyed(_read(path / "cpu.stat")),
        io=parse_io_stat(_read(path / "io.stat")),
    )


def cpu_percent(before: Sample, after: Sample) -> float | None:
    """CPU used between two samples, as % of one CPU (docker's convention)."""
    if before.cpu_usage_usec is None or after.cpu_usage_usec is None:
        return None
    wall_usec = (after.taken_at - before.taken_at) * 1_000_000
    if wall_usec <= 0:
        return None
    return 100.0 * (after.cpu_usage_usec - before.cpu_usage_usec) / wall_usec


def host_memory_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemTotal, shown as the limit of a container without one (as docker does)."""
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


HEADER = ("CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O",
          "PIDS")


def read_net_io(pid: int | None, proc: Path = Path("/proc")) -> tuple[int, int] | None:
    """(bytes received, bytes sent) by the network namespace of process
    `pid`, loopback left out: /proc/PID/net/dev shows the counters of the
    namespace the process is in (a network-namespace counter, not a cgroup
    one). None when it cannot be read."""
    text = _read(proc / str(pid) / "net" / "dev") if pid else None
    if text is None:
        return None
    received = sent = 0
    for line in text.splitlines()[2:]:            # two header lines
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            received += int(fields[0])
            sent += int(fields[8])
    return received, sent


def stats_row(container_id: str, name: str, before: Sample, after: Sample,
              host_memory: int | None, net: tuple[int, int] | None = None) -> tuple[str, ...]:
    """One row of `minict stats`, the columns docker prints (`net`: from
    read_net_io)."""
    cpu = cpu_percent(before, after)
    limit = after.memory_max if after.memory_max is not None else host_memory
    used = after.memory_current
    if used is None:
        mem, mem_pct = "--", "--"
    else:
        mem = f"{binary_size(used)} / {binary_size(limit) if limit else '--'}"
        mem_pct = f"{100.0 * used / limit:.2f}%" if limit else "--"
    block = f"{decimal_size(after.io_read_bytes)} / {decimal_size(after.io_write_bytes)}"
    pids = "--" if after.pids_current is None else str(after.pids_current)
    return (container_id[:12], name, "--" if cpu is None else f"{cpu:.2f}%",
            mem, mem_pct, net_io_text(net), block, pids)


def net_io_text(net: tuple[int, int] | None) -> str:
    """The NET I/O cell: received / sent, as docker prints it."""
    return "--" if net is None else f"{decimal_size(net[0])} / {decimal_size(net[1])}"


def format_table(rows: list[tuple[str, ...]], header: tuple[str, ...] = HEADER) -> str:
    """Left-aligned columns separated by three spaces, like docker's tabwriter."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)
