"""The Plan: what a container needs to use the selected GPUs, runtime-neutral.

Discovery and selection produce one Plan; every backend (apptainer,
singularity, ch-run, minict) renders the same Plan into its own argv, and
`hpcshim doctor`, `--dry-run` and `hpcshim cdi generate` print it. The JSON
form (`Plan.to_json()` / `Plan.from_json()`) is a stable interface: minict
reads it (`minict run --gpu-plan FILE`), so fields are only ever added, and a
change of meaning bumps `hpcshimPlanVersion`.

JSON document, version 1 (all paths absolute; "host" paths are where the
item is on the host, "container" paths where it must appear)::

    {
      "hpcshimPlanVersion": 1,
      "vendor": "nvidia" | "rocm" | null,        null: no GPU injection at all
      "driverVersion": "550.54.14" | null,
      "gpus": [{"index", "minor", "uuid", "pciBusId", "model"}],   informational
      "devices": [{"path", "hostPath", "type": "c", "major", "minor", "mode"}],
      "binds": [{"src", "dst", "ro", "kind"}],
      "libDir": "/.hpcshim/lib",
      "libraries": [{"src", "name", "link"}],
      "lib32Dir": "/.hpcshim/lib32",
      "libraries32": [{"src", "name", "link"}],
      "env": {"CUDA_VISIBLE_DEVICES": "0,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
      "envIfHostDev": {"CUDA_VISIBLE_DEVICES": "2,3"},
      "ldLibraryPath": ["/.hpcshim/lib"],
      "findings": [{"kind", "name", "path", "status", "reason"}],
      "pitfalls": ["..."]
    }

What a runtime must do with each field (the contract minict implements):

- ``devices``: make each node exist at ``path`` inside the container: either
  mknod(path, S_IFCHR | mode, makedev(major, minor)) in the container's own
  /dev (needs CAP_MKNOD in the container's user namespace: a root runtime),
  or bind-mount ``hostPath`` onto an empty file created at ``path``. Create
  parent directories (``/dev/nvidia-caps``, ``/dev/dri``) as needed. ``mode``
  is the permission bits (an integer, e.g. 438 for 0o666). Only these nodes:
  a GPU that is not listed must not be reachable, which is what makes
  ``env`` (not ``envIfHostDev``) correct.
- ``binds``: bind-mount ``src`` (a host file, directory or socket) onto
  ``dst``, creating an empty file or directory of the same type at ``dst``
  when missing; remount read-only when ``ro`` is true. ``kind`` (binary,
  firmware, socket, ipc, icd, user) is for humans.
- ``libraries``: bind-mount each ``src`` (a real file, symlinks already
  resolved) read-only at ``libDir``/``name``. ``name`` is the library's
  soname, the name the dynamic loader looks for. ``link`` is the host path
  whose basename is ``name`` (the ld.so.cache entry), when one exists;
  runtimes that can only bind a file under its own basename (Apptainer's
  ``--containlibs``) use it.
- ``libraries32``: the same into ``lib32Dir``; present only with --compat32.
- ``ldLibraryPath``: prepend these directories, in order, to the container
  process's LD_LIBRARY_PATH (keep whatever the image or user set after them).
  The loader skips libraries of the wrong ELF class on that path, so lib and
  lib32 can both be listed.
- ``env``: set these variables in the container process's environment,
  overriding the image's and the host's values. They assume the container
  sees exactly ``devices``.
- ``envIfHostDev``: a runtime that cannot restrict device nodes and gives the
  container the host's whole /dev (ch-run; apptainer without --contain) sets
  these instead of the same keys in ``env``: the GPU indices are then
  counted among all the GPUs the process can see, not just the selected ones.
- ``gpus``, ``findings``, ``pitfalls``: for humans (doctor, --dry-run); a
  runtime needs nothing from them.

A Plan with ``vendor`` null injects no GPU (no devices, no libraries); its
``binds`` and ``env`` still apply (the minict backend carries the user's
-B/--env that way).
"""

from collections import namedtuple

from .errors import BadPlan

PLAN_VERSION = 1
DEFAULT_LIB_DIR = "/.hpcshim/lib"
DEFAULT_LIB32_DIR = "/.hpcshim/lib32"

# The records are namedtuples: small, immutable, and turned into JSON with _asdict().


class Gpu(namedtuple("Gpu", ["index", "minor", "uuid", "pci_bus_id", "model"],
                     defaults=[None, None, None])):
    """One GPU as the host's driver reports it.

    index: position in PCI bus order (nvidia-smi's index); minor: N of
    /dev/nvidiaN (of renderDN for ROCm); uuid, pci_bus_id, model: when known.
    """
    __slots__ = ()


class DeviceNode(namedtuple("DeviceNode", ["path", "host_path", "major", "minor", "mode", "type"],
                            defaults=["c"])):
    """A device node: path in the container, host_path on the host (under
    --host-root when one is given), major/minor numbers, mode (permission
    bits, e.g. 0o666), type "c" (character) or "b" (block)."""
    __slots__ = ()


class Bind(namedtuple("Bind", ["src", "dst", "ro", "kind"], defaults=[True, "user"])):
    """A bind mount of host src at container dst; kind (binary, firmware,
    socket, ipc, icd, cdi, user) says why, for humans."""
    __slots__ = ()


class Library(namedtuple("Library", ["src", "name", "link"], defaults=[None])):
    """A driver library: src, a real file on the host (symlinks resolved);
    name, its soname (the file name inside the container's lib dir); link, a
    host path named `name` that resolves to src, if there is one."""
    __slots__ = ()


class Finding(namedtuple("Finding", ["kind", "name", "path", "status", "reason"])):
    """One thing discovery looked for: status "found" (path: where) or
    "skipped" (reason: why). kind: driver, gpu, device, library, library32,
    binary, firmware, socket, ipc, icd, selection or cdi."""
    __slots__ = ()


class Plan:
    """Everything a runtime needs; see the module docstring for each field."""

    def __init__(self, vendor=None, driver_version=None, gpus=None, devices=None, binds=None,
                 lib_dir=DEFAULT_LIB_DIR, libraries=None, lib32_dir=DEFAULT_LIB32_DIR, libraries32=None,
                 env=None, env_if_host_dev=None, ld_library_path=None, findings=None, pitfalls=None):
        self.vendor: str | None = vendor
        self.driver_version: str | None = driver_version
        self.gpus: list[Gpu] = list(gpus or [])
        self.devices: list[DeviceNode] = list(devices or [])
        self.binds: list[Bind] = list(binds or [])
        self.lib_dir: str = lib_dir
        self.libraries: list[Library] = list(libraries or [])
        self.lib32_dir: str = lib32_dir
        self.libraries32: list[Library] = list(libraries32 or [])
        self.env: dict[str, str] = dict(env or {})
        self.env_if_host_dev: dict[str, str] = dict(env_if_host_dev or {})
        self.ld_library_path: list[str] = list(ld_library_path or [])
        self.findings: list[Finding] = list(findings or [])
        self.pitfalls: list[str] = list(pitfalls or [])

    def __eq__(self, other):
        return isinstance(other, Plan) and self.to_dict() == other.to_dict()

    def __repr__(self):
        return f"Plan({self.to_dict()!r})"

    def copy(self) -> "Plan":
        return Plan.from_dict(self.to_dict())

    @property
    def empty(self) -> bool:
        return self.vendor is None

    def env_for(self, host_dev: bool) -> dict[str, str]:
        """The variables to set, for a runtime that shares the host's /dev or not."""
        merged = dict(self.env)
        if host_dev:
            merged.update(self.env_if_host_dev)
        return merged

    # ---- JSON (see the module docstring for the document) ----------------

    def to_dict(self) -> dict:
        return {
            "hpcshimPlanVersion": PLAN_VERSION,
            "vendor": self.vendor,
            "driverVersion": self.driver_version,
            "gpus": [{"index": g.index, "minor": g.minor, "uuid": g.uuid,
                      "pciBusId": g.pci_bus_id, "model": g.model} for g in self.gpus],
            "devices": [{"path": d.path, "hostPath": d.host_path, "type": d.type,
                         "major": d.major, "minor": d.minor, "mode": d.mode} for d in self.devices],
            "binds": [b._asdict() for b in self.binds],
            "libDir": self.lib_dir,
            "libraries": [lib._asdict() for lib in self.libraries],
            "lib32Dir": self.lib32_dir,
            "libraries32": [lib._asdict() for lib in self.libraries32],
            "env": dict(self.env),
            "envIfHostDev": dict(self.env_if_host_dev),
            "ldLibraryPath": list(self.ld_library_path),
            "findings": [f._asdict() for f in self.findings],
            "pitfalls": list(self.pitfalls),
        }

    def to_json(self) -> str:
        """Stable text: keys in document order, two-space indent, newline at the end."""
        import json  # only a Plan as text needs it: `exec` without a GPU never does
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        import json  # only a Plan as text needs it: `exec` without a GPU never does
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadPlan(f"the GPU plan is not JSON: {exc}",
                          hint="write it with `hpcshim doctor --json` or Plan.to_json()") from exc
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: dict) -> "Plan":
        if not isinstance(doc, dict) or doc.get("hpcshimPlanVersion") != PLAN_VERSION:
            version = doc.get("hpcshimPlanVersion") if isinstance(doc, dict) else None
            raise BadPlan(f"unsupported GPU plan version {version!r}",
                          hint=f"this hpcshim reads hpcshimPlanVersion {PLAN_VERSION}")
        try:
            return cls(
                vendor=doc["vendor"],
                driver_version=doc.get("driverVersion"),
                gpus=[Gpu(index=g["index"], minor=g["minor"], uuid=g.get("uuid"),
                          pci_bus_id=g.get("pciBusId"), model=g.get("model"))
                      for g in doc.get("gpus", [])],
                devices=[DeviceNode(path=d["path"], host_path=d.get("hostPath", d["path"]),
                                    major=int(d["major"]), minor=int(d["minor"]),
                                    mode=int(d["mode"]), type=d.get("type", "c"))
                         for d in doc.get("devices", [])],
                binds=[Bind(src=b["src"], dst=b["dst"], ro=bool(b.get("ro", True)),
                            kind=b.get("kind", "user")) for b in doc.get("binds", [])],
                lib_dir=doc.get("libDir", DEFAULT_LIB_DIR),
                libraries=[Library(**_lib_fields(lib)) for lib in doc.get("libraries", [])],
                lib32_dir=doc.get("lib32Dir", DEFAULT_LIB32_DIR),
                libraries32=[Library(**_lib_fields(lib)) for lib in doc.get("libraries32", [])],
                env={str(k): str(v) for k, v in doc.get("env", {}).items()},
                env_if_host_dev={str(k): str(v) for k, v in doc.get("envIfHostDev", {}).items()},
                ld_library_path=list(doc.get("ldLibraryPath", [])),
                findings=[Finding(**f) for f in doc.get("findings", [])],
                pitfalls=list(doc.get("pitfalls", [])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPlan(f"the GPU plan is missing or mistypes a field: {exc}",
                          hint="regenerate it with `hpcshim doctor --json`") from exc


def _lib_fields(lib: dict) -> dict:
    return {"src": lib["src"], "name": lib["name"], "link": lib.get("link")}
