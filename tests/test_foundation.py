"""The foundation: packaging, CLI error convention, busybox builder."""

import subprocess
import sys

import pytest

from minicontainer import errors

pytestmark = pytest.mark.unit


def test_exit_codes_are_distinct():
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.MinictError)
               and c is not errors.MinictError]
    codes = [c.exit_code for c in classes]
    assert len(codes) == len(set(codes)), sorted(codes)
    assert all(code not in (0, 2) for code in codes)  # 2 is click's usage error


def test_one_line_joins_message_and_hint():
    err = errors.ImageNotFound("no image foo\nin store", hint="pull it")
    assert err.one_line() == "no image foo in store (pull it)"


def test_hpcshim_imports_without_minict_only_dependencies():
    # GPU nodes may lack libcap headers: hpcshim must not need python-prctl,
    # pyroute2, requests or zstandard just to import and print its help.
    code = ("import sys; "
            "sys.modules.update({m: None for m in ('prctl','pyroute2','requests','zstandard','tqdm','seccomp')}); "
            "import hpcshim.cli")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_busybox_rootfs_has_applets(busybox_rootfs):
    assert (busybox_rootfs / "bin/busybox").is_file()
    assert (busybox_rootfs / "bin/sh").is_symlink()
    assert "student:x:1000" in (busybox_rootfs / "etc/passwd").read_text()


def test_ctx_exit_code_reaches_the_shell(monkeypatch):
    """A command that ends with ctx.exit(N) makes minict exit N."""
    import click
    from minicontainer import cli as cli_module

    @click.command("exit-with")
    @click.argument("code", type=int)
    @click.pass_context
    def exit_with(ctx, code):
        ctx.exit(code)

    monkeypatch.setitem(cli_module.cli.commands, "exit-with", exit_with)
    with pytest.raises(SystemExit) as info:
        cli_module.main(["exit-with", "7"])
    assert info.value.code == 7
    with pytest.raises(SystemExit) as info:
        cli_module.main(["exit-with", "0"])
    assert info.value.code == 0
