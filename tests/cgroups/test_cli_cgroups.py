"""`minict stats` / `minict update` from the command line: bad input, one line, distinct codes."""

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("args, code, message", [
    (["update", "--memory", "12q", "web"], 27, "minict: invalid --memory '12q': not a size"),
    (["update", "--cpus", "lots", "web"], 27, "minict: invalid --cpus 'lots': not a number"),
    (["update", "--pids-limit", "-7", "web"], 27, "minict: invalid --pids-limit -7: negative"),
    (["update", "--cpu-shares", "512", "--cpu-weight", "5", "web"], 27,
     "minict: --cpu-shares and --cpu-weight both set cpu.weight"),
    (["update", "--memory", "64m", "no-such-container"], 30,
     "minict: no such container: no-such-container"),
    (["stats", "--no-stream", "no-such-container"], 30,
     "minict: no such container: no-such-container"),
])
def test_bad_input_is_one_line(minict, args, code, message):
    result = minict(*args)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_update_without_a_limit_is_a_usage_error(minict):
    result = minict("update", "web")
    assert result.returncode == 2
    assert "give at least one limit to change" in result.stderr


def test_stats_with_no_containers_prints_the_header(minict):
    result = minict("stats", "--no-stream")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/",
                                     "LIMIT", "MEM", "%", "NET", "I/O", "BLOCK", "I/O", "PIDS"]


def test_help_lists_the_resource_flags(minict):
    out = minict("update", "--help").stdout
    for flag in ("--memory", "--memory-swap", "--memory-reservation", "--pids-limit", "--cpus",
                 "--cpu-shares", "--cpu-weight", "--cpuset-cpus", "--device-read-bps",
                 "--device-write-bps"):
        assert flag in out
