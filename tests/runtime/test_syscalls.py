"""The kernel-facing module: narration text, flag rendering, the recording fake."""

import errno
import os

import pytest

from minicontainer import syscalls as sc

pytestmark = pytest.mark.unit


def narrated(kernel_calls) -> list[str]:
    """Run `kernel_calls(kernel)` on a RecordingKernel narrating into a pipe."""
    r, w = os.pipe()
    kernel = sc.RecordingKernel(sc.Narrator(True, fd=w))
    kernel_calls(kernel)
    os.close(w)
    with os.fdopen(r) as f:
        return f.read().splitlines()


def test_flags_render_like_c():
    assert sc.flags_text(sc.MS_BIND | sc.MS_REC) == "MS_BIND|MS_REC"
    assert sc.flags_text(0) == "0"
    assert sc.clone_flags_text(sc.CLONE_NEWNS | sc.CLONE_NEWPID) == "CLONE_NEWNS|CLONE_NEWPID"
    assert sc.flags_text(1 << 30) == hex(1 << 30)   # unknown bits are not hidden


def test_each_call_narrates_one_line_with_the_exact_call():
    lines = narrated(lambda k: (
        k.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS, "Own mount table and hostname"),
        k.mount("overlay", "/r", "overlay", 0, "lowerdir=/a,upperdir=/u,workdir=/w", "Overlay root"),
        k.pivot_root(".", ".", "Swap roots"),
        k.umount2(".", sc.MNT_DETACH, "Detach old root"),
        k.sethostname("box", "Name it"),
        k.drop_bounding_cap(21, "CAP_SYS_ADMIN", "Drop it"),
    ))
    assert lines == [
        "[explain] Own mount table and hostname: unshare(CLONE_NEWNS|CLONE_NEWUTS)",
        '[explain] Overlay root: mount("overlay", "/r", "overlay", 0, '
        '"lowerdir=/a,upperdir=/u,workdir=/w")',
        '[explain] Swap roots: pivot_root(".", ".")',
        '[explain] Detach old root: umount2(".", MNT_DETACH)',
        '[explain] Name it: sethostname("box", 3)',
        "[explain] Drop it: prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN)",
    ]


def test_recording_kernel_records_and_does_nothing(tmp_path):
    kernel = sc.RecordingKernel()
    target = tmp_path / "never-made"
    kernel.mkdir(str(target), 0o755, "make it")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None, "private")
    assert not target.exists()
    assert kernel.calls == [("mkdir", (str(target), 0o755)),
                            ("mount", (None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None))]
    assert kernel.named("mount") == [(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None)]


def test_narration_off_prints_nothing():
    r, w = os.pipe()
    kernel = sc.RecordingKernel(sc.Narrator(False, fd=w))
    kernel.unshare(sc.CLONE_NEWNS, "quiet")
    os.close(w)
    assert os.read(r, 100) == b""
    os.close(r)


def test_real_kernel_reports_failures_with_errno_and_call(tmp_path):
    kernel = sc.Kernel()
    with pytest.raises(OSError) as info:
        kernel.umount2(str(tmp_path / "not-a-mount-point"), 0, "try it")
    assert info.value.errno in (22, 1, 2)   # EINVAL as root, EPERM otherwise
    assert "umount2(" in str(info.value)


def test_real_file_primitives_use_exact_modes(tmp_path):
    kernel = sc.Kernel()
    old = os.umask(0o077)
    try:
        kernel.mkdir(str(tmp_path / "d"), 0o1777, "sticky")
        kernel.write_file(str(tmp_path / "f"), b"hi\n", 0o644, "file")
    finally:
        os.umask(old)
    assert (tmp_path / "d").stat().st_mode & 0o7777 == 0o1777
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "f").read_bytes() == b"hi\n"


# SIGALRM interrupts a blocked open(2), so a regression fails here in 5 s instead of hanging.
@pytest.mark.timeout(5, method="signal")
def test_write_file_never_opens_what_is_already_there(tmp_path):
    """It makes mount points: a name taken meanwhile (by a file, or by a FIFO,
    whose opening for writing would wait for a reader) is FileExistsError."""
    kernel = sc.Kernel()
    (tmp_path / "taken").write_bytes(b"theirs")
    os.mkfifo(tmp_path / "fifo")
    for name in ("taken", "fifo"):
        with pytest.raises(FileExistsError):
            kernel.write_file(str(tmp_path / name), b"", 0o644, "mount point")
    assert (tmp_path / "taken").read_bytes() == b"theirs"


@pytest.mark.unit
def test_the_recording_kernel_records_typed_calls_and_fails_on_request():
    kernel = sc.RecordingKernel()
    kernel.mkdir("/a", 0o755, "why")
    kernel.fail_next("mount", errno.EBUSY)
    with pytest.raises(OSError) as refused:
        kernel.mount("none", "/a", "tmpfs", 0, None, "why")
    assert refused.value.errno == errno.EBUSY
    kernel.mount("none", "/a", "tmpfs", 0, None, "why")          # only the next one failed
    assert kernel.calls == [sc.Call("mkdir", ("/a", 0o755)),
                            sc.Call("mount", ("none", "/a", "tmpfs", 0, None)),
                            sc.Call("mount", ("none", "/a", "tmpfs", 0, None))]
    assert kernel.calls[0].name == "mkdir" and kernel.named("mount")[0][1] == "/a"
