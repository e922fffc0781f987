"""Find the driver's shared libraries: ld.so.cache + driver-version scan + ELF filter.

Three sources, in this order, the first one to name a soname wins:

1. /etc/ld.so.cache (parsed by hpcshim.ldcache, no ldconfig binary): every
   entry whose soname matches a listed name (liblists.py). Cache order is the
   loader's order, so the first entry for a soname is the one a host program
   would load.
2. A scan of each directory the driver's libraries were found in, for files
   ending in `.so.<driver version>` (what nvidia-ctk does): this finds
   libraries newer than any fixed list, such as libnvidia-gpucomp.so.
3. Without an ld.so.cache (or with no driver entry in it): the same scan of
   the usual library directories.

Every candidate's ELF header is read. Only the host's own class and machine
go to the 64-bit list; an i386 (or 32-bit ARM) copy goes to the 32-bit list,
used only with --compat32. That is the fix for the "32-bit libcuda.so.1
shadows the 64-bit one" failure: which copy comes first in ldconfig's output
no longer matters.
"""

import os

from .. import elf, ldcache
from ..errors import CorruptFile
from ..plan import Finding, Library
from .hostroot import HostRoot
from .liblists import NameList, matches

LD_SO_CACHE = "/etc/ld.so.cache"

# The 32-bit ABI that a 64-bit host can also run: e_machine of host -> of the 32-bit twin.
COMPAT32_MACHINE = {62: 3, 183: 40}

# Directories to scan when the cache does not say where the driver is.
MULTIARCH = {62: "x86_64-linux-gnu", 183: "aarch64-linux-gnu", 21: "powerpc64le-linux-gnu"}
MULTIARCH32 = {62: "i386-linux-gnu", 183: "arm-linux-gnueabihf"}


def fallback_dirs(host: elf.ElfIdent) -> list[str]:
    dirs = []
    if host.machine in MULTIARCH:
        dirs += [f"/usr/lib/{MULTIARCH[host.machine]}", f"/lib/{MULTIARCH[host.machine]}"]
    dirs += ["/usr/lib64", "/lib64", "/usr/lib", "/usr/lib/nvidia", "/usr/lib32"]
    if host.machine in MULTIARCH32:
        dirs.append(f"/usr/lib/{MULTIARCH32[host.machine]}")
    return dirs


class LibraryScan:
    """The result: 64-bit and 32-bit libraries, what was skipped, what was read."""

    def __init__(self):
        self.libs: dict[str, Library] = {}      # soname -> Library (host class)
        self.libs32: dict[str, Library] = {}    # soname -> Library (32-bit twin)
        self.findings: list[Finding] = []
        self.consulted: set[str] = set()        # real paths read: the cache validators
        self.driver_dirs: list[str] = []


def classify(ident: elf.ElfIdent | None, host: elf.ElfIdent) -> str | None:
    """'64' for the host's own ABI, '32' for its 32-bit twin, None for anything else."""
    if ident is None:
        return None
    if ident.bits == host.bits and ident.machine == host.machine and ident.little == host.little:
        return "64"
    if ident.bits == 32 and COMPAT32_MACHINE.get(host.machine) == ident.machine:
        return "32"
    return None


def find_libraries(root: HostRoot, names: NameList, driver_version: str | None,
                   host: elf.ElfIdent, version_scan: bool = True) -> LibraryScan:
    scan = LibraryScan()
    cache_real = root.join(LD_SO_CACHE)
    entries: list[ldcache.CacheEntry] = []
    scan.consulted.add(cache_real)
    if os.path.exists(cache_real):
        try:
            entries = ldcache.read_cache(cache_real)
        except CorruptFile as exc:
            scan.findings.append(Finding("library", "ld.so.cache", LD_SO_CACHE, "skipped",
                                         f"unreadable ({exc.message}); scanning directories instead"))
    else:
        scan.findings.append(Finding("library", "ld.so.cache", LD_SO_CACHE, "skipped",
                                     "no ld.so.cache on the host; scanning directories instead"))

    for entry in entries:
        listed = next((n for n in names.libraries if matches(entry.name, n)), None)
        if listed is None:
            continue
        _add(scan, root, host, entry.name, entry.path, link=entry.path,
             how=f"ld.so.cache lists it ({entry.describe()}); name list has {listed}")

    if driver_version and version_scan:
        suffix = f".so.{driver_version}"
        dirs = list(scan.driver_dirs)
        if not dirs:
            dirs = [d for d in fallback_dirs(host) if os.path.isdir(root.join(d))]
        for directory in dirs:
            scan.consulted.add(root.join(directory))
            for fname in root.listdir(directory):
                if not fname.endswith(suffix):
                    continue
                path = f"{directory.rstrip('/')}/{fname}"
                soname = elf.read_soname(root.join(path)) or fname
                link = f"{directory.rstrip('/')}/{soname}"
                _add(scan, root, host, soname, path, link=link,
                     how=f"ends in the driver version {driver_version} (directory scan)")

    found = set(scan.libs) | set(scan.libs32)
    for listed in names.libraries:
        if not any(matches(s, listed) for s in found):
            scan.findings.append(Finding("library", listed, None, "skipped",
                                         "not installed on this host (optional)"))
    return scan


def _add(scan: LibraryScan, root: HostRoot, host: elf.ElfIdent, soname: str, path: str,
         link: str | None, how: str) -> None:
    real = root.resolve(path)
    if real is None:
        scan.findings.append(Finding("library", soname, path, "skipped",
                                     "dangling symlink (the file it names is gone)"))
        return
    real_path = root.join(real)
    scan.consulted.add(real_path)
    ident = elf.read_ident(real_path)
    kind = classify(ident, host)
    if kind is None:
        what = ident.describe() if ident else "not an ELF file"
        scan.findings.append(Finding("library", soname, path, "skipped",
                                     f"{what}; this host runs {host.describe()}"))
        return
    table = scan.libs if kind == "64" else scan.libs32
    if soname in table:
        return  # an earlier source already named this soname
    # The link is usable only if it really names this file (the cache path does).
    link_ok = link is not None and os.path.basename(link) == soname and root.resolve(link) == real
    table[soname] = Library(src=real_path, name=soname, link=root.join(link) if link_ok else None)
    directory = os.path.dirname(real)
    if kind == "64" and directory not in scan.driver_dirs:
        scan.driver_dirs.append(directory)
    if kind == "32":
        how += f"; {ident.describe()}: only with --compat32"
    scan.findings.append(Finding("library32" if kind == "32" else "library", soname, real,
                                 "found", how))
