"""`--network container:NAME` and `--ipc container:NAME`: another container's namespace.

A running container's namespaces are the files /proc/PID/ns/net,
/proc/PID/ns/ipc... of its first process. The owner opens the file
(Kernel.open_namespace) before it forks (the container must be running, or
the error is one clear line with nothing made yet); then setns(2) on that fd
puts a process into the namespace (launch.py for the network, child.py for IPC).
"""

import os

from ..errors import BadArgument, ContainerNotRunning
from . import state
from .process import is_alive


def running_pid(record, flag: str) -> tuple[int, object]:
    """The host pid of the container that `flag`'s container:NAME names, and its record."""
    name = flag.split("container:", 1)[1]
    target = state.find(record.layout, name)
    runtime = state.read_json(target.runtime_file) or {}
    if not is_alive(runtime.get("pid"), runtime.get("pid_start")):
        raise ContainerNotRunning(f"{flag}: container {target.name} is not running",
                                  f"start it first: minict start {target.name}")
    return runtime["pid"], target


class JoinedIpc:
    """--ipc container:NAME: that container's IPC namespace and its mount
    namespace (open fds), so that the new container can join the one and
    take its /dev/shm from the other (child.take_shared_shm)."""

    def __init__(self, kernel, record):
        flag = f"--ipc {record.engine.ipc}"
        pid, target = running_pid(record, flag)
        # docker's rule: only a container started with --ipc shareable (or
        # one on the host's IPC) lends its IPC to others.
        if target.engine.ipc not in ("shareable", "host"):
            raise BadArgument(f"{flag}: container {target.name} keeps its IPC private",
                              "start it with --ipc shareable to share it")
        self.name = target.name
        self.ipc_fd = kernel.open_namespace(pid, "ipc", f"{flag}: hold {target.name}'s IPC namespace")
        self.mnt_fd = kernel.open_namespace(pid, "mnt", f"{flag}: and its mount namespace, where its "
                                                        "/dev/shm is")

    def close(self) -> None:
        os.close(self.ipc_fd)
        os.close(self.mnt_fd)


def joined_ipc(kernel, record) -> JoinedIpc | None:
    return JoinedIpc(kernel, record) if record.engine.ipc.startswith("container:") else None
