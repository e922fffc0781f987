"""ld.so.cache parsing (all three layouts, as the real ldconfig writes them) and ELF headers."""

import os
import subprocess
from pathlib import Path

import pytest

from hpcshim import elf, ldcache
from hpcshim.errors import CorruptFile
from tests.hpcshim.drivertree import DRIVER_VERSION, LIB32_DIR, LIB64_DIR


def ldconfig_p(cache: str) -> list[str]:
    """`ldconfig -p -C cache` lines for the entries (header and trailer dropped)."""
    out = subprocess.run(["ldconfig", "-p", "-C", cache], check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.startswith("\t")]


@pytest.mark.unit
def test_host_cache_matches_ldconfig_p():
    if not os.path.exists("/etc/ld.so.cache"):
        pytest.skip("this host has no /etc/ld.so.cache")
    entries = ldcache.read_cache("/etc/ld.so.cache")
    assert len(entries) > 10
    assert ldcache.format_like_ldconfig(entries) == ldconfig_p("/etc/ld.so.cache")
    libc = [e for e in entries if e.name == "libc.so.6"]
    assert libc and libc[0].is_64bit == (elf.host_ident().bits == 64)


@pytest.mark.root
@pytest.mark.parametrize("layout, magic", [("new", b"glibc-ld.so.cache1.1"),
                                           ("old", b"ld.so-1.7.0\0"),
                                           ("compat", b"ld.so-1.7.0\0")])
def test_every_layout_ldconfig_writes(driver_tree, layout, magic):
    root = driver_tree.root
    name = f"/etc/ld.so.cache.{layout}"
    subprocess.run(["ldconfig", "-c", layout, "-r", str(root), "-C", name, "-f", "/etc/ld.so.conf"],
                   check=True, capture_output=True)
    path = root / name.lstrip("/")
    assert path.read_bytes().startswith(magic)
    entries = ldcache.read_cache(path)
    assert ldcache.format_like_ldconfig(entries) == ldconfig_p(str(path))
    cuda = [(e.path, e.is_64bit) for e in entries if e.name == "libcuda.so.1"]
    assert sorted(cuda) == [(f"/{LIB32_DIR}/libcuda.so.1", False), (f"/{LIB64_DIR}/libcuda.so.1", True)]
    if layout == "compat":   # old header, new cache after it: hwcap/osversion come from the new part
        assert entries == ldcache.read_cache(root / "etc/ld.so.cache")


@pytest.mark.unit
@pytest.mark.parametrize("data, message", [
    (b"", "is not an ld.so.cache"),
    (b"\x7fELF\x02\x01\x01" + b"\0" * 40, "is not an ld.so.cache"),
    (b"ld.so-1.7.0\0" + (5).to_bytes(4, "little") + b"\0" * 12, "5 entries do not fit"),
    (b"glibc-ld.so.cache1.1" + (3).to_bytes(4, "little") + b"\0" * 24, "3 entries do not fit"),
    (b"glibc-ld.so.cache9.9" + b"\0" * 28, "unsupported new-format header"),
])
def test_corrupt_caches_raise(data, message):
    with pytest.raises(CorruptFile) as info:
        ldcache.parse_cache(data, "test-cache")
    assert message in info.value.message and info.value.exit_code == 30


@pytest.mark.root
def test_truncated_real_cache_is_refused(driver_tree):
    data = (driver_tree.root / "etc/ld.so.cache").read_bytes()
    with pytest.raises(CorruptFile):
        ldcache.parse_cache(data[: len(data) // 2 + 40])


@pytest.mark.root
def test_elf_ident_and_soname_of_the_compiled_libraries(driver_tree):
    lib64 = driver_tree.root / LIB64_DIR / f"libcuda.so.{DRIVER_VERSION}"
    lib32 = driver_tree.root / LIB32_DIR / f"libcuda.so.{DRIVER_VERSION}"
    assert elf.read_ident(lib64) == elf.ElfIdent(64, True, 62)
    assert elf.read_ident(lib32) == elf.ElfIdent(32, True, 3)
    assert elf.read_soname(lib64) == "libcuda.so.1"
    assert elf.read_soname(lib32) == "libcuda.so.1"
    gpucomp = driver_tree.root / LIB64_DIR / f"libnvidia-gpucomp.so.{DRIVER_VERSION}"
    assert elf.read_soname(gpucomp) == f"libnvidia-gpucomp.so.{DRIVER_VERSION}"
    # the file(1) tool agrees on class and machine
    described = subprocess.run(["file", "-L", str(lib32)], capture_output=True, text=True).stdout
    if described:
        assert "32-bit" in described and "80386" in described


@pytest.mark.unit
def test_elf_of_non_elf_and_truncated_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert elf.read_ident(text) is None and elf.read_soname(text) is None
    truncated = tmp_path / "trunc.so"
    truncated.write_bytes(Path("/bin/sh").resolve().read_bytes()[:64])
    assert elf.read_ident(truncated) is not None
    assert elf.read_soname(truncated) is None
    assert elf.read_ident(tmp_path / "missing") is None
    assert elf.host_ident() == elf.read_ident("/proc/self/exe")
