"""What a root filesystem needs survives unpacking: modes with setuid/
setgid/sticky, owners, times, symlinks, hardlinks, device nodes, file
capabilities; and OCI whiteouts become overlayfs whiteouts that a real
overlay mount honours."""

import os
import stat
import subprocess

import pytest

from minicontainer.errors import ArchiveError, DigestMismatch
from tests.helpers.images import FIXED_MTIME, Entry, tar_of
from tests.images.unpack_helpers import unpack

pytestmark = pytest.mark.root

# A v2 file-capability blob for cap_net_raw (bit 13), as setcap writes it.
# Its bytes include values above 0x7f, which must survive the pax round trip.
CAP_NET_RAW = bytes.fromhex("0100000200200000000000000000000000000000")
CAP_HIGH_BYTES = bytes.fromhex("01000002ff00ff80000000000000000000000000")


def test_modes_owners_times(tmp_path):
    dest = tmp_path / "fs"
    unpack(tar_of([
        Entry.dir("usr/bin", mode=0o755),
        Entry.file("usr/bin/su", b"#!", mode=0o4755),
        Entry.file("usr/bin/wall", b"#!", mode=0o2755, gid=5),
        Entry.dir("tmp", mode=0o1777),
        Entry.dir("home/student", mode=0o700, uid=1000, gid=1000),
        Entry.file("home/student/notes", b"hi", mode=0o600, uid=1000, gid=1000, mtime=1234567890),
    ]), dest)
    assert stat.S_IMODE((dest / "usr/bin/su").stat().st_mode) == 0o4755
    wall = (dest / "usr/bin/wall").stat()
    assert stat.S_IMODE(wall.st_mode) == 0o2755 and wall.st_gid == 5
    assert stat.S_IMODE((dest / "tmp").stat().st_mode) == 0o1777
    notes = (dest / "home/student/notes").stat()
    assert (notes.st_uid, notes.st_gid, notes.st_mtime) == (1000, 1000, 1234567890)
    # directory times are set after their children were written
    assert (dest / "home/student").stat().st_mtime == FIXED_MTIME
    assert (dest / "usr/bin").stat().st_mtime == FIXED_MTIME


def test_links_and_special_files(tmp_path):
    dest = tmp_path / "fs"
    unpack(tar_of([
        Entry.file("bin/busybox", b"ELF", mode=0o755),
        Entry.hardlink("bin/sh", "bin/busybox"),
        Entry.symlink("bin/ls", "/bin/busybox"),
        Entry.symlink("lib64", "usr/lib", uid=7, gid=7),
        Entry.chardev("dev/null", 1, 3),
        Entry("dev/loop0", type=b"4", mode=0o660, devmajor=7, devminor=0),  # block device
        Entry("run/fifo", type=b"6", mode=0o644),                            # FIFO
    ]), dest)
    assert (dest / "bin/sh").stat().st_ino == (dest / "bin/busybox").stat().st_ino
    assert os.readlink(dest / "bin/ls") == "/bin/busybox"
    assert (dest / "lib64").lstat().st_uid == 7
    null = (dest / "dev/null").lstat()
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = (dest / "dev/loop0").lstat()
    assert stat.S_ISBLK(loop.st_mode) and os.major(loop.st_rdev) == 7
    assert stat.S_ISFIFO((dest / "run/fifo").lstat().st_mode)


@pytest.mark.parametrize("cap", [CAP_NET_RAW, CAP_HIGH_BYTES])
def test_file_capabilities_survive_after_chown(tmp_path, cap):
    dest = tmp_path / "fs"
    pax = {"SCHILY.xattr.security.capability": cap.decode("utf-8", "surrogateescape"),
           "SCHILY.xattr.user.origin": "test"}
    unpack(tar_of([Entry.file("bin/ping", b"ELF", mode=0o755, uid=0, gid=0, pax=pax)]), dest)
    assert os.getxattr(dest / "bin/ping", "security.capability") == cap
    assert os.getxattr(dest / "bin/ping", "user.origin") == b"test"


def test_libarchive_xattr_form(tmp_path):
    import base64
    pax = {"LIBARCHIVE.xattr.security.capability": base64.b64encode(CAP_NET_RAW).decode()}
    unpack(tar_of([Entry.file("ping", b"x", pax=pax)]), tmp_path / "fs")
    assert os.getxattr(tmp_path / "fs/ping", "security.capability") == CAP_NET_RAW


def test_repeated_names_last_entry_wins(tmp_path):
    dest = tmp_path / "fs"
    unpack(tar_of([Entry.file("a", b"old"), Entry.file("a", b"new"),
                   Entry.dir("d"), Entry.file("d/x"), Entry.file("d", b"now a file"),
                   Entry.symlink("s", "x"), Entry.dir("s")]), dest)
    assert (dest / "a").read_bytes() == b"new"
    assert (dest / "d").read_bytes() == b"now a file"
    assert (dest / "s").is_dir() and not (dest / "s").is_symlink()


def test_missing_parents_are_created(tmp_path):
    unpack(tar_of([Entry.file("deep/er/file", b"x")]), tmp_path / "fs")
    assert stat.S_IMODE((tmp_path / "fs/deep/er").stat().st_mode) == 0o755


# ---- whiteouts -------------------------------------------------------------------------------

def is_whiteout(path) -> bool:
    st = path.lstat()
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)


def test_whiteout_becomes_char_device_0_0(tmp_path):
    dest = tmp_path / "fs"
    unpack(tar_of([Entry.dir("etc"), Entry.whiteout("etc/motd"), Entry.whiteout("gone-dir")]), dest)
    assert is_whiteout(dest / "etc/motd") and is_whiteout(dest / "gone-dir")
    assert not (dest / "etc/.wh.motd").exists()


@pytest.mark.parametrize("order", ["marker-first", "marker-last", "marker-before-dir"])
def test_opaque_directory_whatever_the_order(tmp_path, order):
    dest = tmp_path / "fs"
    entries = {
        "marker-first": [Entry.dir("var"), Entry.opaque("var"), Entry.file("var/new", b"1")],
        "marker-last": [Entry.dir("var"), Entry.file("var/new", b"1"), Entry.opaque("var")],
        "marker-before-dir": [Entry.opaque("var"), Entry.dir("var", mode=0o750),
                              Entry.file("var/new", b"1")],
    }[order]
    unpack(tar_of(entries), dest)
    assert os.getxattr(dest / "var", "trusted.overlay.opaque") == b"y"
    assert (dest / "var/new").read_bytes() == b"1"  # the layer's own entries stay
    assert not (dest / "var/.wh..wh..opq").exists()
    if order == "marker-before-dir":
        assert stat.S_IMODE((dest / "var").stat().st_mode) == 0o750


@pytest.mark.parametrize("whiteout_first", [True, False])
def test_whiteout_never_hides_its_own_layer(tmp_path, whiteout_first):
    dest = tmp_path / "fs"
    pair = [Entry.whiteout("f"), Entry.file("f", b"mine")]
    unpack(tar_of(pair if whiteout_first else pair[::-1]), dest)
    assert (dest / "f").read_bytes() == b"mine"


def test_aufs_bookkeeping_names_are_ignored(tmp_path):
    unpack(tar_of([Entry.dir(".wh..wh.plnk"), Entry.file(".wh..wh.aufs")]), tmp_path / "fs")
    assert list((tmp_path / "fs").iterdir()) == []


def test_overlay_mount_honours_the_unpacked_whiteouts(tmp_path):
    """Unpack a base and a diff layer, mount them, look from above."""
    base, diff = tmp_path / "base", tmp_path / "diff"
    unpack(tar_of([Entry.file("etc/motd", b"base"), Entry.file("etc/keep", b"k"),
                   Entry.file("var/cache/a", b"a"), Entry.file("var/cache/b", b"b")]), base)
    unpack(tar_of([Entry.whiteout("etc/motd"), Entry.opaque("var/cache"),
                   Entry.file("var/cache/c", b"c")]), diff)
    merged, upper, work = tmp_path / "m", tmp_path / "u", tmp_path / "w"
    for d in (merged, upper, work):
        d.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={diff}:{base},upperdir={upper},workdir={work}", str(merged)],
                   check=True)
    try:
        assert not (merged / "etc/motd").exists()
        assert (merged / "etc/keep").read_bytes() == b"k"
        assert sorted(p.name for p in (merged / "var/cache").iterdir()) == ["c"]
    finally:
        subprocess.run(["umount", str(merged)], check=True)


# ---- digests -----------------------------------------------------------------------------------

def test_diff_id_is_checked(tmp_path):
    with pytest.raises(DigestMismatch) as info:
        unpack(tar_of([Entry.file("a")]), tmp_path / "fs", diff_id="sha256:" + "0" * 64)
    assert "diff id" in info.value.one_line()


@pytest.mark.parametrize("compression", [None, "gzip", "zstd"])
def test_truncated_layer_is_an_archive_error(tmp_path, compression):
    import io
    from minicontainer.image.extract import extract_layer
    from tests.helpers.images import compress
    blob = compress(tar_of([Entry.file("big", os.urandom(200_000))]), compression)
    with pytest.raises(ArchiveError) as info:
        extract_layer(io.BytesIO(blob[:len(blob) // 2]), tmp_path / "fs", blob_digest=None,
                     diff_id=None, what="layer 1", max_bytes=1 << 30)
    assert "truncated or corrupt" in info.value.one_line()


# ---- the gzip reader ---------------------------------------------------------------------------

def read_all(reader, n=4096):
    out = b""
    while chunk := reader.read(n):
        assert len(chunk) <= n
        out += chunk
    return out


def gunzip(blob: bytes):
    """A gzip blob's reader, as a layer's is opened (blob_reader.open_decompressed)."""
    import io
    from minicontainer.image.blob_reader import HashingReader, open_decompressed
    return open_decompressed(HashingReader(io.BytesIO(blob)), "layer")


@pytest.mark.unit
def test_gunzip_concatenated_members_and_padding():
    import gzip
    a, b = os.urandom(100_000), b"second member" * 1000
    blob = gzip.compress(a) + b"\0" * 700 + gzip.compress(b) + b"\0" * 10
    assert read_all(gunzip(blob)) == a + b


@pytest.mark.unit
@pytest.mark.parametrize("damage", ["crc", "truncated"])
def test_gunzip_checks_crc_and_end(damage):
    import gzip
    from minicontainer.image.blob_reader import DECOMPRESS_ERRORS
    blob = bytearray(gzip.compress(os.urandom(50_000)))
    if damage == "crc":
        blob[-8] ^= 0xFF  # the trailer's CRC-32
        with pytest.raises(DECOMPRESS_ERRORS, match="CRC check failed"):
            read_all(gunzip(bytes(blob)))
    else:
        with pytest.raises(EOFError):
            read_all(gunzip(bytes(blob[:-100])))


@pytest.mark.unit
def test_gunzip_output_is_bounded_per_read():
    import gzip
    bomb = gzip.compress(bytes(50 << 20))  # 50 MiB of zeros in ~50 kB
    assert len(gunzip(bomb).read(1 << 20)) <= 1 << 20
