"""The click-free front door for `minict run` must read a command line
exactly as the click command does (and hand anything else to click)."""

import subprocess
import sys

import click
import pytest

from minicontainer.cli.containers import run_cmd
from minicontainer.entry import GLOBAL_OPTIONS, RUN_DEFAULTS, RUN_OPTIONS, parse_run

pytestmark = pytest.mark.unit


def click_kind(option: click.Option) -> str:
    if option.is_flag:
        return "flag"
    return "multiple" if option.multiple else "value"


def test_option_table_matches_the_click_command():
    from_click = {}
    for param in run_cmd.params:
        if isinstance(param, click.Option):
            for spelling in param.opts + param.secondary_opts:
                from_click[spelling] = (param.name, click_kind(param))
            if isinstance(param.default, str):       # the only non-empty defaults
                assert RUN_DEFAULTS.get(param.name) == param.default, param.name
    assert RUN_OPTIONS == from_click


def test_global_options_match_the_click_group():
    from minicontainer.cli import cli
    names = {p.name for p in cli.params if isinstance(p, click.Option)}
    assert {dest for dest, _ in GLOBAL_OPTIONS.values()} <= names


def as_click_would(argv: list[str]) -> dict:
    ctx = run_cmd.make_context("run", list(argv))
    params = dict(ctx.params)
    return {"image": params.pop("image"), "command": list(params.pop("command")),
            "run": {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()
                    if v not in (None, False, ()) and RUN_DEFAULTS.get(k) != v}}


@pytest.mark.parametrize("argv", [
    ["busybox"],
    ["--rm", "busybox", "true"],
    ["-it", "--name", "x", "busybox", "sh"],
    ["-dit", "-eA=1", "-e", "B=2", "--env=C=3", "busybox", "sh", "-c", "echo $A"],
    ["-v", "/a:/b:ro", "--volume=/c:/d", "--tmpfs", "/run:size=1m", "--read-only", "img"],
    ["-u", "student:users", "-w", "/tmp", "--hostname=h", "--net", "host", "img", "id"],
    ["--cap-add", "NET_ADMIN", "--cap-drop=ALL", "--privileged", "--init", "img"],
    ["--entrypoint", "", "img", "--rm", "-v"],       # after IMAGE everything is the command
    ["--rm", "--", "img", "-x"],
    ["-m", "64m", "--memory-swap=128m", "--memory-reservation", "32m", "--pids-limit", "20", "img"],
    ["--cpus=0.5", "-c512", "--cpu-weight", "50", "--cpuset-cpus", "0-1", "img", "sh"],
    ["-dm64m", "--device-read-bps", "/dev/sda:1mb", "--device-write-bps=/dev/sda:2m",
     "--device-write-bps", "/dev/sdb:1m", "img"],
])
def test_parses_like_click(argv):
    ours = parse_run(["run", *argv])
    assert ours is not None
    assert {k: ours[k] for k in ("image", "command", "run")} == as_click_would(argv)


@pytest.mark.parametrize("argv", [
    ["ps"], ["run"], ["run", "--help"], ["run", "-h"], ["--version"], ["run", "--nope", "img"],
    ["run", "--rm"], ["run", "--name"], ["run", "-iz", "img"], ["--root"], ["images"],
])
def test_everything_else_goes_to_click(argv):
    assert parse_run(argv) is None


def test_global_options_before_run():
    parsed = parse_run(["--root", "/r", "--state=/s", "--explain", "run", "--rm", "img"])
    assert parsed["global"] == {"root": "/r", "state": "/s", "explain": True}
    assert parsed["image"] == "img"


def test_fallback_still_gives_click_usage_errors():
    result = subprocess.run([sys.executable, "-c", "import sys; from minicontainer.entry import main; "
                             "sys.exit(main(['run', '--bogus', 'x']))"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "No such option" in result.stderr


def test_the_fast_path_does_not_import_click():
    code = ("import sys; from minicontainer.entry import parse_run; "
            "import minicontainer.runtime.lifecycle, minicontainer.spec, minicontainer.store; "
            "parse_run(['run', '--rm', 'busybox', 'true']); "
            "assert 'click' not in sys.modules, 'click was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
