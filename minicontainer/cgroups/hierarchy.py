"""One cgroup v2 directory per container, under a `minict` subtree.

    <root>/                     the v2 hierarchy (default /sys/fs/cgroup)
    <root>/minict/              minict's subtree: never holds a process itself
    <root>/minict/<container>/  a leaf: the container's processes and limits

Everything is a file operation under `root`, so tests hand in a temp
directory of fake control files and the VM tier hands in the real tree.
Every write the kernel sees goes through `write()`, which narrates it
(`--explain`) as one sentence plus the exact file and value.

The rules this code follows (Documentation/admin-guide/cgroup-v2.rst):

- "Controlling Controllers": a controller works in a cgroup only if its
  parent lists it in cgroup.subtree_control, so we enable what we need in
  <root> and in <root>/minict, top-down, writing only what is missing.
- "No Internal Process Constraint": a non-root cgroup that enables
  controllers for its children may hold no processes itself. The top of the
  hierarchy is exempt, so on a host, in the Vagrant VM (systemd) and in the
  virtme VM (everything sits in "/"), writing <root>/cgroup.subtree_control
  just works. `minict` itself never lives in <root>/minict, and container
  processes live only in leaves, so the subtree is always legal. The one
  case that is not: <root> is an ordinary cgroup that merely looks like the
  top (minict running inside another container with its own cgroup
  namespace, or in a delegated systemd scope) and minict's own processes
  are in it. Then we do what docker-in-docker's and kind's entrypoints do:
  move those processes into a leaf <root>/init first, and only then enable
  controllers. We never move processes out of the real top: that would
  drag every system process into a cgroup of ours.
- "Core Interface Files": cgroup.kill (Linux 5.14) kills every process in
  the cgroup at once, with no race against fork(); older kernels get a
  freeze-then-kill loop instead.
"""

import errno
import os
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from .. import syscalls as sc
from ..errors import BadArgument, CgroupUnavailable, RunFailed
from . import detect
from .limits import ControlWrite, Limits, cpuset_members
from .stats import Sample, read_sample
from .units import describe_bytes

DEFAULT_ROOT = Path("/sys/fs/cgroup")
SUBTREE = "minict"
EVACUATION_LEAF = "init"   # the name docker-in-docker and kind use for the same leaf

# Enabled whenever the kernel offers them, even with no limit asked, so that
# `minict stats` has memory.current, pids.current, cpu.stat and io.stat.
STATS_CONTROLLERS = {"cpu", "memory", "pids", "io"}

Explain = Callable[..., None]   # explain(sentence, call=None), like syscalls.Kernel.explain


def valid_id(name: str) -> bool:
    """A container id usable as one directory name."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name) is not None


def _silent(sentence: str, call: str | None = None) -> None:
    pass


def _missing(exc: OSError, path: Path) -> bool:
    """Did a write fail because the control file does not exist?

    cgroupfs cannot create files, so opening a missing one for writing gives
    EACCES (or ENOENT), not a plain "no such file"."""
    return exc.errno in (errno.ENOENT, errno.EACCES) and not path.exists()


def write(path: Path, value: str, sentence: str, explain: Explain) -> None:
    """Write one value to one control file, narrating it first.

    Unbuffered, so exactly one write(2) per value: the kernel parses each
    write on its own, and a buffered writer that split or merged them would
    change the meaning.
    """
    explain(sentence, f"write '{value}' to {path}")
    with open(path, "wb", buffering=0) as f:
        f.write(value.encode())


def make_dir(path: Path, sentence: str, explain: Explain, exist_ok: bool = False) -> None:
    """mkdir of one cgroup (FileExistsError unless `exist_ok`), narrating it first."""
    explain(sentence, f"mkdir {path}")
    path.mkdir(exist_ok=exist_ok)


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


# ---- the shared part of the tree ---------------------------------------------

def _enable_controllers(cgroup_dir: Path, controllers: set[str], explain: Explain) -> None:
    """Add the missing controllers to cgroup_dir/cgroup.subtree_control."""
    control = cgroup_dir / "cgroup.subtree_control"
    try:
        current = set(control.read_text().split())
    except FileNotFoundError:
        current = set()
    missing = sorted(set(controllers) - current)
    if not missing:
        return
    value = " ".join(f"+{c}" for c in missing)
    try:
        write(control, value,
               f"Let child cgroups of {cgroup_dir} use the {', '.join(missing)} controllers",
               explain)
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            raise CgroupUnavailable(
                f"cannot enable controllers in {cgroup_dir}: it holds processes "
                "(cgroup v2's no-internal-processes rule)",
                "move them into a child cgroup, or pass another cgroup root") from None
        raise CgroupUnavailable(f"cannot enable {value} in {control}: {exc.strerror}",
                                detect.UNIFIED_FIX) from None


def _evacuate_root(root: Path, explain: Explain) -> None:
    """Move the processes of a non-top <root> into the leaf <root>/init.

    See the module docstring: needed only when <root> is a cgroup namespace
    root or a delegated scope that still holds processes (ours included).
    """
    leaf = root / EVACUATION_LEAF
    if not leaf.is_dir():
        make_dir(leaf, "Make a leaf for the processes already in this cgroup "
                       "(the no-internal-processes rule)", explain, exist_ok=True)
    for pid in _read_pids(root):
        try:
            write(leaf / "cgroup.procs", str(pid), f"Move process {pid} into that leaf", explain)
        except ProcessLookupError:
            pass  # it exited meanwhile: nothing to move


def prepare_subtree(root: Path, controllers: set[str], explain: Explain = _silent) -> Path:
    """Make <root>/minict with `controllers` usable by its children; return its path."""
    subtree = Path(root) / SUBTREE
    prepare_levels(root, subtree, controllers, explain)
    return subtree


def prepare_levels(root: Path, deepest: Path, controllers: set[str],
                   explain: Explain = _silent) -> None:
    """Make every cgroup from <root> down to `deepest` (which is under it),
    top-down, each with `controllers` usable by its children. Processes are
    moved out only of <root> itself (see the module docstring): a level
    below it that holds processes is refused by the kernel (EBUSY)."""
    root = Path(root)
    top_needs = set(controllers) - set(_text(root / "cgroup.subtree_control").split())
    if top_needs and not detect.is_real_root(root) and _read_pids(root):
        _evacuate_root(root, explain)
    _enable_controllers(root, controllers, explain)
    for level in reversed([deepest, *Path(deepest).parents]):
        if level == root or not level.is_relative_to(root):
            continue
        if not level.is_dir():
            # (exist_ok: another minict may have just made it)
            why = ("Make minict's own subtree of the cgroup hierarchy"
                   if level == root / SUBTREE else f"Create the cgroup {level}")
            make_dir(level, why, explain, exist_ok=True)
        _enable_controllers(level, controllers, explain)


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


# ---- one container's cgroup -----------------------------------------------------

class Cgroup:
    """A container's cgroup directory: create, limit, join, measure, kill, remove."""

    def __init__(self, path: Path, explain: Explain | None = None):
        self.path = Path(path)
        self.explain = explain or _silent

    def __repr__(self) -> str:
        return f"Cgroup({str(self.path)!r})"

    @classmethod
    def of(cls, container_id: str, root: Path = DEFAULT_ROOT,
           explain: Explain | None = None) -> "Cgroup":
        """The cgroup of an existing container (for exec, stats, update,
        cleanup), under `root` (without root: delegated.cgroup_root())."""
        return cls(container_path(root, container_id), explain)

    def exists(self) -> bool:
        return self.path.is_dir()

    @property
    def container_id(self) -> str:
        return self.path.name

    # -- creation ------------------------------------------------------------

    @classmethod
    def create(cls, container_id: str, limits: Limits | None, root: Path = DEFAULT_ROOT,
               explain: Explain | None = None, proc: Path = Path("/proc")) -> "Cgroup":
        """Make <root>/minict/<container_id> with `limits` written (None: no
        limit, the cgroup only counts, for `minict stats`)."""
        if not valid_id(container_id):
            raise BadArgument(f"invalid container id for a cgroup: {container_id!r}",
                              "ids are letters, digits, '_', '.', '-' (no '/')")
        return cls.create_at(container_path(root, container_id), limits, root, explain, proc,
                             f"Create the cgroup of container {container_id}")

    @classmethod
    def create_at(cls, path: Path, limits: Limits | None, root: Path = DEFAULT_ROOT,
                  explain: Explain | None = None, proc: Path = Path("/proc"),
                  sentence: str | None = None) -> "Cgroup":
        """Make the cgroup `path`, somewhere under <root> (the part of the
        tree we may write), with `limits` written: where minict-oci puts
        config.json's cgroupsPath, minict run's containers included.

        Checks first (CgroupUnavailable / BadArgument before anything is
        made); if a limit write fails, the new directory is removed again.
        """
        explain = explain or _silent
        root, path = Path(root), Path(path)
        offered = preflight(limits, root, proc)
        needed = limits.controllers() if limits is not None else set()
        prepare_levels(root, path.parent, needed | (STATS_CONTROLLERS & offered), explain)
        try:
            make_dir(path, sentence or f"Create the cgroup {path}", explain)
        except FileExistsError:
            raise CgroupUnavailable(f"cgroup {path} already exists",
                                    "a crashed minict left it behind: `minict rm` the "
                                    "container, or remove the directory with rmdir") from None
        cgroup = cls(path, explain)
        if limits is None:
            return cgroup
        try:
            cgroup.apply(limits)
        except BaseException:
            cgroup._rmdir(quiet=True)
            raise
        return cgroup

    # -- limits --------------------------------------------------------------

    def apply(self, limits: Limits) -> None:
        """Write every limit (creation and `minict update` both land here)."""
        current = self.memory_max() if limits.memory_swap is not None else None
        for w in limits.writes(current_memory=current):
            self._write_control(w)

    update = apply

    def _write_control(self, w: ControlWrite) -> None:
        path = self.path / w.filename
        try:
            write(path, w.value, w.sentence, self.explain)
        except OSError as exc:
            if _missing(exc, path):
                if not w.required:
                    self.explain(f"Skipped {w.filename}: this kernel does not have it "
                                 "(no swap accounting?)")
                    return
                raise CgroupUnavailable(
                    f"{w.filename} does not exist in {self.path}",
                    f"the {w.controller} controller is not enabled for this cgroup, "
                    "or this kernel lacks the feature (swap needs swap accounting)") from None
            # EINVAL, ERANGE...: the kernel refused the value itself.
            raise BadArgument(f"the kernel refused {w.value!r} for {w.filename}: {exc.strerror}",
                              _REFUSAL_HINTS.get(w.filename, "check the value")) from None

    # -- processes -----------------------------------------------------------

    def add_pid(self, pid: int) -> None:
        """Move process `pid` (and later its children) into this cgroup.

        Call it while the process is still waiting to exec (the runtime's
        sync pipe), so not one instruction of the workload runs unlimited."""
        try:
            write(self.path / "cgroup.procs", str(pid),
                   f"Move process {pid} into the container's cgroup", self.explain)
        except OSError as exc:
            raise RunFailed(f"cannot move process {pid} into {self.path}: {exc.strerror}",
                            "the process may have exited already") from None

    def pids(self) -> list[int]:
        return _read_pids(self.path)

    def populated(self) -> bool:
        """True while any process is in this cgroup (cgroup.events)."""
        for line in _text(self.path / "cgroup.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "populated":
                return value.strip() == "1"
        return bool(self.pids())

    # -- accounting ----------------------------------------------------------

    def stats(self) -> Sample:
        return read_sample(self.path)

    def memory_max(self) -> int | None:
        """memory.max in bytes; None when unlimited or not readable."""
        return self.stats().memory_max

    def memory_events(self) -> dict[str, int]:
        return self.stats().memory_events

    def oom_report(self) -> str | None:
        """The sentence to print when the OOM killer ended the container, else None."""
        if not self.oom_killed():
            return None
        limit = self.memory_max()
        what = f"its memory limit of {describe_bytes(limit)}" if limit else "its memory limit"
        return f"the kernel's OOM killer ended the container: it reached {what} (memory.max)"

    def oom_killed(self) -> bool:
        """Has the OOM killer killed a process of this container?

        memory.events' oom_kill counts kills in this cgroup and below; a fresh
        cgroup starts at 0, so any kill since creation shows."""
        return self.memory_events().get("oom_kill", 0) > 0

    # -- the end ---------------------------------------------------------------

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in the cgroup."""
        kill_file = self.path / "cgroup.kill"
        if kill_file.exists():
            write(kill_file, "1", "Kill every process of the container at once", self.explain)
            return
        self._kill_each(timeout)

    def _kill_each(self, timeout: float) -> None:
        """Kernels before 5.14: freeze, SIGKILL each listed pid, repeat until empty.

        Freezing first stops a fork bomb from making new pids faster than we
        kill them; a frozen task still dies of SIGKILL in cgroup v2."""
        freeze = self.path / "cgroup.freeze"
        frozen = freeze.exists()
        if frozen:
            write(freeze, "1", "Freeze the container so nothing new can fork", self.explain)
        deadline = time.monotonic() + timeout
        kernel = sc.Kernel(sc.CallbackNarrator(self.explain))   # narrates as this cgroup does
        try:
            while pids := self.pids():
                for pid in pids:
                    try:
                        kernel.kill(pid, signal.SIGKILL, f"Kill process {pid} of the container")
                    except ProcessLookupError:
                        pass
                if time.monotonic() > deadline:
                    raise RunFailed(f"processes {pids} in {self.path} survived SIGKILL",
                                    "they may be stuck in the kernel (D state); try again later")
                time.sleep(0.05)
        finally:
            if frozen and self.path.exists():
                write(freeze, "0", "Thaw the (now empty) cgroup", self.explain)

    def destroy(self, timeout: float = 10.0) -> None:
        """Kill everything in the cgroup, wait until it is empty, remove it.

        Safe to call twice: a cgroup that is already gone is left alone."""
        if not self.path.is_dir():
            return
        if self.populated():
            self.kill(timeout)
        self._rmdir(timeout=timeout)

    def _rmdir(self, timeout: float = 10.0, quiet: bool = False) -> None:
        """rmdir, retrying while the kernel still counts exiting processes (EBUSY)."""
        if not quiet:
            self.explain("Remove the container's cgroup", f"rmdir {self.path}")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if quiet:
                    return
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise RunFailed(f"cannot remove cgroup {self.path}: {exc.strerror}",
                                    f"processes left: {self.pids() or 'none listed'}") from None
                time.sleep(0.05)


_REFUSAL_HINTS = {
    "cpuset.cpus": "name CPUs this machine has (see /sys/fs/cgroup/cpuset.cpus.effective)",
    "io.max": "io limits apply to whole disks, not partitions (lsblk shows both)",
    "cpu.max": "give --cpus from 0.01 up to the number of CPUs",
}


def preflight(limits: Limits | None, root: Path = DEFAULT_ROOT,
              proc: Path = Path("/proc")) -> set[str]:
    """Every check that can fail before anything exists; returns the controllers offered.

    `minict run` calls this before it creates the container record, so a
    host without usable cgroup v2 (or a CPU that is not there) refuses the
    run with one line and leaves nothing behind. (None: no limits.)"""
    if limits is None:
        return detect.require_controllers(root, set(), proc)
    offered = detect.require_controllers(root, limits.controllers(), proc)
    _check_cpuset(Path(root), limits)
    return offered


def _check_cpuset(root: Path, limits: Limits) -> None:
    """Refuse CPUs the machine does not have before anything is made."""
    if limits.cpuset_cpus is None:
        return
    effective = _text(root / "cpuset.cpus.effective").strip()
    if not effective:
        effective = f"0-{(os.cpu_count() or 1) - 1}"
    unknown = cpuset_members(limits.cpuset_cpus) - cpuset_members(effective)
    if unknown:
        raise BadArgument(f"--cpuset-cpus {limits.cpuset_cpus}: CPU {min(unknown)} is not available",
                          f"this machine offers CPUs {effective}")


# ---- what `minict run` calls, and the crash cleanup --------------------------------

def home_for_container(limits: Limits | None, root: Path = DEFAULT_ROOT,
                       explain: Explain | None = None,
                       proc: Path = Path("/proc")) -> Path | None:
    """Where a new container's cgroup goes: `root` (its cgroup is then
    <root>/minict/<id>), or None when none can be made and none is needed.

    With limits: `root`, or CgroupUnavailable naming the cause and the fix.
    Without limits (None or empty): `root` when cgroup v2 works here (so
    `minict stats` has numbers), else None, and --explain says why no
    cgroup is made. Reads only: the runtime makes it (oci/cgroup.py).
    """
    explain = explain or _silent
    if limits is not None and limits.is_empty():
        limits = None
    if limits is None:
        problem = detect.diagnose(root, set(), proc)  # is there a v2 tree at all?
        if problem:
            explain(f"No cgroup was made (no limits asked, and {problem[0]}): "
                    "the container stays in minict's own cgroup")
            return None
    preflight(limits, root, proc)
    return Path(root)


def container_path(root: Path, container_id: str) -> Path:
    """Where a container's cgroup is (whether or not it exists)."""
    return Path(root) / SUBTREE / container_id


def container_cgroups(root: Path = DEFAULT_ROOT) -> list[Path]:
    """Every container cgroup under <root>/minict."""
    subtree = Path(root) / SUBTREE
    if not subtree.is_dir():
        return []
    return sorted(p for p in subtree.iterdir() if p.is_dir() and valid_id(p.name))


def find_orphans(is_live: Callable[[str], bool], root: Path = DEFAULT_ROOT) -> list[Path]:
    """Container cgroups whose container is gone (is_live(container_id) is False).

    The runtime decides what "live" means (its state record exists and its
    monitor process runs); this only walks the tree. An orphan may still
    hold processes: a SIGKILLed minict leaves its workload running."""
    return [p for p in container_cgroups(root) if not is_live(p.name)]


def remove_orphans(is_live: Callable[[str], bool], root: Path = DEFAULT_ROOT,
                   explain: Explain | None = None) -> list[str]:
    """Kill and remove every orphan cgroup; return the container ids cleaned."""
    cleaned = []
    for path in find_orphans(is_live, root):
        Cgroup(path, explain).destroy()
        cleaned.append(path.name)
    return cleaned
