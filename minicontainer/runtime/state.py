"""Container records on disk, their locks, and the truth about their status.

Layout (docs/ARCHITECTURE.md, "State on disk"):

    ROOT/containers/<id>/       survives a reboot; an OCI bundle
        config.json             the container, in the OCI runtime spec's words,
                                as the engine made it (create.py, bundle.py)
        container.json          its name, and what the engine keeps that
                                config.json has no field for (EngineRecord)
                                (both written before the directory is renamed
                                into place whole)
        bundle-config.json      the config.json its last start ran (bundle.for_start:
                                with the network namespace, cgroup...), for
                                `minict inspect --bundle`
        upper/ work/            the container's overlayfs upper and work dirs
        merged/                 mount point of its root (mounted only inside
                                the container's own mount namespace)
        lower/                  short symlinks to the layers, only for
                                images with too many layers for one mount(2)
        hostname hosts resolv.conf   bind-mounted onto /etc in the container
        container.log           output of detached containers
        exit.json               how the last run ended
    STATE/containers/<id>.json  the running process (pid, start time, owner)
    STATE/locks/names.lock      held while names and records change
    STATE/locks/<id>.lock       held by the container's owner (the
                                foreground `minict run` or the supervisor
                                of a detached one) for as long as it lives

Why this survives a SIGKILL of any minict process at any moment:
- A record appears by rename(2) of a complete `.tmp-<id>` directory, and
  disappears by rename to `.rm-<id>` before being deleted, so a crash
  leaves at most a dot-directory that `recover()` removes.
- The owner's flock(2) is dropped by the kernel when the owner dies, so
  "is anyone looking after this container?" is a non-blocking lock attempt,
  never a guess from a pid file.
- The container's init gets SIGKILL when its owner dies (PR_SET_PDEATHSIG),
  and its mounts live only in its own mount namespace, so the kernel
  removes them with it. What is left is files, which `recover()` puts right.
- A pid is trusted only together with its start time (/proc/PID/stat field
  22), so a recycled pid is never mistaken for the container.
"""

import calendar
import errno
import fcntl
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import idmap
from ..errors import BadArgument, ContainerNotFound, ContainerStateError, NameInUse, RunFailed
from ..fsutil import atomic_write
from .process import is_alive, start_time
from .engine_record import EngineRecord


@dataclass
class Layout:
    """Where a minict root keeps its container records (nothing is created here:
    commands that only look, like ps or inspect, leave no directories behind)."""
    containers: Path    # ROOT/containers
    runtime: Path       # STATE/containers
    locks: Path         # STATE/locks

    @classmethod
    def of(cls, config) -> "Layout":
        return cls(Path(config.root) / "containers", Path(config.state) / "containers",
                   Path(config.state) / "locks")

    def create(self) -> None:
        for path in (self.containers, self.runtime, self.locks):
            path.mkdir(parents=True, exist_ok=True)

    def names_lock(self) -> Path:
        return self.locks / "names.lock"


@dataclass
class Record:
    """One container as stored: its config.json, the engine's record, and
    where its files are."""
    id: str
    name: str
    created: str            # RFC 3339, see now()
    engine: EngineRecord
    config: dict = field(repr=False)   # its config.json, as made (bundle.config_of)
    dir: Path               # ROOT/containers/<id>
    layout: Layout = field(repr=False)

    @property
    def runtime_file(self) -> Path:
        return self.layout.runtime / f"{self.id}.json"

    @property
    def lock_file(self) -> Path:
        return self.layout.locks / f"{self.id}.lock"

    @property
    def bundle_config_file(self) -> Path:
        return self.dir / "bundle-config.json"

    @property
    def exit_file(self) -> Path:
        return self.dir / "exit.json"

    @property
    def log_file(self) -> Path:
        return self.dir / "container.log"


@dataclass
class Status:
    """What is true of a container right now (see status())."""
    state: str                      # created | running | exited
    pid: int | None = None          # the container's PID 1 on the host, while it exists
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None        # why minict could not record a normal end
    owner_pid: int | None = None    # the foreground minict or the supervisor
    oom_killed: bool = False        # the kernel's OOM killer killed a process of it
    devices: str | None = None      # what controlled its devices (device_access.py)
    network: dict | None = None     # where it is on its network, while it runs (networking.py)

    @property
    def running(self) -> bool:
        return self.state == "running"


def now() -> str:
    """UTC, RFC 3339 with microseconds (docker shows nanoseconds)."""
    stamp = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1e6):06d}Z"


def parse_time(text: str) -> float:
    whole, _, fraction = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (fraction or "0"))


# ---- small file helpers -----------------------------------------------------------

def write_json(path: Path, data, durable: bool = False) -> None:
    """Write JSON via a temp file and rename(2): readers see old or new, never half.
    `durable` adds an fsync, for records that must survive a power cut."""
    atomic_write(path, json.dumps(data, indent=1).encode(), durable=durable)


def read_json(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None   # a half-written file cannot exist (rename), so treat damage as absence


# ---- locks -----------------------------------------------------------------------------

class Lock:
    """An flock(2) held on a file until release() or process death."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self.fd = fd

    @classmethod
    def acquire(cls, path: Path, blocking: bool = True, timeout: float | None = None) -> "Lock | None":
        path.parent.mkdir(parents=True, exist_ok=True)   # the state dir is gone after a reboot
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking and deadline is None else fcntl.LOCK_NB))
                return cls(path, fd)
            except BlockingIOError:
                if not blocking or time.monotonic() >= deadline:
                    os.close(fd)
                    return None
                time.sleep(0.01)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)   # closing the last fd drops the lock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def names_lock(layout: Layout) -> Lock:
    return Lock.acquire(layout.names_lock())


# ---- records ----------------------------------------------------------------------------

def load_record(layout: Layout, directory: Path) -> Record | None:
    """The record in `directory` (None: not a container's, or an older
    minict's); ContainerStateError when it is damaged."""
    data = read_json(directory / "container.json")
    if not data:
        return None
    config = read_json(directory / "config.json")
    try:
        engine = EngineRecord.from_dict(data["engine"])
    except (KeyError, TypeError) as exc:
        raise ContainerStateError(f"container record {directory} is damaged ({exc})",
                                  "remove it with minict rm -f, or run minict cleanup") from None
    if not isinstance(config, dict) or not isinstance(config.get("process"), dict):
        raise ContainerStateError(f"container record {directory} has no config.json",
                                  "remove it with minict rm -f, or run minict cleanup")
    return Record(id=data["id"], name=data["name"], created=data["created"], engine=engine,
                  config=config, dir=directory, layout=layout)


def list_records(layout: Layout) -> list[Record]:
    records = []
    if not layout.containers.is_dir():
        return records
    for entry in sorted(layout.containers.iterdir()):
        if entry.name.startswith("."):
            continue   # .tmp-* (being created) and .rm-* (being removed)
        try:
            record = load_record(layout, entry)
        except ContainerStateError:
            continue
        if record:
            records.append(record)
    records.sort(key=lambda r: r.created, reverse=True)
    return records


def find(layout: Layout, ref: str) -> Record:
    """A container by name, full id or unique id prefix (as docker accepts)."""
    records = list_records(layout)
    for record in records:
        if record.name == ref or record.id == ref:
            return record
    if ref and all(c in "0123456789abcdef" for c in ref):
        hits = [r for r in records if r.id.startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise BadArgument(f"container id prefix {ref!r} is ambiguous", "give more characters")
    raise ContainerNotFound(f"no such container: {ref}", "see minict ps -a for the containers there are")


def create_record(layout: Layout, engine: EngineRecord, config: dict,
                  files: dict[str, bytes]) -> tuple[Record, Lock]:
    """Make a container's directory (config.json, container.json and
    `files`) and claim it: returns the record and the owner lock (held).
    The name is checked and the directory renamed into place under the
    names lock, so two runs cannot take one name."""
    layout.create()
    with names_lock(layout):
        taken = {r.name for r in list_records(layout)}
        name = engine.name or _fresh_name(taken)
        if name in taken:
            raise NameInUse(f"the container name {name!r} is already in use",
                            f"remove that container with minict rm {name}, or choose another --name")
        engine.name = name
        final = layout.containers / engine.id
        tmp = layout.containers / f".tmp-{engine.id}"
        tmp.mkdir()
        for sub in ("upper", "work", "merged"):
            (tmp / sub).mkdir()
        for filename, data in files.items():
            (tmp / filename).write_bytes(data)
        write_json(tmp / "config.json", config, durable=not engine.auto_remove)
        record = {"id": engine.id, "name": name, "created": now(), "engine": engine.to_dict()}
        write_json(tmp / "container.json", record, durable=not engine.auto_remove)
        lock = Lock.acquire(layout.locks / f"{engine.id}.lock", blocking=False)
        os.rename(tmp, final)
        return load_record(layout, final), lock


def save_engine_record(record: Record) -> None:
    """Write a changed engine record back (`minict update`'s limits: the
    next start writes them into the config.json it runs). The caller holds
    the names lock; the rename makes it all-or-nothing."""
    data = read_json(record.dir / "container.json")
    data["engine"] = record.engine.to_dict()
    write_json(record.dir / "container.json", data, durable=True)


def remove_record(record: Record) -> None:
    """Delete a container's files. The caller holds its owner lock (so it
    is not running) and the names lock."""
    doomed = record.dir.with_name(f".rm-{record.id}")
    os.rename(record.dir, doomed)     # from here on no command sees it
    record.runtime_file.unlink(missing_ok=True)
    try:
        remove_container_tree(record.layout, str(doomed))
    except OSError:
        pass   # what is left is a .rm-* directory, which recover() removes
    record.lock_file.unlink(missing_ok=True)


def remove_container_tree(layout: Layout, path: str) -> None:
    """remove_tree, where the container's files may belong to ids the
    caller cannot delete: without root, in a store with a ranged id map
    (idmap.py), a file the container made as uid 1000 is owned by a
    subordinate id. Then the removal runs in a user namespace with that map,
    as root over them. Raises OSError as remove_tree does."""
    try:
        idmap.run_as_owner(layout.containers.parent, lambda: remove_tree(path), f"remove {path}")
    except RunFailed as failed:
        raise OSError(errno.EPERM, failed.message) from None


def remove_tree(path: str) -> None:
    """rm -r, without ever following a symlink.

    The container's upper directory holds whatever its processes made,
    including symlinks to host paths ("/etc"): a removal that followed one
    would delete host files. So each directory is opened with O_NOFOLLOW
    and its entries are removed relative to that fd (never by a path a
    rename could redirect), and a symlink is unlinked, never entered.
    The walk keeps its own stack rather than recursing: a container can
    nest directories deeper than Python's recursion limit. Each level of
    the stack holds one fd, so a tree deeper than the fd limit fails with
    OSError (EMFILE) and stays, as does anything else that cannot be
    removed (a .rm-* directory, which `minict cleanup` tries again).
    (Why not shutil.rmtree, which is as careful with symlinks? In the
    Python 3.11 of Debian 12 it recurses, one Python call per level, and
    stops with RecursionError on a tree deeper than about 1000 levels,
    which a container can make in a second: its directory would then stay
    for good. tests/runtime/test_state.py removes a 1500-deep tree.)
    """
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    stack = [(os.open(path, flags), None)]      # (fd of a directory, its name in the one below)
    try:
        while stack:
            fd, _ = stack[-1]
            subdir = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        subdir = entry.name       # empty it first; come back here after
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if subdir is not None:
                if os.geteuid() != 0:
                    _let_owner_in(fd, subdir)
                stack.append((os.open(subdir, flags, dir_fd=fd), subdir))
                continue
            _, name = stack.pop()                 # this directory is empty now
            os.close(fd)
            if stack:
                os.rmdir(name, dir_fd=stack[-1][0])
    finally:
        for fd, _ in stack:
            os.close(fd)
    os.rmdir(path)


def _let_owner_in(parent_fd: int, name: str) -> None:
    """Without root (rootless.py) the container's upper and work directories
    may hold directories their owner, the caller, cannot list or empty (the
    container's root ignores modes; overlayfs makes work/work with mode 0).
    Give the owner rwx first, through an O_PATH|O_NOFOLLOW handle, so that a
    symlink swapped in meanwhile is never followed."""
    handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        if stat.S_ISDIR(os.fstat(handle).st_mode):
            os.chmod(f"/proc/self/fd/{handle}", 0o700)
    finally:
        os.close(handle)


# ---- runtime state and exit status -----------------------------------------------------

def write_starting(record: Record, pid: int, owner_pid: int, devices: str | None = None,
                   network: dict | None = None) -> None:
    """Say which process is the container (state dir: a reboot clears it),
    what controls its devices (device_access.py: `minict exec` and
    `inspect` read it) and where it is on its network (networking.py).

    Written as soon as the process exists, so that `minict cleanup` finds
    it if the owner dies while plugging it in; but the container is only
    "starting" (shown as created, as docker does) until its command runs:
    `minict kill` then has no half-made container to hit (write_running)."""
    record.exit_file.unlink(missing_ok=True)
    record.runtime_file.parent.mkdir(parents=True, exist_ok=True)   # gone after a reboot
    write_json(record.runtime_file, {"pid": pid, "pid_start": start_time(pid),
                                     "owner_pid": owner_pid, "started_at": now(),
                                     "devices": devices, "network": network, "starting": True})


def write_running(record: Record) -> None:
    """The container's command runs: from now on it is "running"."""
    runtime = read_json(record.runtime_file) or {}
    write_json(record.runtime_file, dict(runtime, starting=False))


def write_exit(record: Record, exit_code: int | None, error: str | None = None,
               oom_killed: bool = False) -> None:
    runtime = read_json(record.runtime_file) or {}
    write_json(record.exit_file, {"exit_code": exit_code, "finished_at": now(),
                                  "started_at": runtime.get("started_at"), "error": error,
                                  "oom_killed": oom_killed, "devices": runtime.get("devices")})
    record.runtime_file.unlink(missing_ok=True)


def status(record: Record) -> Status:
    """What is true of this container right now (never what a stale file says)."""
    runtime = read_json(record.runtime_file)
    if runtime and is_alive(runtime.get("pid"), runtime.get("pid_start")):
        return Status("created" if runtime.get("starting") else "running", pid=runtime["pid"],
                      started_at=runtime.get("started_at"),
                      owner_pid=runtime.get("owner_pid"), devices=runtime.get("devices"),
                      network=runtime.get("network"))
    exited = read_json(record.exit_file)
    if exited:
        return Status("exited", exit_code=exited.get("exit_code"), error=exited.get("error"),
                      started_at=exited.get("started_at"), finished_at=exited.get("finished_at"),
                      oom_killed=bool(exited.get("oom_killed")), devices=exited.get("devices"))
    if runtime:
        return Status("exited", error="the minict process that ran it died; exit status unknown",
                      started_at=runtime.get("started_at"))
    return Status("created")


def containers_using_image(config, image_id: str) -> list[str]:
    """Names of the containers (any state) made from image `image_id`:
    `minict rmi` must not delete an image a container's overlay still needs."""
    layout = Layout.of(config)
    return [r.name for r in list_records(layout) if r.engine.image_id == image_id]


# ---- names -------------------------------------------------------------------------------

_ADJECTIVES = ["brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry",
               "nifty", "proud", "quiet", "sharp", "tender", "upbeat", "vivid", "witty", "zen"]
_PEOPLE = ["babbage", "curie", "dijkstra", "euler", "franklin", "goodall", "hopper", "johnson",
           "knuth", "lamarr", "lovelace", "noether", "pike", "ritchie", "shannon", "thompson",
           "turing", "wozniak"]


def _fresh_name(taken: set[str]) -> str:
    """adjective_person, as docker names containers; a number is added once
    the plain combinations run short."""
    for attempt in range(2000):
        a, b = os.urandom(2)
        name = f"{_ADJECTIVES[a % len(_ADJECTIVES)]}_{_PEOPLE[b % len(_PEOPLE)]}"
        if attempt >= 1000:
            name += f"_{int.from_bytes(os.urandom(3), 'big')}"
        if name not in taken:
            return name
    raise RuntimeError("could not find a free container name")
