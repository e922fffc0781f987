"""`create`: a bundle becomes a process waiting for `start` (and `run`:
create, start, wait, delete).

runc splits starting a container in two so that an engine can do its own
work in between (podman and containerd plug in the network, read the pid,
set up logging): `create` leaves the container's first process fully set
up, but waiting on a named pipe, exec.fifo; `start` opens that pipe, which
releases it into execve.

create, from this side (init.py is the other):
1. read and check config.json (config.py): a bad config fails here, before
   anything exists;
2. the state directory ROOT/ID (mkdir: a second create of one ID fails)
   and exec.fifo; the cgroup with its limits (cgroup.py);
3. fork init (fork_init, which minict run's owner uses too), born in its
   PID namespace (unshare(CLONE_NEWPID) or setns to the config's path only
   decides where the *next child* is born, so the parent steps in, forks,
   and steps back), or cloned into a new user namespace; move it into the
   cgroup; say "go";
4. when init says "mounted": prestart and createRuntime hooks, then send
   it the state for its createContainer hooks;
5. when init says "ready": write state.json and --pid-file. Done: create
   exits, and init, waiting on exec.fifo, is the engine's to start.
If anything fails, init is killed and reaped, and the cgroup, the state
directory and the fifo go: nothing is left half made.

`start` (oci/lifecycle.py) is a separate, small step: it opens exec.fifo.
"""

import json
import os
import signal
import socket
from datetime import datetime, timezone
from pathlib import Path

from .. import syscalls as sc
from ..errors import ContainerExists, RunFailed, UnsupportedConfig
from ..runtime import capabilities
from ..runtime.command import error_from_child, exit_code_of, read_all
from ..idmap import clone_into_namespaces
from . import cgroup as cgroups, config as config_file, hooks, idmaps, init, lifecycle
from . import process, state

READY_TIMEOUT = 60   # seconds create waits for init to report (a hook may take long)


def create(kernel: sc.Kernel, root: Path, container_id: str, bundle: str, *, pid_file=None,
           console_socket=None, preserve_fds: int = 0) -> state.Record:
    bundle = os.path.realpath(bundle)
    config = config_file.load(Path(bundle))
    directory = state.directory(root, container_id)
    Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        raise ContainerExists(f"container {container_id} exists already",
                              f"delete it first: minict-oci delete {container_id}") from None
    record = state.Record(id=container_id, bundle=bundle,
                          annotations=config.get("annotations", {}),
                          hooks=config.get("hooks", {}),
                          rootfs=os.path.realpath(os.path.join(bundle, config["root"]["path"])),
                          created=datetime.now(timezone.utc).isoformat())
    cgroup, pid = None, 0
    try:
        fifo = state.fifo_path(root, container_id)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)   # any user the container runs as may open it to write
        cgroup = cgroups.prepare(kernel, config, container_id)
        record.cgroup = str(cgroup.path) if cgroup else None
        process.preload(config.get("linux", {}).get("seccomp"))
        hooks.preload(config.get("hooks", {}))
        channels = init.Channels()
        channels.console = init.console_for(bool(config["process"].get("terminal")),
                                            console_socket)
        channels.fifo = os.open(fifo, os.O_PATH | os.O_CLOEXEC)
        nodev = cgroup is None and cgroups.device_rules_of(config.get("linux", {})) is not None
        if nodev:
            _without_mknod(kernel, config["process"])
        pid = fork_init(kernel, config, lambda: init.main(kernel, config, bundle, channels,
                                                          nodev, preserve_fds))
        channels.parent_side()
        record.pid, record.pid_start = pid, state.start_time(pid)
        if cgroup is not None:
            cgroup.add_pid(pid)
        os.write(channels.go_write, b"g")
        os.close(channels.go_write)
        _follow_init(record, channels)
        state.save(root, record)
        if pid_file:
            state.write_pid_file(pid_file, pid)
        return record
    except BaseException:
        if pid > 0:
            _kill_and_reap(kernel, pid)
        if cgroup is not None:
            cgroup.destroy()
        state.remove(root, container_id)
        raise


def _without_mknod(kernel, process: dict) -> None:
    """No device controller enforces resources.devices here: the nodes the
    runtime makes in /dev are the only openable ones (every other mount is
    nodev, init.py). CAP_MKNOD would let the container make more in /dev,
    so it goes from every set (runtime/bundle.py for_start does the same
    for minict run)."""
    sets = process.get("capabilities", {})
    if any("CAP_MKNOD" in names for names in sets.values()):
        kernel.explain("No device controller here: CAP_MKNOD is taken away, so no device node "
                       "but the runtime's own can be made and opened")
        process["capabilities"] = capabilities.without("CAP_MKNOD", sets)


def fork_init(kernel, config, body) -> int:
    """Fork init (it runs `body`, which ends in execve or os._exit) into the
    PID namespace the config asks for, and its user namespace when it asks
    for one: then init is cloned into both. Returns init's pid. minict run
    forks its container's first process here too (runtime/launch.py)."""
    namespaces = config.get("linux", {}).get("namespaces", [])
    pid_ns = next((ns for ns in namespaces if ns["type"] == "pid"), None)
    if any(ns["type"] == "user" for ns in namespaces):
        return _clone_into_user_namespace(kernel, config, pid_ns, body)
    own, pid = None, -1
    try:
        if pid_ns is not None:
            own = kernel.open_namespace("self", "pid", "Hold our own PID namespace, to come back")
            _step_into_pid_namespace(kernel, pid_ns)
        pid = kernel.fork("Fork the container's first process, its init")
        if pid == 0:
            if own is not None:
                os.close(own)
            body()   # ends in execve or os._exit
    finally:
        if pid != 0 and own is not None:   # the parent, or a failure before the fork
            kernel.setns(own, sc.CLONE_NEWPID, "Back in our own PID namespace: our later "
                                               "children are born in it again",
                         what="open(\"/proc/self/ns/pid\")")
            os.close(own)
    return pid


def _step_into_pid_namespace(kernel, pid_ns: dict) -> None:
    """unshare(CLONE_NEWPID) and setns to a PID namespace move not this
    process but its next child: init is born in there."""
    if not pid_ns.get("path"):
        kernel.unshare(sc.CLONE_NEWPID, "A new PID namespace for the next child "
                                        "(it will be PID 1 there)")
        return
    fd = os.open(pid_ns["path"], os.O_RDONLY | os.O_CLOEXEC)
    try:
        kernel.setns(fd, sc.CLONE_NEWPID, f"The next child is born in {pid_ns['path']}",
                     what=pid_ns["path"])
    finally:
        os.close(fd)


def _clone_into_user_namespace(kernel, config, pid_ns, body) -> int:
    """A new user namespace: init is cloned into it (and a new PID namespace,
    unless the config joins one, which is refused: a PID namespace belongs
    to the user namespace it was made in; and a new network namespace, for
    the engine to plug before "go": init.born_at_fork), then its id maps are
    written while it waits for "go" (idmaps.py)."""
    if pid_ns is not None and pid_ns.get("path"):
        raise UnsupportedConfig("config.json: linux.namespaces: a new user namespace with a "
                                "PID namespace joined by path is not supported by minict-oci",
                                "give the pid namespace no path")
    born = init.born_at_fork(config["linux"]["namespaces"])   # "user" among them
    flags = 0
    for kind in born:
        flags |= init.NEW[kind]
    made = [name for kind, name in (("pid", "PID"), ("network", "network")) if kind in born]
    pid = clone_into_namespaces(kernel, flags, "Clone init into a new user namespace"
                                + "".join(f" and a new {kind} namespace" for kind in made))
    if pid == 0:
        body()   # ends in execve or os._exit
    try:
        idmaps.write(kernel, pid, config["linux"])
    except BaseException:
        _kill_and_reap(kernel, pid)
        raise
    return pid


def _follow_init(record: state.Record, ch: init.Channels) -> None:
    """Steps 4 and 5: answer init until it is ready, or report its failure."""
    ch.parent_sync.settimeout(READY_TIMEOUT)
    try:
        said = ch.parent_sync.recv(1)
        if said == b"m":
            creating = _state_of(record, "creating")
            hooks.run(record.hooks, "prestart", creating)
            hooks.run(record.hooks, "createRuntime", creating)
            ch.parent_sync.sendall(json.dumps(creating).encode() + b"\n")
            said = ch.parent_sync.recv(1)
    except socket.timeout:
        raise RunFailed(f"the container's init did not get ready within {READY_TIMEOUT} s",
                        "a hook or a mount may hang") from None
    finally:
        ch.parent_sync.close()
    failure = read_all(ch.error_read) if said != b"r" else b""
    os.close(ch.error_read)
    if said != b"r":
        raise error_from_child(failure) if failure else RunFailed(
            "the container's init ended before it was ready", "run with --debug to see why")


def _state_of(record: state.Record, status: str) -> dict:
    return {"ociVersion": state.OCI_VERSION, "id": record.id, "status": status,
            "pid": record.pid, "bundle": record.bundle, "rootfs": record.rootfs,
            "created": record.created, "annotations": record.annotations}


def _kill_and_reap(kernel, pid: int) -> None:
    try:
        kernel.kill(pid, signal.SIGKILL, "Create failed: the container's init goes")
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def run(kernel: sc.Kernel, root: Path, container_id: str, bundle: str, *, detach=False,
        pid_file=None, console_socket=None, preserve_fds: int = 0) -> int:
    """create + start; without --detach, wait for the command, delete the
    container and return its exit code (128+N if signal N ended it)."""
    record = create(kernel, root, container_id, bundle, pid_file=pid_file,
                    console_socket=console_socket, preserve_fds=preserve_fds)
    try:
        lifecycle.start(kernel, root, container_id)
    except BaseException:
        lifecycle.delete(kernel, root, container_id, force=True)
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
    lifecycle.delete(kernel, root, container_id, force=True)
    return exit_code_of(status)


def _forward(kernel, pid: int, number: int) -> None:
    try:
        kernel.kill(pid, number, f"Forward {sc.signal_name(number)} to the container")
    except ProcessLookupError:
        pass
