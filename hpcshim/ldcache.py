"""Parse /etc/ld.so.cache directly, without the `ldconfig` binary.

`apptainer --nv` runs `ldconfig -p` to find the driver libraries; on some
nodes ldconfig is not on the user's PATH, or a container-provided one reads
the wrong cache. The cache is a plain binary file, so hpcshim reads it.

Three layouts exist, all written by glibc's ldconfig (`-c old|new|compat`):

- old, magic ``ld.so-1.7.0``::

      char magic[12]; uint32 nlibs;
      struct { int32 flags; uint32 key; uint32 value; } libs[nlibs];
      string table  (key/value offsets count from its start)

- new, magic ``glibc-ld.so.cache`` + version ``1.1``::

      char magic[17]; char version[3]; uint32 nlibs; uint32 len_strings;
      uint8 flags (byte order: 2 little, 3 big); uint8 pad[3];
      uint32 extension_offset; uint32 unused[3];                  -> 48 bytes
      struct { int32 flags; uint32 key, value; uint32 osversion;
               uint64 hwcap; } libs[nlibs];                       -> 24 bytes each
      string table  (key/value offsets count from the new header's start)

- compat: an old cache whose string table is followed, at an 8-byte aligned
  offset, by a complete new cache. Like glibc's loader, prefer the new part.

Reference: glibc sysdeps/generic/dl-cache.h (struct cache_file,
cache_file_new, file_entry_new) and elf/cache.c (print_cache), whose
`ldconfig -p` output `describe()` reproduces, so tests compare the two.
"""

import struct
from collections import namedtuple

from .errors import CorruptFile

OLD_MAGIC = b"ld.so-1.7.0"          # followed by a NUL: 12 bytes
NEW_MAGIC = b"glibc-ld.so.cache"
NEW_VERSION = b"1.1"

OLD_HEADER = struct.Struct("=12sI")           # magic, nlibs
OLD_ENTRY = struct.Struct("=iII")             # flags, key, value
NEW_HEADER_SIZE = 48
NEW_ENTRY_FMT = "iIIIQ"                       # flags, key, value, osversion, hwcap

# flags & 0x00ff: what kind of library (dl-cache.h FLAG_ELF...)
TYPE_NAMES = {0x00: "libc4", 0x01: "ELF", 0x02: "libc5", 0x03: "libc6"}
# flags & 0xff00: which ABI variant it requires (dl-cache.h FLAG_*_LIB64...)
REQUIRED_NAMES = {
    0x0000: None, 0x0100: "64bit", 0x0200: "IA-64", 0x0300: "x86-64",
    0x0400: "64bit", 0x0500: "64bit", 0x0600: "N32", 0x0700: "64bit",
    0x0800: "x32", 0x0900: "hard-float", 0x0a00: "AArch64", 0x0b00: "soft-float",
    0x0c00: "nan2008", 0x0d00: "N32,nan2008", 0x0e00: "64bit,nan2008",
    0x0f00: "soft-float", 0x1000: "double-float",
    0x1100: "soft-float", 0x1200: "double-float",
}
# The flags that mark a 64-bit library; everything else is 32-bit (or unknown).
LIB64_FLAGS = {0x0100, 0x0200, 0x0300, 0x0400, 0x0500, 0x0700, 0x0a00, 0x0e00, 0x1000, 0x1200}


class CacheEntry(namedtuple("CacheEntry", ["name", "path", "flags", "osversion", "hwcap"], defaults=[0, 0])):
    """One line of `ldconfig -p`: name, the soname (libcuda.so.1); path, where
    the loader finds it (/usr/lib/x86_64-linux-gnu/libcuda.so.1); flags,
    osversion and hwcap as stored in the cache."""
    __slots__ = ()

    @property
    def is_64bit(self) -> bool:
        return (self.flags & 0xff00) in LIB64_FLAGS

    def describe(self) -> str:
        """The parenthesised part of an `ldconfig -p` line, e.g. 'libc6,x86-64'."""
        kind = TYPE_NAMES.get(self.flags & 0xff, "unknown")
        required = self.flags & 0xff00
        if required in REQUIRED_NAMES:
            extra = REQUIRED_NAMES[required]
        else:
            extra = f"unknown-{required:#x}"
        text = kind if extra is None else f"{kind},{extra}"
        if self.hwcap:
            text += f", hwcap: {self.hwcap:#018x}"
        if self.osversion:
            text += ", OS ABI: %s %d.%d.%d" % (
                {0: "Linux", 1: "Hurd", 2: "Solaris", 3: "FreeBSD", 4: "kNetBSD", 5: "Syllable"}.get(
                    self.osversion >> 24, "Unknown OS"),
                (self.osversion >> 16) & 0xff, (self.osversion >> 8) & 0xff, self.osversion & 0xff)
        return text


def read_cache(path) -> list[CacheEntry]:
    """All entries of the ld.so.cache at path, in file order (the loader's order)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CorruptFile(f"cannot read {path}: {exc.strerror}",
                          hint="is this the host's /etc/ld.so.cache?") from exc
    return parse_cache(data, source=str(path))


def parse_cache(data: bytes, source: str = "ld.so.cache") -> list[CacheEntry]:
    """Parse a cache in any of the three layouts (see the module docstring)."""
    if data.startswith(NEW_MAGIC):
        return _parse_new(data, 0, source)
    if data.startswith(OLD_MAGIC):
        if len(data) < OLD_HEADER.size:
            raise CorruptFile(f"{source}: truncated old-format header", hint="run ldconfig as root")
        _magic, nlibs = OLD_HEADER.unpack_from(data, 0)
        strings = OLD_HEADER.size + nlibs * OLD_ENTRY.size
        # compat: a new cache follows at the next 8-byte boundary.
        new_at = (strings + 7) & ~7
        if data[new_at:new_at + len(NEW_MAGIC)] == NEW_MAGIC:
            return _parse_new(data, new_at, source)
        return _parse_old(data, nlibs, strings, source)
    raise CorruptFile(f"{source} is not an ld.so.cache (magic {data[:12]!r})",
                      hint="regenerate it with ldconfig, or point --host-root at the right tree")


def _string(data: bytes, offset: int, source: str) -> str:
    end = data.find(b"\0", offset)
    if offset >= len(data) or end < 0:
        raise CorruptFile(f"{source}: string offset {offset} outside the file",
                          hint="the cache is truncated; run ldconfig as root")
    return data[offset:end].decode("utf-8", "surrogateescape")


def _parse_old(data: bytes, nlibs: int, strings: int, source: str) -> list[CacheEntry]:
    if strings > len(data):
        raise CorruptFile(f"{source}: {nlibs} entries do not fit in {len(data)} bytes",
                          hint="the cache is truncated; run ldconfig as root")
    entries = []
    for i in range(nlibs):
        flags, key, value = OLD_ENTRY.unpack_from(data, OLD_HEADER.size + i * OLD_ENTRY.size)
        entries.append(CacheEntry(name=_string(data, strings + key, source),
                                  path=_string(data, strings + value, source), flags=flags))
    return entries


def _parse_new(data: bytes, base: int, source: str) -> list[CacheEntry]:
    header = data[base:base + NEW_HEADER_SIZE]
    if len(header) < NEW_HEADER_SIZE or header[17:20] != NEW_VERSION:
        raise CorruptFile(f"{source}: unsupported new-format header {header[:20]!r}",
                          hint="only glibc-ld.so.cache1.1 is known")
    order = {2: "<", 3: ">"}.get(header[28], "=")  # 0 = written before the field existed
    nlibs, _len_strings = struct.unpack_from(order + "II", header, 20)
    entry = struct.Struct(order + NEW_ENTRY_FMT)
    if base + NEW_HEADER_SIZE + nlibs * entry.size > len(data):
        raise CorruptFile(f"{source}: {nlibs} entries do not fit in {len(data)} bytes",
                          hint="the cache is truncated; run ldconfig as root")
    entries = []
    for i in range(nlibs):
        flags, key, value, osversion, hwcap = entry.unpack_from(
            data, base + NEW_HEADER_SIZE + i * entry.size)
        entries.append(CacheEntry(name=_string(data, base + key, source),
                                  path=_string(data, base + value, source),
                                  flags=flags, osversion=osversion, hwcap=hwcap))
    return entries


def format_like_ldconfig(entries: list[CacheEntry]) -> list[str]:
    """The lines `ldconfig -p` prints for these entries (without its header)."""
    return [f"\t{e.name} ({e.describe()}) => {e.path}" for e in entries]
