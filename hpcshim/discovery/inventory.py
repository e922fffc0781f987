"""The host-wide half of discovery: driver files that do not depend on the job.

Libraries, binaries, firmware and ICD files are the same for every job step
on a node, so they are gathered here, once, and cached (hpcshim.cache) while
every file and directory they came from is unchanged. Device nodes, GPUs,
sockets and the selection are read fresh each time by hpcshim.build: they
are cheap, and they change (a module loads, a daemon starts, a job differs).
"""

import os

from .. import __version__, cache, elf
from ..plan import Bind, Finding, Library
from . import liblists, nvidia
from .hostroot import HostRoot


class DriverFiles:
    """The driver's files on this host: what the discovery cache stores."""

    def __init__(self):
        self.libraries: list[Library] = []
        self.libraries32: list[Library] = []
        self.binaries: list[Bind] = []
        self.firmware: list[Bind] = []
        self.icds: list[Bind] = []
        self.findings: list[Finding] = []
        self.from_cache = False

    def to_dict(self) -> dict:
        return {"libraries": [x._asdict() for x in self.libraries],
                "libraries32": [x._asdict() for x in self.libraries32],
                "binaries": [x._asdict() for x in self.binaries],
                "firmware": [x._asdict() for x in self.firmware],
                "icds": [x._asdict() for x in self.icds],
                "findings": [x._asdict() for x in self.findings]}

    @classmethod
    def from_dict(cls, doc: dict) -> "DriverFiles":
        files = cls()
        files.libraries = [Library(**x) for x in doc["libraries"]]
        files.libraries32 = [Library(**x) for x in doc["libraries32"]]
        files.binaries = [Bind(**x) for x in doc["binaries"]]
        files.firmware = [Bind(**x) for x in doc["firmware"]]
        files.icds = [Bind(**x) for x in doc["icds"]]
        files.findings = [Finding(**x) for x in doc["findings"]]
        files.from_cache = True
        return files


def name_list(root: HostRoot, vendor: str, env: dict[str, str]) -> tuple[liblists.NameList, list[str]]:
    """The built-in names plus the site's list files; also the files consulted."""
    if vendor == "nvidia":
        libs, bins = liblists.NVIDIA_LIBRARIES, liblists.NVIDIA_BINARIES
        site_file, variable = "/etc/hpcshim/nvliblist.conf", "HPCSHIM_NVLIBLIST"
    else:
        libs, bins = liblists.ROCM_LIBRARIES, liblists.ROCM_BINARIES
        site_file, variable = "/etc/hpcshim/rocmliblist.conf", "HPCSHIM_ROCMLIBLIST"
    sources, consulted = [], [root.join(site_file)]
    text = root.read_text(site_file)
    if text is not None:
        sources.append((site_file, text))
    if env.get(variable):
        consulted.append(env[variable])
        try:
            with open(env[variable], encoding="utf-8") as f:
                sources.append((env[variable], f.read()))
        except OSError:
            pass
    return liblists.merge(libs, bins, sources), consulted


def driver_files(root: HostRoot, vendor: str, version: str | None, env: dict[str, str],
                 host: elf.ElfIdent | None = None) -> DriverFiles:
    """Libraries, binaries, firmware, ICD files of the vendor's driver (cached when safe)."""
    host = host or elf.host_ident()
    names, consulted_lists = name_list(root, vendor, env)
    key = {"hpcshim": __version__, "root": os.path.realpath(root.root), "vendor": vendor,
           "version": version, "host": [host.bits, host.machine, host.little],
           "names": [list(names.libraries), list(names.binaries)]}
    directory = cache.cache_dir(env)
    cached = cache.load(directory, key)
    if cached is not None:
        return DriverFiles.from_dict(cached)

    from .libraries import find_libraries  # with ldcache and elf parsing: only on a cache miss
    files = DriverFiles()
    scan = find_libraries(root, names, version if vendor == "nvidia" else None, host)
    files.libraries = list(scan.libs.values())
    files.libraries32 = list(scan.libs32.values())
    files.findings += scan.findings
    consulted = set(scan.consulted) | set(consulted_lists)

    if vendor == "nvidia":
        files.binaries, found = nvidia.binaries(root, names.binaries)
        files.findings += found
        files.firmware, found = nvidia.firmware(root, version)
        files.findings += found
        files.icds, found = nvidia.icd_files(root)
        files.findings += found
        consulted |= {root.join(d) for d in nvidia.BINARY_DIRS}
        consulted |= {root.join(f"{d}/{version}") for d in nvidia.FIRMWARE_DIRS}
        consulted |= {root.join(os.path.dirname(p)) for p in nvidia.ICD_FILES}
    else:
        files.binaries, found = _rocm_binaries(root, names.binaries)
        files.findings += found
        consulted |= {root.join(d) for d in nvidia.BINARY_DIRS + ("/opt/rocm/bin",)}
    consulted |= {b.src for b in files.binaries + files.firmware + files.icds}
    cache.store(directory, key, consulted, files.to_dict())
    return files


def _rocm_binaries(root: HostRoot, names) -> tuple[list[Bind], list[Finding]]:
    binds, findings = [], []
    for name in names:
        for directory in ("/opt/rocm/bin",) + nvidia.BINARY_DIRS:
            real = root.resolve(f"{directory}/{name}")
            if real and os.access(root.join(real), os.X_OK) and os.path.isfile(root.join(real)):
                binds.append(Bind(src=root.join(real), dst=f"/usr/bin/{name}", ro=True, kind="binary"))
                findings.append(Finding("binary", name, f"{directory}/{name}", "found",
                                        "bound at /usr/bin/" + name))
                break
        else:
            findings.append(Finding("binary", name, None, "skipped", "not installed (optional)"))
    return binds, findings
