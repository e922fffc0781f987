"""Read just enough of an ELF file: its class, byte order, machine and SONAME.

hpcshim keeps only driver libraries the container's loader can use: the same
ELF class (32/64-bit) and machine as the host. A 32-bit `libcuda.so.1` bound
where the 64-bit one belongs is the "wrong ELF class" failure users of
`apptainer --nv` hit when ldconfig lists the i386 copy first.

Spec: the System V ABI, "ELF Header" (e_ident, e_machine) and "Dynamic
Section" (DT_SONAME, DT_STRTAB); the same layout `readelf -h -d` prints.
Only the standard library is used: no pyelftools on GPU nodes.
"""

import platform
import struct
from collections import namedtuple

ELF_MAGIC = b"\x7fELF"
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
PT_DYNAMIC = 2
PT_LOAD = 1
DT_NULL, DT_STRTAB, DT_SONAME = 0, 5, 14

# e_machine values (elf.h) for the machines GPU nodes run, to print names.
MACHINE_NAMES = {3: "i386", 62: "x86-64", 183: "aarch64", 21: "ppc64", 40: "arm"}


class ElfIdent(namedtuple("ElfIdent", ["bits", "little", "machine"])):
    """The identity that decides whether the loader can use a library:
    bits (32 or 64), little (byte order), machine (e_machine)."""
    __slots__ = ()

    def describe(self) -> str:
        name = MACHINE_NAMES.get(self.machine, f"machine {self.machine}")
        return f"ELF {self.bits}-bit {name}"


def _read_prefix(path, size: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(size)


def read_ident(path) -> ElfIdent | None:
    """The ELF identity of path, or None when it is not an ELF file (or unreadable)."""
    try:
        head = _read_prefix(path, 20)
    except OSError:
        return None
    return parse_ident(head)


def parse_ident(head: bytes) -> ElfIdent | None:
    """Parse e_ident and e_machine from the first 20 bytes of a file."""
    if len(head) < 20 or head[:4] != ELF_MAGIC:
        return None
    ei_class, ei_data = head[4], head[5]
    if ei_class not in (ELFCLASS32, ELFCLASS64) or ei_data not in (ELFDATA2LSB, ELFDATA2MSB):
        return None
    little = ei_data == ELFDATA2LSB
    (machine,) = struct.unpack_from("<H" if little else ">H", head, 18)
    return ElfIdent(bits=32 if ei_class == ELFCLASS32 else 64, little=little, machine=machine)


def host_ident() -> ElfIdent:
    """The identity of the running interpreter's binary: what this host runs natively."""
    ident = read_ident("/proc/self/exe")
    if ident is None:  # no /proc (unusual): fall back to what the kernel reports
        bits = 64 if platform.architecture()[0] == "64bit" else 32
        machine = {"x86_64": 62, "aarch64": 183, "ppc64le": 21, "i686": 3}.get(platform.machine(), 0)
        return ElfIdent(bits=bits, little=True, machine=machine)
    return ident


def read_soname(path) -> str | None:
    """DT_SONAME of a shared object, or None (not ELF, no dynamic section, no soname).

    Walks the program headers to PT_DYNAMIC, reads the dynamic entries, and
    maps DT_STRTAB (a virtual address) back to a file offset through the
    PT_LOAD segment that contains it. Reads only those parts: driver
    libraries are tens of megabytes.
    """
    try:
        with open(path, "rb") as f:
            return _soname_from(f)
    except (OSError, struct.error, ValueError):
        return None


def _pread(f, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated ELF file")
    return data


def _soname_from(f) -> str | None:
    head = f.read(64)
    ident = parse_ident(head[:20])
    if ident is None:
        return None
    e = "<" if ident.little else ">"
    if ident.bits == 64:
        phoff, = struct.unpack_from(e + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
        ph_fmt, dyn_fmt = e + "IIQQQQQQ", e + "qQ"
    else:
        phoff, = struct.unpack_from(e + "I", head, 28)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 42)
        ph_fmt, dyn_fmt = e + "IIIIIIII", e + "iI"
    table = _pread(f, phoff, phentsize * phnum)
    loads, dynamic = [], None
    for i in range(phnum):
        fields = struct.unpack_from(ph_fmt, table, i * phentsize)
        if ident.bits == 64:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _align = fields
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz, _memsz, _flags, _align = fields
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None
    dyn = _pread(f, dynamic[0], dynamic[1])
    strtab_vaddr = soname_offset = None
    for tag, val in struct.iter_unpack(dyn_fmt, dyn[: len(dyn) - len(dyn) % struct.calcsize(dyn_fmt)]):
        if tag == DT_NULL:
            break
        if tag == DT_STRTAB:
            strtab_vaddr = val
        elif tag == DT_SONAME:
            soname_offset = val
    if strtab_vaddr is None or soname_offset is None:
        return None
    for vaddr, offset, filesz in loads:
        if vaddr <= strtab_vaddr < vaddr + filesz:
            f.seek(offset + (strtab_vaddr - vaddr) + soname_offset)
            raw = f.read(4096)
            end = raw.find(b"\0")
            return raw[:end if end >= 0 else len(raw)].decode("utf-8", "replace") or None
    return None
