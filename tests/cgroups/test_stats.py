"""CPU % between two samples, and `minict stats` rows in docker's format."""

import pytest

from minicontainer.cgroups.stats import (HEADER, Sample, cpu_percent, format_table,
                                         host_memory_bytes, parse_flat_keyed, parse_io_stat,
                                         stats_row)

pytestmark = pytest.mark.unit


def sample(t, usage, **kw):
    return Sample(taken_at=t, cpu={"usage_usec": usage}, **kw)


@pytest.mark.parametrize("usage_delta, wall, percent", [
    (500_000, 1.0, 50.0),      # half a CPU
    (2_000_000, 1.0, 200.0),   # two busy CPUs: docker shows 200%
    (0, 2.0, 0.0),
    (150_000, 0.5, 30.0),
])
def test_cpu_percent(usage_delta, wall, percent):
    assert cpu_percent(sample(10.0, 1000), sample(10.0 + wall, 1000 + usage_delta)) == \
        pytest.approx(percent)


def test_cpu_percent_needs_two_distinct_samples_with_cpu_stat():
    assert cpu_percent(sample(1.0, 0), sample(1.0, 10)) is None
    assert cpu_percent(Sample(taken_at=1.0), sample(2.0, 10)) is None


def test_row_with_limit():
    before = sample(0.0, 0)
    after = sample(1.0, 250_000, memory_current=2048000, memory_max=64 << 20, pids_current=3,
                   io={"7:0": {"rbytes": 4096, "wbytes": 3145728}})
    row = stats_row("0123456789abcdef0123", "web", before, after, host_memory=2 << 30,
                    net=(1500, 648))
    assert row == ("0123456789ab", "web", "25.00%", "1.953MiB / 64MiB", "3.05%",
                   "1.5kB / 648B", "4.096kB / 3.146MB", "3")


def test_row_without_limit_shows_host_memory_and_missing_counters():
    after = Sample(taken_at=1.0, memory_current=1 << 20)
    row = stats_row("abc", "abc", Sample(taken_at=0.0), after, host_memory=1 << 30)
    assert row == ("abc", "abc", "--", "1MiB / 1GiB", "0.10%", "--", "0B / 0B", "--")


def test_table_aligns_columns():
    rows = [("abc", "n1", "1.00%", "1MiB / 1GiB", "0.10%", "0B / 0B", "0B / 0B", "1")]
    lines = format_table(rows).splitlines()
    assert lines[0].startswith("CONTAINER ID   NAME   CPU %")
    assert lines[1].startswith("abc            n1     1.00%")
    assert len(HEADER) == len(rows[0])


def test_parsers_skip_what_they_do_not_understand():
    assert parse_flat_keyed("usage_usec 5\nbogus\nnr_periods 2\n") == {"usage_usec": 5,
                                                                       "nr_periods": 2}
    assert parse_io_stat("8:0 rbytes=1 wbytes=2 weird\n") == {"8:0": {"rbytes": 1, "wbytes": 2}}


def test_host_memory(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        2011636 kB\nMemFree:         1873000 kB\n")
    assert host_memory_bytes(meminfo) == 2011636 * 1024
    assert host_memory_bytes(tmp_path / "missing") is None


NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     500       5    0    0    0     0          0         0      500       5    0    0    0     0       0          0
  eth0:    1500      10    0    0    0     0          0         0      648       6    0    0    0     0       0          0
"""


def test_net_io_reads_the_namespace_counters_without_loopback(tmp_path):
    from minicontainer.cgroups.stats import read_net_io
    (tmp_path / "42" / "net").mkdir(parents=True)
    (tmp_path / "42" / "net" / "dev").write_text(NET_DEV)
    assert read_net_io(42, proc=tmp_path) == (1500, 648)
    assert read_net_io(43, proc=tmp_path) is None and read_net_io(None) is None
