"""After create: start, kill, delete, ps and list, as runc's commands of
the same names.

These are the steps an engine takes once per container besides create
(podman: create, start, delete), so this module imports no more than they
need: no init, mounts, seccomp or cgroup limits (oci/create.py has those;
oci/cgroup.py has pause, resume and update). The hooks start and delete
run are the ones create checked and kept in state.json.

A created or running container's processes are found the most precise way
there is: its cgroup's cgroup.procs when it has a cgroup, else every
process in its PID namespace (the same /proc/PID/ns/pid link as its init).
"""

import os
import signal
import time
from pathlib import Path

from .. import syscalls as sc
from ..errors import ContainerRunning, ContainerStateError, RunFailed
from . import hooks, state

START_TIMEOUT = 60   # seconds start waits for init to open exec.fifo
STOP_WAIT = 10   # seconds delete --force waits for the processes to go


def processes(record: state.Record) -> list[int]:
    """Host pids of the container's processes, init first."""
    if record.cgroup and os.path.isdir(record.cgroup):
        with open(os.path.join(record.cgroup, "cgroup.procs")) as f:
            found = [int(line) for line in f if line.strip()]
    else:
        try:
            namespace = os.readlink(f"/proc/{record.pid}/ns/pid")
        except OSError:
            return []
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                        found.append(int(entry))
                except OSError:
                    continue
    return sorted(found, key=lambda p: (p != record.pid, p))


def start(kernel: sc.Kernel, root: Path, container_id: str) -> state.Record:
    """Release a created container into its command."""
    record = state.load(root, container_id)
    current = state.status(root, record)
    if current != "created":
        raise ContainerStateError(f"container {container_id} is {current}, not created",
                                  "start takes a container that create made")
    fifo = state.fifo_path(root, container_id)
    kernel.explain(f"Open {fifo} for reading: the container's init, blocked opening it for "
                   f"writing, goes on to execve", f"open(\"{fifo}\", O_RDONLY|O_NONBLOCK)")
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        # Init writes "0", then keeps its end open (close-on-exec) through the
        # startContainer hooks: end-of-file means the command was exec'd (or
        # init is gone), and only then may poststart run (as runc's start).
        deadline, off = time.monotonic() + START_TIMEOUT, False
        while True:
            try:
                data = os.read(fd, 1)
                if data:
                    off = True
                elif off:
                    break
            except BlockingIOError:
                pass
            if not off and (not state.alive(record) or time.monotonic() > deadline):
                raise RunFailed(f"container {container_id} did not start",
                                "its init is gone: minict-oci delete it")
            time.sleep(0.001)
    finally:
        os.close(fd)
        fifo.unlink(missing_ok=True)
    hooks.run(record.hooks, "poststart", state.oci_state(root, record), warn_only=True)
    return record


def kill(kernel: sc.Kernel, root: Path, container_id: str, sig: int, every: bool = False) -> None:
    record = state.load(root, container_id)
    current = state.status(root, record)
    if current == "stopped":
        raise ContainerStateError(f"container {container_id} is not running",
                                  "kill takes a created or running container")
    targets = processes(record) if every else [record.pid]
    for pid in targets:
        try:
            kernel.kill(pid, sig, f"Send {sc.signal_name(sig)} to process {pid} of {container_id}")
        except ProcessLookupError:
            pass


def delete(kernel: sc.Kernel, root: Path, container_id: str, force: bool = False) -> None:
    record = state.load(root, container_id)
    current = state.status(root, record)
    if current not in ("stopped", "created") and not force:
        raise ContainerRunning(f"container {container_id} is {current}",
                               f"stop it first (minict-oci kill {container_id} KILL), or "
                               f"delete --force")
    if current != "stopped":
        # A created container was never started: like runc, delete kills it.
        for pid in processes(record):
            try:
                kernel.kill(pid, signal.SIGKILL, f"delete: kill process {pid}")
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_WAIT
        while state.alive(record) and time.monotonic() < deadline:
            time.sleep(0.01)
    if record.cgroup and os.path.isdir(record.cgroup):
        from ..cgroups.hierarchy import Cgroup   # only a container with a cgroup needs it
        Cgroup(Path(record.cgroup), kernel.explain).destroy()
    final = state.oci_state(root, record) | {"status": "stopped"}
    state.remove(root, container_id)
    hooks.run(record.hooks, "poststop", final, warn_only=True)


def ps_pids(root: Path, container_id: str) -> list[int]:
    return processes(state.load(root, container_id))


def ps_table(root: Path, container_id: str, ps_args: list[str]) -> str:
    """What runc's ps prints: the host's `ps` (with `ps_args`, else -ef),
    its header and the lines of the container's processes."""
    import subprocess   # here: only ps runs a program
    pids = {str(pid) for pid in ps_pids(root, container_id)}
    command = ["ps", *(ps_args or ["-ef"])]
    try:
        shown = subprocess.run(command, capture_output=True, text=True,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RunFailed(f"{' '.join(command)} failed: "
                        f"{getattr(exc, 'stderr', None) or exc}".strip(),
                        "give ps options that print a PID column") from None
    header = shown[0].split() if shown else []
    if "PID" not in header:
        raise RunFailed("ps printed no PID column", "give ps options that print one (-o pid,...)")
    column = header.index("PID")
    kept = [shown[0]]
    for line in shown[1:]:
        fields = line.split()
        if len(fields) > column and fields[column] in pids:
            kept.append(line)
    return "\n".join(kept)


def list_rows(root: Path) -> list[dict]:
    rows = []
    for container_id in state.all_ids(root):
        try:
            record = state.load(root, container_id)
        except Exception:   # noqa: BLE001 - a damaged one is left out of the list
            continue
        rows.append(state.oci_state(root, record))
    return rows
