"""What minict-oci keeps about a container between two commands.

runc's callers run it once per step (create, start, state, kill, delete),
so everything a later step needs is on disk, in the state directory
(`--root`, default /run/minict-oci; a tmpfs, so a reboot forgets it):

    ROOT/ID/state.json   pid (and its start time), bundle, annotations,
                         cgroup, created, hooks: written once create succeeded
    ROOT/ID/exec.fifo    the named pipe the created container waits on;
                         `start` reads it, and removes it

The status the runtime spec defines is never stored: it is read from the
kernel each time, so it cannot be stale.
  created   the process is alive and still waiting on exec.fifo
  running   the process is alive and the fifo is gone (start opened it)
  stopped   the process is gone (or a zombie nobody has reaped yet)
The pid's start time (field 22 of /proc/PID/stat) guards against a pid
the kernel has handed to another process since.
"""

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import BadArgument, ContainerNotFound, MinictError

def default_root() -> Path:
    """/run/minict-oci for root; for a user, $XDG_RUNTIME_DIR/minict-oci (as runc)."""
    if os.geteuid() == 0:
        return Path("/run/minict-oci")
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/minict-oci-{os.getuid()}"
    return Path(base) / "minict-oci"


DEFAULT_ROOT = Path("/run/minict-oci")
OCI_VERSION = "1.0.2"


def valid_id(container_id: str) -> bool:
    """runc's rule: ASCII letters, digits, and _ + - . (no slash: it is a
    directory name)."""
    return (re.fullmatch(r"[\w+.-]+", container_id or "", re.ASCII) is not None
            and container_id not in (".", ".."))


@dataclass
class Record:
    """state.json."""
    id: str
    bundle: str
    pid: int = 0
    pid_start: str = ""                 # /proc/PID/stat field 22
    created: str = ""                   # RFC 3339, as runc shows it
    annotations: dict = field(default_factory=dict)
    cgroup: str | None = None           # the container's cgroup v2 directory, if it has one
    rootfs: str = ""
    hooks: dict = field(default_factory=dict)   # config.json's, as create checked them:
                                                # start and delete run these, not the bundle's

    def directory(self, root: Path) -> Path:
        return Path(root) / self.id


def directory(root: Path, container_id: str) -> Path:
    if not valid_id(container_id):
        raise BadArgument(f"invalid container id {container_id!r}",
                          "use letters, digits and _ + - .")
    return Path(root) / container_id


def fifo_path(root: Path, container_id: str) -> Path:
    return directory(root, container_id) / "exec.fifo"


def save(root: Path, record: Record) -> None:
    """Write state.json whole or not at all (a reader never sees half of it)."""
    path = directory(root, record.id) / "state.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(record)))
    os.replace(temporary, path)


def load(root: Path, container_id: str) -> Record:
    path = directory(root, container_id) / "state.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ContainerNotFound(f"container {container_id} does not exist",
                                f"minict-oci --root {root} list shows the containers") from None
    except ValueError:
        raise ContainerNotFound(f"container {container_id} has a damaged state file {path}",
                                f"minict-oci delete --force {container_id}") from None
    if "hooks" not in data:
        # Written by a minict-oci from before state.json kept the hooks: it
        # would have read them from the bundle at start and delete, so do that.
        data["hooks"] = _bundle_hooks(data.get("bundle", ""))
    return Record(**data)


def _bundle_hooks(bundle: str) -> dict:
    """The bundle's hooks, checked as create checks them; none if the
    bundle is gone or its config.json no longer passes."""
    from . import config as config_file   # here: start and delete need it for old records only
    try:
        return config_file.load(Path(bundle)).get("hooks", {})
    except MinictError:
        return {}


def all_ids(root: Path) -> list[str]:
    if not Path(root).is_dir():
        return []
    return sorted(p.name for p in Path(root).iterdir() if (p / "state.json").exists())


def remove(root: Path, container_id: str) -> None:
    shutil.rmtree(directory(root, container_id), ignore_errors=True)


def start_time(pid: int) -> str:
    """Field 22 of /proc/PID/stat ("" when there is no such process)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return ""
    return text.rsplit(")", 1)[1].split()[19]


def alive(record: Record) -> bool:
    """Is the container's process still there (and not a zombie)?"""
    if record.pid <= 0 or start_time(record.pid) != record.pid_start:
        return False
    try:
        with open(f"/proc/{record.pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def status(root: Path, record: Record) -> str:
    if not alive(record):
        return "stopped"
    if fifo_path(root, record.id).exists():
        return "created"
    if record.cgroup and _frozen(record.cgroup):
        return "paused"
    return "running"


def _frozen(cgroup: str) -> bool:
    try:
        with open(os.path.join(cgroup, "cgroup.events")) as f:
            return "frozen 1" in f.read()
    except OSError:
        return False


def oci_state(root: Path, record: Record) -> dict:
    """The state the runtime spec defines (runtime.md, "State"), plus what
    runc adds (rootfs, created)."""
    current = status(root, record)
    return {"ociVersion": OCI_VERSION, "id": record.id, "status": current,
            "pid": record.pid if current != "stopped" else 0, "bundle": record.bundle,
            "rootfs": record.rootfs, "created": record.created,
            "annotations": record.annotations}


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file, whole or not at all: the engine may read it as soon as it exists."""
    temporary = f"{path}.minict-oci.tmp"
    try:
        with open(temporary, "w") as f:
            f.write(str(pid))
        os.replace(temporary, path)
    except OSError as exc:
        raise BadArgument(f"--pid-file {path}: {exc.strerror}",
                          "give a file in a directory that exists") from None
