"""Which linux.sysctl keys a container may set (config.json's linux.sysctl).

A container's /proc/sys is the kernel's one /proc/sys. A key is the
container's own only where the kernel keeps it per namespace:
- net.*: per network namespace;
- the System V IPC limits (kernel.msg*, kernel.sem, kernel.shm*) and
  fs.mqueue.*: per IPC namespace;
- kernel.domainname: per UTS namespace (kernel.hostname too, but config.json
  has a field of its own for it, "hostname").

Any other key (kernel.core_pattern, vm.*, kernel.pid_max) is one value for
the whole machine: writing it "in the container" changes the host for every
process on it, so it is refused. So is a namespaced key when the container
shares that namespace with the host (none in linux.namespaces, or a path to
the one minict-oci itself is in). runc applies the same rule
(libcontainer/configs/validate); the runtime-tools validator checks the
namespace part.
"""

import os

from ..errors import BadConfig

IPC_KEYS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
            "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")
PROC_NAMES = {"network": "net", "ipc": "ipc", "uts": "uts"}   # /proc/PID/ns/NAME
KEPT_PER_NAMESPACE = ("net.*, fs.mqueue.*, kernel.domainname and the IPC limits "
                      "(kernel.msg*, kernel.sem, kernel.shm*)")


def namespace_of(key: str) -> str | None:
    """The namespace type that keeps KEY, or None if the kernel keeps one
    value for the whole machine. (runc also takes net/ipv4/ip_forward.)"""
    key = key.replace("/", ".")
    if key.startswith("net."):
        return "network"
    if key in IPC_KEYS or key.startswith("fs.mqueue."):
        return "ipc"
    if key == "kernel.domainname":
        return "uts"
    return None


def check(sysctl: dict, namespaces: list) -> None:
    """Raise BadConfig, naming the key, unless each key is kept by a
    namespace the container does not share with the host."""
    for key in sysctl:
        if key.replace("/", ".") == "kernel.hostname":
            raise BadConfig("linux.sysctl kernel.hostname: config.json's hostname field sets it",
                            'use "hostname" instead')
        kind = namespace_of(key)
        if kind is None:
            raise BadConfig(f"linux.sysctl {key} is one value for the whole machine: setting "
                            f"it would change the host", f"only {KEPT_PER_NAMESPACE} are the "
                            f"container's own")
        if not _own_namespace(kind, namespaces):
            raise BadConfig(f"linux.sysctl {key} needs a {kind} namespace the host does not "
                            f"share: without one it would change the host's",
                            f'add {{"type": "{kind}"}} to linux.namespaces')


def _own_namespace(kind: str, namespaces: list) -> bool:
    for namespace in namespaces:
        if namespace.get("type") != kind:
            continue
        if not namespace.get("path"):
            return True                    # a new one, made for the container
        joined = os.stat(namespace["path"])
        ours = os.stat(f"/proc/self/ns/{PROC_NAMES[kind]}")
        return (joined.st_dev, joined.st_ino) != (ours.st_dev, ours.st_ino)
    return False
