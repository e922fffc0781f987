"""The container lifecycle: run, start, stop, kill, rm, logs, inspect, ps.

Each function is one command's library call (the CLI only parses and
prints). Who may do what, and why it is safe (state.py has the details):

- the owner (foreground `run`, or the supervisor) holds the container's
  owner lock for the container's whole life and records its exit status;
- `stop`/`kill` signal the container's PID 1 through a pidfd, after
  checking it is still the same process (pid + start time);
- `rm` takes the owner lock first: it can only remove what nobody owns.
"""

import os
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from .. import syscalls as sc
from ..errors import ContainerNotRunning, ContainerRunning, RunFailed
from . import bundle, device_access, etcfiles, networking, state, syscall_filter, tty
from .command import exit_code_of, forward_signal
from .process import ContainerProcess
from .launch import kill_and_reap, launch
from .resources import check_limits, host_config, release
from .supervisor import finish, start_detached

OWNER_FORWARDED = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                   signal.SIGUSR1, signal.SIGUSR2]


# ---- run and start ----------------------------------------------------------------------

def run(config, engine, container_config: dict, kernel: sc.Kernel) -> tuple[int | None, str]:
    """Create and start a container (its EngineRecord and config.json:
    create.container_from). Foreground: returns (exit code, id) when it
    ends; detached (-d): returns (None, id) once it runs."""
    layout = state.Layout.of(config)
    files = etcfiles.files_for(engine, container_config["hostname"])
    record, lock = state.create_record(layout, engine, container_config, files)
    kernel.explain(f"Created container {record.name} ({record.id[:12]}) in {record.dir}")
    if engine.detach:
        return None, start_detached(kernel, record, lock, new=True)
    try:
        started = launch(kernel, record, close_early=(lock.fd,))
    except BaseException:
        # It never ran: leave nothing behind (docker would keep a "Created"
        # container; a failed `minict run` is simply undone).
        with state.names_lock(layout):
            state.remove_record(record)
        lock.release()
        raise
    try:
        status = wait_in_foreground(kernel, started, engine.interactive)
    except BaseException as exc:
        # Lost track of it (an error while relaying): do not leave it running
        # unattended, and say what happened in its record.
        kill_and_reap(kernel, started.pid)
        finish(record, None, lock, error=f"minict stopped waiting for it: {exc!r}",
               kernel=kernel)
        raise
    code = exit_code_of(status)
    oom = finish(record, code, lock, kernel=kernel)
    if oom:
        # Exit status 137 alone could be any SIGKILL: say which one it was.
        print(f"minict: {oom}", file=sys.stderr, flush=True)
    return code, record.id


def wait_in_foreground(kernel, started, interactive: bool) -> int:
    """Forward signals (and with -t relay the terminal, -i: our stdin too)
    until PID 1 exits."""
    pid = started.pid
    previous = {sig: signal.signal(sig, lambda number, _f: forward_signal(kernel, pid, number))
                for sig in OWNER_FORWARDED}
    try:
        if started.master is not None:
            stdin_fd = 0 if interactive else None
            with tty.RawTerminal(0) if interactive else nullcontext():
                return tty.relay(kernel, started.master, pid, stdin_fd, 1)   # (relay closes the master)
        _, status = os.waitpid(pid, 0)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start(config, ref: str, kernel: sc.Kernel) -> state.Record:
    """Start a stopped container again, detached (docker start)."""
    layout = state.Layout.of(config)
    record = state.find(layout, ref)
    lock = state.Lock.acquire(record.lock_file, blocking=False)
    if lock is None or state.status(record).running:
        if lock:
            lock.release()
        raise ContainerRunning(f"container {record.name} is already running",
                               f"stop it first: minict stop {record.name}")
    try:
        check_limits(record.engine.resource_limits())   # CgroupUnavailable here, not as a failed start
    except BaseException:
        lock.release()
        raise
    # Files the container directory may have lost or that depend on the host now.
    for name, data in etcfiles.files_for(record.engine, record.config["hostname"]).items():
        (record.dir / name).write_bytes(data)
    start_detached(kernel, record, lock, new=False)
    return record


# ---- signals: stop and kill ---------------------------------------------------------------------

def stop(config, ref: str, timeout: float = 10, kernel: sc.Kernel | None = None) -> state.Record:
    """The stop signal (SIGTERM unless the image says otherwise), then
    SIGKILL after `timeout` seconds; returns once the exit is recorded."""
    kernel = kernel or sc.Kernel()
    layout = state.Layout.of(config)
    record = state.find(layout, ref)
    process = ContainerProcess.open(kernel, state.read_json(record.runtime_file) or {})
    if process is None:
        return record   # already stopped: nothing to do (docker says the same)
    with process:
        sig = record.engine.stop_signal
        process.signal(sig, f"Send {signal.Signals(sig).name} to the container's PID 1 (host PID "
                            f"{process.pid}) and give it {timeout:g}s")
        if not process.exited(timeout):
            process.signal(signal.SIGKILL, "It did not stop in time: kill it")
            process.exited(10)
    _wait_for_owner(record)
    return record


def kill(config, ref: str, sig: int = signal.SIGKILL, kernel: sc.Kernel | None = None) -> state.Record:
    kernel = kernel or sc.Kernel()
    layout = state.Layout.of(config)
    record = state.find(layout, ref)
    process = None
    if state.status(record).running:   # not while it starts: docker's rule too
        process = ContainerProcess.open(kernel, state.read_json(record.runtime_file) or {})
    if process is None:
        raise ContainerNotRunning(f"container {record.name} is not running", "see minict ps -a")
    with process:
        process.signal(sig, f"Send {signal.Signals(sig).name} to the container's PID 1")
    return record


def _wait_for_owner(record: state.Record, timeout: float = 15) -> None:
    """Wait until the owner has recorded the exit and let go of the lock."""
    lock = state.Lock.acquire(record.lock_file, timeout=timeout)
    if lock is None:
        raise RunFailed(f"container {record.name} stopped, but its minict process did not finish",
                        "run minict cleanup")
    lock.release()


# ---- rm -------------------------------------------------------------------------------------------

def remove(config, ref: str, force: bool = False) -> state.Record:
    layout = state.Layout.of(config)
    record = state.find(layout, ref)
    if state.status(record).pid is not None:   # running, or still starting
        if not force:
            raise ContainerRunning(f"container {record.name} is running",
                                   f"stop it first with minict stop {record.name}, or use rm -f")
        process = ContainerProcess.open(sc.Kernel(), state.read_json(record.runtime_file) or {})
        if process is not None:
            with process:
                process.signal(signal.SIGKILL, "rm -f: kill the container's PID 1")
                process.exited(10)
    lock = state.Lock.acquire(record.lock_file, timeout=15)
    if lock is None:
        raise ContainerRunning(f"container {record.name} is still being looked after by "
                               f"another minict process", "try again, or run minict cleanup")
    try:
        # Its owner removed the cgroup when it ended, unless the owner was
        # killed: then this is the last chance before the record is gone.
        release(record.id)
        networking.detach(sc.Kernel(), record)
        with state.names_lock(layout):
            if record.dir.exists():    # a --rm owner may have removed it meanwhile
                state.remove_record(record)
    finally:
        lock.release()
    return record


# ---- logs, inspect, ps ----------------------------------------------------------------------------

def logs(config, ref: str, out_fd: int = 1, follow: bool = False) -> None:
    """Copy the container's log to out_fd; with follow, keep going until it stops."""
    layout = state.Layout.of(config)
    record = state.find(layout, ref)
    try:
        fd = os.open(record.log_file, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return   # ran in the foreground: its output went to the terminal
    try:
        while True:
            data = os.read(fd, 65536)
            if data:
                os.write(out_fd, data)
                continue
            if not follow or not state.status(record).running:
                # One last read: output written just before it stopped.
                while data := os.read(fd, 65536):
                    os.write(out_fd, data)
                return
            time.sleep(0.1)
    finally:
        os.close(fd)


def bundle_config(config, ref: str) -> dict:
    """The container as an OCI config.json (runtime/bundle.py): the one its
    last start ran, as written then (bundle.for_start); one never started
    shows the config.json it was made with."""
    record = state.find(state.Layout.of(config), ref)
    ran = state.read_json(record.bundle_config_file)
    return ran if ran is not None else record.config


def inspect(config, ref: str) -> dict:
    layout = state.Layout.of(config)
    record = state.find(layout, ref)
    st = state.status(record)
    engine, container = record.engine, record.config
    process = container["process"]
    argv = process["args"]
    asked = bundle.asked_mounts(container)
    return {
        "Id": record.id,
        "Name": record.name,
        "Created": record.created,
        "Image": engine.image_id,
        "ImageRef": engine.image_ref,
        "Path": argv[0],
        "Args": argv[1:],
        "State": {
            "Status": st.state, "Running": st.running, "Pid": st.pid or 0,
            "ExitCode": st.exit_code, "Error": st.error or "", "OOMKilled": st.oom_killed,
            "StartedAt": st.started_at, "FinishedAt": st.finished_at,
            "DeviceControl": device_access.describe(st.devices, record.id, st.running),
        },
        "Config": {
            "Hostname": container["hostname"], "User": engine.user, "Env": process["env"],
            "Cmd": argv, "WorkingDir": process["cwd"], "Tty": process["terminal"],
            "OpenStdin": engine.interactive, "StopSignal": signal.Signals(engine.stop_signal).name,
            "Labels": bundle.labels_of(container),
        },
        "HostConfig": {
            "AutoRemove": engine.auto_remove, "Privileged": engine.privileged,
            "ReadonlyRootfs": container["root"]["readonly"], "NetworkMode": engine.network,
            "Init": engine.init, "CapAdd": None,
            "Capabilities": process["capabilities"]["bounding"],
            "SecurityOpt": (None if engine.seccomp == syscall_filter.DEFAULT
                            else [f"seccomp={engine.seccomp}"]),
            "Tmpfs": {m["destination"]: ",".join(m["options"]) for m in asked
                      if m["type"] == "tmpfs"},
            "Devices": [{"PathInContainer": d.path, "CgroupPermissions": d.access,
                         "Type": d.type, "Major": d.major, "Minor": d.minor}
                        for d in engine.devices],
            "DeviceRules": [rule.text() for rule in device_access.rules_of(engine)],
            "PortBindings": networking.port_bindings(engine.ports),
            "IpcMode": engine.ipc, "PidMode": "host" if engine.pid_mode == "host" else "",
            "ShmSize": engine.shm_size, "ExtraHosts": engine.extra_hosts or None,
            "Dns": engine.dns, "Ulimits": bundle.ulimits_shown(process) or None,
            **host_config(engine.limits),
        },
        "NetworkSettings": networking.describe(st.network),
        "Mounts": [{"Type": mount_type(config, m["source"]), "Source": m["source"],
                    "Destination": m["destination"], "RW": "ro" not in m["options"]}
                   for m in asked if m["type"] == "bind"],
        "GraphDriver": {"Name": "overlay", "Data": {
            "LowerDir": ":".join(reversed(engine.layer_dirs)),
            "UpperDir": str(record.dir / "upper"), "WorkDir": str(record.dir / "work"),
            "MergedDir": str(record.dir / "merged")}},
        "LogPath": str(record.log_file) if record.log_file.exists() else "",
    }


def mount_type(config, source: str) -> str:
    """docker's Mounts Type: a named volume lives in ROOT/volumes."""
    return "volume" if Path(source).is_relative_to(config.root / "volumes") else "bind"


def listing(config, all_containers: bool = False) -> list[dict]:
    """Rows for `minict ps`: running containers, or every one with -a."""
    layout = state.Layout.of(config)
    rows = []
    for record in state.list_records(layout):
        st = state.status(record)
        if not all_containers and not st.running:
            continue
        rows.append({
            "ID": record.id[:12], "Image": record.engine.image_ref,
            "Command": " ".join(record.config["process"]["args"]), "CreatedAt": record.created,
            "State": st.state, "Status": describe(st), "Names": record.name,
            "ExitCode": st.exit_code, "Pid": st.pid,
        })
    return rows


def describe(st: state.Status) -> str:
    """docker ps's STATUS column: Up 3 seconds / Exited (0) 2 minutes ago / Created."""
    if st.state == "running":
        return f"Up {_ago(st.started_at)}"
    if st.state == "exited":
        code = "?" if st.exit_code is None else st.exit_code
        text = f"Exited ({code}) {_ago(st.finished_at)} ago" if st.finished_at else f"Exited ({code})"
        return text + (f": {st.error}" if st.error else "")
    return "Created"


def _ago(stamp: str | None) -> str:
    if not stamp:
        return "a while"
    seconds = int(time.time() - state.parse_time(stamp))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return "Less than a second" if seconds < 1 else f"{seconds} second{'s' if seconds != 1 else ''}"
