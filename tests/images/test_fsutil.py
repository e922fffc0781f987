"""fsutil.atomic_write: old or new content, never half, and no temp file left."""

import os
import subprocess
import sys

import pytest

from minicontainer.fsutil import atomic_write

pytestmark = pytest.mark.unit


def test_replaces_the_file_with_the_mode_asked(tmp_path):
    target = tmp_path / "index.json"
    target.write_text("old")
    atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ["index.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(tmp_path):
    """The write fails halfway (a file-size limit of 1 KiB makes write(2)
    fail with EFBIG, as a full disk would with ENOSPC)."""
    target = tmp_path / "config.json"
    target.write_text("old")
    code = ("import resource, signal, sys\n"
            "from minicontainer.fsutil import atomic_write\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
            "try:\n"
            f"    atomic_write({str(target)!r}, b'x' * 4096, durable=False)\n"
            "except OSError as exc:\n"
            "    print(exc.errno)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "27", out.stderr         # EFBIG, raised to the caller
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["config.json"]
