"""After start: kill, delete, run (create + start + wait), ps, pause,
resume and update, as runc's commands of the same names.

A created or running container's processes are found the most precise way
there is: its cgroup's cgroup.procs when it has a cgroup, else every
process in its PID namespace (the same /proc/PID/ns/pid link as its init).
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from .. import syscalls as sc
from ..errors import BadArgument, CgroupUnavailable, ContainerRunning, ContainerStateError
from ..runtime.command import exit_code_of
from . import cgroup as cgroups, config as config_file, create as creation, hooks, state

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


def kill(kernel: sc.Kernel, root: Path, container_id: str, sig: int, every: bool = False) -> None:
    record = state.load(root, container_id)
    current = state.status(root, record)
    if current == "stopped":
        raise ContainerStateError(f"container {container_id} is not running",
                                  "kill takes a created or running container")
    targets = processes(record) if every else [record.pid]
    for pid in targets:
        try:
            kernel.kill(pid, sig, f"Send {signal.Signals(sig).name} to process {pid} of "
                                  f"{container_id}")
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
        cgroups.Cgroup(Path(record.cgroup), kernel.explain).destroy()
    final = state.oci_state(root, record) | {"status": "stopped"}
    state.remove(root, container_id)
    try:
        config = config_file.load(Path(record.bundle))
    except Exception:   # noqa: BLE001 - the bundle may be gone already: no hooks to run
        return
    hooks.run(config, "poststop", final, warn_only=True)


def run(kernel: sc.Kernel, root: Path, container_id: str, bundle: str, *, detach=False,
        pid_file=None, console_socket=None, preserve_fds: int = 0) -> int:
    """create + start; without --detach, wait for the command, delete the
    container and return its exit code (128+N if signal N ended it)."""
    record = creation.create(kernel, root, container_id, bundle, pid_file=pid_file,
                             console_socket=console_socket, preserve_fds=preserve_fds)
    try:
        creation.start(kernel, root, container_id)
    except BaseException:
        delete(kernel, root, container_id, force=True)
        raise
    if detach:
        return 0
    forward = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
               signal.SIGUSR2, signal.SIGWINCH)
    previous = {sig: signal.signal(sig, lambda n, _f: _forward(kernel, record.pid, n))
                for sig in forward}
    try:
        while True:
            try:
                _, status = os.waitpid(record.pid, 0)
                break
            except InterruptedError:
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    delete(kernel, root, container_id, force=True)
    return exit_code_of(status)


def _forward(kernel, pid: int, number: int) -> None:
    try:
        kernel.kill(pid, number, f"Forward {signal.Signals(number).name} to the container")
    except ProcessLookupError:
        pass


def ps_rows(root: Path, container_id: str) -> list[tuple[int, str]]:
    record = state.load(root, container_id)
    rows = []
    for pid in processes(record):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rows.append((pid, command))
    return rows


def freeze(kernel: sc.Kernel, root: Path, container_id: str, frozen: bool) -> None:
    """pause / resume: the cgroup v2 freezer (cgroup.freeze)."""
    record = state.load(root, container_id)
    if not record.cgroup:
        raise CgroupUnavailable(f"container {container_id} has no cgroup to freeze",
                                "pause and resume need a cgroup v2 host (the VM: vagrant up)")
    current = state.status(root, record)
    if current not in ("running", "paused"):
        raise ContainerStateError(f"container {container_id} is {current}",
                                  "pause and resume take a running container")
    path = Path(record.cgroup) / "cgroup.freeze"
    kernel.explain(f"{'Freeze' if frozen else 'Thaw'} every process of the cgroup",
                   f"write {path} \"{int(frozen)}\"")
    path.write_text("1" if frozen else "0")
    for _ in range(1000):
        if state.status(root, record) == ("paused" if frozen else "running"):
            return
        time.sleep(0.001)


def update(kernel: sc.Kernel, root: Path, container_id: str, resources_text: str) -> None:
    """update --resources FILE: new linux.resources limits for a running container."""
    record = state.load(root, container_id)
    try:
        resources = json.loads(resources_text)
    except ValueError as exc:
        raise BadArgument(f"--resources is not JSON: {exc}",
                          "give linux.resources as JSON, e.g. {\"pids\": {\"limit\": 10}}") \
            from None
    config_file.check_resources(resources)
    limits = cgroups.limits_of(resources)
    if not record.cgroup:
        raise CgroupUnavailable(f"container {container_id} has no cgroup to update",
                                "update needs a cgroup v2 host (the VM: vagrant up)")
    if limits is not None:
        cgroups.Cgroup(Path(record.cgroup), kernel.explain).apply(limits)


def list_rows(root: Path) -> list[dict]:
    rows = []
    for container_id in state.all_ids(root):
        try:
            record = state.load(root, container_id)
        except Exception:   # noqa: BLE001 - a damaged one is left out of the list
            continue
        rows.append(state.oci_state(root, record))
    return rows


def print_json(value) -> None:
    json.dump(value, sys.stdout)
    sys.stdout.write("\n")
