"""`minict-oci spec` and `minict-oci features`: what a bundle starts from,
and what this runtime can do, in the runtime spec's own formats.

`spec` writes the same starting config.json as `runc spec`: a shell on a
terminal, in new PID, network, IPC, UTS and mount namespaces, with the
kernel filesystems mounted, three capabilities, and the masked and
read-only paths. `--rootless` adds a user namespace mapping root in the
container to the caller, as `runc spec --rootless` does.

`features` is runtime-spec features.md: a JSON document engines read to
learn which hooks, mount options, namespaces and seccomp actions a runtime
knows, instead of guessing from its version.
"""

import os

from ..runtime.capabilities import NAMES
from ..runtime.mounts import MASKED_PATHS, READONLY_PATHS
from . import config as config_file, mounts, seccomp
from .state import OCI_VERSION

CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec(rootless: bool = False) -> dict:
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {name: list(CAPS) for name in ("bounding", "effective", "permitted",
                                                            "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "minict",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if rootless:
        spec["linux"]["namespaces"].append({"type": "user"})
        spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": os.getuid(), "size": 1}]
        spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": os.getgid(), "size": 1}]
        del spec["linux"]["resources"]
        spec["mounts"][2]["options"].remove("gid=5")   # no group 5 in a one-id namespace
        spec["mounts"][5] = {"destination": "/sys", "type": "none", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        del spec["mounts"][6]
    return spec


def features() -> dict:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(config_file.HOOK_NAMES),
        "mountOptions": sorted(set(mounts.FLAGS) | set(mounts.RECURSIVE) | set(mounts.PROPAGATION)
                               | mounts.RUNTIME_OPTIONS),
        "linux": {
            "namespaces": list(config_file.NAMESPACE_TYPES),
            "capabilities": list(NAMES),
            "cgroup": {"v1": False, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": list(seccomp.ACTIONS),
                        "operators": list(seccomp.OPERATORS), "archs": list(seccomp.ARCHES),
                        "knownFlags": list(seccomp.KNOWN_FLAGS),
                        "supportedFlags": list(seccomp.KNOWN_FLAGS)},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"io.github.minicontainer.unsupported":
                        ", ".join(sorted(config_file.UNSUPPORTED))},
    }
