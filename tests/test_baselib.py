"""baselib, what minict and hpcshim share: paths opened inside a root (with
openat2, and with the walk older kernels get), atomic writes, the error base."""

import errno
import os
from pathlib import Path

import pytest

from baselib import files, inroot
from baselib.errors import UserError

pytestmark = pytest.mark.unit


@pytest.fixture(params=["openat2", "walk"])
def resolver(request, monkeypatch):
    """Each test runs with openat2 and with the walk kernels before 5.6 get."""
    monkeypatch.setattr(inroot, "_openat2_missing", request.param == "walk")
    return request.param


@pytest.fixture
def tree(tmp_path) -> Path:
    """A root whose symlinks were written for another machine."""
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "usr/lib/libx.so.5").write_text("x")
    (root / "usr/lib/libx.so").symlink_to("libx.so.5")        # relative
    (root / "lib").symlink_to("/usr/lib")                      # absolute: restarts at the root
    (root / "climb").symlink_to("../../../../../../etc")       # climbs: stops at the root
    (root / "loop").symlink_to("loop")
    (root / "dangling").symlink_to("/nowhere")
    (tmp_path / "outside").write_text("host file")
    (root / "out").symlink_to(tmp_path / "outside")           # a host path, seen from inside
    return root


@pytest.mark.parametrize("path, found", [
    ("/lib/libx.so", "/usr/lib/libx.so.5"),
    ("/climb/passwd", "/etc/passwd"),
    ("/../../../etc/passwd", "/etc/passwd"),
    ("/lib/../etc/passwd", None),     # `..` after a link: from where it led (/usr), not /
    ("/", "/"),
    ("/dangling", None),
    ("/loop", None),
    ("/out", None),                            # the host's file is not in the tree
])
def test_symlinks_are_resolved_as_if_the_tree_were_the_root(tree, resolver, path, found):
    assert inroot.resolve_in_root(str(tree), path) == found


def test_without_following_any_symlink_is_refused(tree, resolver):
    root_fd = os.open(tree, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = inroot.open_in_root(root_fd, "usr/lib/libx.so.5", os.O_RDONLY, follow_symlinks=False)
        assert os.read(fd, 1) == b"x"
        os.close(fd)
        for path in ("lib/libx.so.5", "usr/lib/libx.so", "climb"):
            with pytest.raises(OSError) as refused:
                inroot.open_in_root(root_fd, path, os.O_RDONLY, follow_symlinks=False)
            assert refused.value.errno == errno.ELOOP, path
        with pytest.raises(NotADirectoryError):
            inroot.open_in_root(root_fd, "etc/passwd/x", os.O_RDONLY, follow_symlinks=False)
    finally:
        os.close(root_fd)


def test_atomic_write_replaces_whole_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")
    files.atomic_write(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    target.write_text("old")

    def refuse(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(OSError):
        files.atomic_write(target, b"new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_a_temp_file_names_its_writer():
    assert files.writer_pid(f".record.json{files.TEMP_MARK}4242-ab12cd") == 4242
    assert files.writer_pid("record.json") is None


def test_one_error_base_for_both_tools():
    from hpcshim.errors import HpcshimError
    from minicontainer.errors import MinictError
    assert issubclass(MinictError, UserError) and issubclass(HpcshimError, UserError)
    error = UserError("no such image\n  busybox", "pull it first")
    assert error.one_line() == "no such image busybox (pull it first)"
