"""config.json, read whole and checked before anything is made.

The OCI runtime spec (config.md, config-linux.md) is the contract between
an engine (podman, containerd, `minict run`) and a runtime (runc,
minict-oci): the engine writes a bundle, a directory holding `config.json`
and the root filesystem; the runtime turns it into a process. This module
is the runtime's reading of that file: every field is checked for its
type and its rules here, so that create never starts on a config it would
have to give up half-way (and leave mounts, cgroups or processes behind).

Two kinds of "no", each one line naming the field:
- BadConfig: the file breaks the spec (a string where a list belongs, a
  relative path where an absolute one is required, an unknown namespace
  type, a hook whose program does not exist);
- UnsupportedConfig: the field is valid, but minict-oci does not do it
  (AppArmor, SELinux labels, Intel RDT...). It refuses rather than ignore:
  a container started without the confinement its engine asked for is
  worse than one that does not start.
A field that no version of the spec names is a warning, not a "no": the
spec says runtimes MUST ignore unknown properties (config.md,
"Extensibility").

The result is plain dictionaries, checked: the spec's own names are the
clearest ones a student can look up.
"""

import json
import os
import sys
from pathlib import Path

from ..errors import BadConfig, UnsupportedConfig
from ..runtime.capabilities import NUMBERS as CAPABILITY_NUMBERS
from . import fields
from .resources import check as check_resources
from .seccomp import check as check_seccomp
from .sysctl import check as check_sysctl

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup")
HOOK_NAMES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")
RLIMIT_NAMES = ("RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
                "RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE",
                "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
                "RLIMIT_SIGPENDING", "RLIMIT_STACK")
CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")
PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable",
                "runbindable")

# Fields minict-oci refuses when they ask for something (an empty value is
# allowed: engines often write "" or {}). The reason is said in the error.
UNSUPPORTED = {
    "process.apparmorProfile": "AppArmor is not supported",
    "process.selinuxLabel": "SELinux labels are not supported",
    "process.commandLine": "commandLine is for Windows",
    "process.ioPriority": "I/O priorities are not supported",
    "process.scheduler": "scheduling policies are not supported",
    "process.execCPUAffinity": "CPU affinity at exec is not supported",
    "domainname": "the NIS domain name is not supported",
    "linux.mountLabel": "SELinux labels are not supported",
    "linux.intelRdt": "Intel RDT is not supported",
    "linux.timeOffsets": "time namespaces are not supported",
    "linux.resources.hugepageLimits": "hugepage limits are not supported",
    "linux.resources.network": "network classes and priorities are not supported",
    "linux.resources.rdma": "RDMA limits are not supported",
    "solaris": "Solaris containers are not supported",
    "windows": "Windows containers are not supported",
    "vm": "virtual-machine containers are not supported",
    "zos": "z/OS containers are not supported",
}

# Mount options (runtime spec 1.1) minict-oci does not do: refused, where a
# filesystem's data string would hide them (oci/mounts.py does the others).
UNSUPPORTED_MOUNT_OPTIONS = {
    **dict.fromkeys(("idmap", "ridmap"), "id-mapped mounts are not supported"),
    **dict.fromkeys(("ratime", "rnoatime", "rrelatime", "rnorelatime", "rstrictatime",
                     "rnostrictatime", "rdiratime", "rnodiratime"),
                    "recursive atime options are not supported (atime options are)")}

# What minict-oci reads, for `features` (and the checks below).
KNOWN_TOP = {"ociVersion", "root", "process", "hostname", "mounts", "hooks", "annotations",
             "linux", "domainname", "solaris", "windows", "vm", "zos"}
KNOWN_LINUX = {"namespaces", "uidMappings", "gidMappings", "devices", "cgroupsPath", "resources",
               "maskedPaths", "readonlyPaths", "rootfsPropagation", "seccomp", "sysctl",
               "personality", "mountLabel", "intelRdt", "timeOffsets"}


def load(bundle: Path) -> dict:
    """The bundle's config.json, checked (BadConfig / UnsupportedConfig)."""
    path = Path(bundle) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadConfig(f"{path} does not exist",
                        "give a bundle directory holding config.json (minict-oci spec makes one)") \
            from None
    except (OSError, ValueError) as exc:
        raise BadConfig(f"{path} is not readable JSON: {exc}", "fix the file") from None
    return check(config, Path(bundle))


def check(config, bundle: Path) -> dict:
    fields.an_object(config, "config.json")
    _warn_of_unknown(config, KNOWN_TOP, "")
    _refuse_unsupported(config)
    fields.a_string(config.get("ociVersion"), "ociVersion", required=True)
    if not config["ociVersion"].startswith("1."):
        raise BadConfig(f"ociVersion {config['ociVersion']!r} is not a 1.x runtime spec",
                        "minict-oci reads runtime spec 1.x")
    _check_root(config.get("root"), bundle)
    check_process(config.get("process"))
    if "hostname" in config:
        fields.a_string(config["hostname"], "hostname")
    for i, mount in enumerate(fields.a_list(config.get("mounts", []), "mounts")):
        _check_mount(mount, f"mounts[{i}]")
    _check_hooks(config.get("hooks", {}))
    fields.string_map(config.get("annotations", {}), "annotations")
    _check_linux(config.get("linux", {}), config)
    return config


def _warn_of_unknown(part: dict, known: set, prefix: str) -> None:
    """A field no runtime spec names is ignored, as the spec requires
    (config.md, "Extensibility": runtimes MUST NOT generate an error), but
    not silently. (A field it names that minict-oci does not do is refused:
    UNSUPPORTED.)"""
    for key in part:
        if key not in known:
            print(f"minict-oci: warning: config.json: unknown field {prefix}{key} ignored",
                  file=sys.stderr)


def _refuse_unsupported(config: dict) -> None:
    for dotted, why in UNSUPPORTED.items():
        value = config
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value not in (None, "", {}, []):
            raise UnsupportedConfig(f"config.json: {dotted}: {why} by minict-oci",
                                    f"remove {dotted} from the config, or use runc")


# ---- the parts ------------------------------------------------------------------------------

def _check_root(root, bundle: Path) -> None:
    fields.an_object(root, "root", required=True)
    path = fields.a_string(root.get("path"), "root.path", required=True)
    fields.a_bool(root.get("readonly"), "root.readonly")
    full = Path(path) if path.startswith("/") else bundle / path
    if not full.is_dir():
        raise BadConfig(f"root.path: {full} is not a directory",
                        "put the container's root filesystem there (e.g. bundle/rootfs)")


def check_process(process) -> None:
    fields.an_object(process, "process", required=True)
    args = fields.a_list(process.get("args"), "process.args", required=True)
    if not args or not all(isinstance(a, str) for a in args):
        raise BadConfig("process.args must be a non-empty list of strings",
                        'e.g. "args": ["sh"]')
    fields.a_bool(process.get("terminal"), "process.terminal")
    if "consoleSize" in process:
        size = fields.an_object(process["consoleSize"], "process.consoleSize")
        for key in ("height", "width"):
            fields.a_uint(size.get(key), f"process.consoleSize.{key}", required=True)
    for i, item in enumerate(fields.a_list(process.get("env", []), "process.env")):
        if not isinstance(item, str) or "=" not in item:
            raise BadConfig(f"process.env[{i}] is not NAME=value", 'e.g. "PATH=/bin"')
    cwd = fields.a_string(process.get("cwd"), "process.cwd", required=True)
    fields.absolute(cwd, "process.cwd")
    user = fields.an_object(process.get("user", {}), "process.user")
    fields.a_uint(user.get("uid"), "process.user.uid", required=True)
    fields.a_uint(user.get("gid"), "process.user.gid", required=True)
    fields.a_uint(user.get("umask"), "process.user.umask")
    for i, gid in enumerate(fields.a_list(user.get("additionalGids", []), "process.user.additionalGids")):
        fields.a_uint(gid, f"process.user.additionalGids[{i}]")
    if user.get("username"):
        raise UnsupportedConfig("config.json: process.user.username is for Windows",
                                "give uid and gid")
    caps = fields.an_object(process.get("capabilities", {}), "process.capabilities")
    for name, values in caps.items():
        if name not in CAPABILITY_SETS:
            raise BadConfig(f"process.capabilities.{name} is not a capability set",
                            f"use {', '.join(CAPABILITY_SETS)}")
        for i, cap in enumerate(fields.a_list(values, f"process.capabilities.{name}")):
            _capability(cap, f"process.capabilities.{name}[{i}]")
    # capset(2) refuses an effective capability that is not permitted. (An
    # ambient one that is not also inheritable is skipped, not refused, as
    # runc does: runc's own default config has three.)
    for cap in caps.get("effective", []):
        if cap not in caps.get("permitted", []):
            raise BadConfig(f"process.capabilities.effective: {cap} is not in the permitted set",
                            "the kernel keeps effective within permitted: add it there too")
    seen = set()
    for i, limit in enumerate(fields.a_list(process.get("rlimits", []), "process.rlimits")):
        where = f"process.rlimits[{i}]"
        fields.an_object(limit, where)
        kind = fields.a_string(limit.get("type"), f"{where}.type", required=True)
        if kind not in RLIMIT_NAMES:
            raise BadConfig(f"{where}.type {kind!r} is not an rlimit", "e.g. RLIMIT_NOFILE")
        if kind in seen:
            raise BadConfig(f"{where}: {kind} is given twice", "give each rlimit once")
        seen.add(kind)
        soft = fields.a_uint(limit.get("soft"), f"{where}.soft", required=True)
        hard = fields.a_uint(limit.get("hard"), f"{where}.hard", required=True)
        if soft > hard:
            raise BadConfig(f"{where}: soft limit {soft} is above the hard limit {hard}",
                            "make soft <= hard")
    fields.a_bool(process.get("noNewPrivileges"), "process.noNewPrivileges")
    if process.get("oomScoreAdj") is not None:
        score = fields.an_int(process["oomScoreAdj"], "process.oomScoreAdj")
        if not -1000 <= score <= 1000:
            raise BadConfig(f"process.oomScoreAdj {score} is outside -1000..1000", "")


def _capability(name, where: str) -> None:
    if not isinstance(name, str) or name not in CAPABILITY_NUMBERS:
        raise BadConfig(f"{where}: {name!r} is not a capability", "e.g. CAP_CHOWN")


def _check_mount(mount, where: str) -> None:
    fields.an_object(mount, where)
    destination = fields.a_string(mount.get("destination"), f"{where}.destination", required=True)
    fields.absolute(destination, f"{where}.destination")
    fields.a_string(mount.get("type"), f"{where}.type")
    fields.a_string(mount.get("source"), f"{where}.source")
    for i, option in enumerate(fields.a_list(mount.get("options", []), f"{where}.options")):
        fields.a_string(option, f"{where}.options[{i}]")
        if option in UNSUPPORTED_MOUNT_OPTIONS:
            raise UnsupportedConfig(f"config.json: {where}.options: {option}: "
                                    f"{UNSUPPORTED_MOUNT_OPTIONS[option]}", f"remove {option}")
    for key in ("uidMappings", "gidMappings"):
        if mount.get(key):
            raise UnsupportedConfig(f"config.json: {where}.{key}: id-mapped mounts are not "
                                    f"supported by minict-oci", f"remove {key}")


def _check_hooks(hooks) -> None:
    fields.an_object(hooks, "hooks")
    for name, entries in hooks.items():
        if name not in HOOK_NAMES:
            raise BadConfig(f"hooks.{name} is not a hook", f"use {', '.join(HOOK_NAMES)}")
        for i, hook in enumerate(fields.a_list(entries, f"hooks.{name}")):
            where = f"hooks.{name}[{i}]"
            fields.an_object(hook, where)
            path = fields.a_string(hook.get("path"), f"{where}.path", required=True)
            fields.absolute(path, f"{where}.path")
            if name not in ("createContainer", "startContainer") and not os.access(path, os.X_OK):
                raise BadConfig(f"{where}.path: {path} is not an executable file",
                                "give the absolute path of an existing program")
            for key in ("args", "env"):
                for j, item in enumerate(fields.a_list(hook.get(key, []), f"{where}.{key}")):
                    fields.a_string(item, f"{where}.{key}[{j}]")
            if hook.get("timeout") is not None and fields.an_int(hook["timeout"], f"{where}.timeout") <= 0:
                raise BadConfig(f"{where}.timeout must be more than 0 seconds", "")


def _check_linux(linux, config: dict) -> None:
    fields.an_object(linux, "linux")
    _warn_of_unknown(linux, KNOWN_LINUX, "linux.")
    kinds = set()
    for i, ns in enumerate(fields.a_list(linux.get("namespaces", []), "linux.namespaces")):
        where = f"linux.namespaces[{i}]"
        fields.an_object(ns, where)
        kind = fields.a_string(ns.get("type"), f"{where}.type", required=True)
        if kind == "time":
            raise UnsupportedConfig(f"config.json: {where}: time namespaces are not supported "
                                    f"by minict-oci", "remove it")
        if kind not in NAMESPACE_TYPES:
            raise BadConfig(f"{where}.type {kind!r} is not a namespace type",
                            f"use {', '.join(NAMESPACE_TYPES)}")
        if kind in kinds:
            raise BadConfig(f"{where}: the {kind} namespace is given twice", "give each once")
        kinds.add(kind)
        if ns.get("path"):
            fields.absolute(fields.a_string(ns["path"], f"{where}.path"), f"{where}.path")
            if not os.path.exists(ns["path"]):
                raise BadConfig(f"{where}.path: {ns['path']} does not exist",
                                "give /proc/PID/ns/TYPE of a running process")
    if config.get("hostname") and "uts" not in kinds:
        raise BadConfig("hostname is set, but there is no uts namespace to set it in",
                        'add {"type": "uts"} to linux.namespaces')
    for key in ("uidMappings", "gidMappings"):
        for i, entry in enumerate(fields.a_list(linux.get(key, []), f"linux.{key}")):
            for field in ("containerID", "hostID", "size"):
                fields.a_uint(fields.an_object(entry, f"linux.{key}[{i}]").get(field), f"linux.{key}[{i}].{field}",
                      required=True)
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in kinds:
        raise BadConfig("linux.uidMappings are given, but there is no user namespace",
                        'add {"type": "user"} to linux.namespaces')
    new_user = any(ns.get("type") == "user" and not ns.get("path")
                   for ns in linux.get("namespaces", []))
    if new_user and not (linux.get("uidMappings") and linux.get("gidMappings")):
        raise BadConfig("a new user namespace needs linux.uidMappings and linux.gidMappings",
                        "minict-oci spec --rootless writes them for you")
    if any(ns.get("type") == "user" and ns.get("path") for ns in linux.get("namespaces", [])):
        raise UnsupportedConfig("config.json: linux.namespaces: joining a user namespace by path "
                                "is not supported by minict-oci", "give mappings for a new one")
    paths = set()
    for i, dev in enumerate(fields.a_list(linux.get("devices", []), "linux.devices")):
        where = f"linux.devices[{i}]"
        fields.an_object(dev, where)
        path = fields.a_string(dev.get("path"), f"{where}.path", required=True)
        fields.absolute(path, f"{where}.path")
        if os.path.normpath(path) in paths:
            raise BadConfig(f"{where}.path: {path} is given twice", "give each device once")
        paths.add(os.path.normpath(path))
        if fields.a_string(dev.get("type"), f"{where}.type", required=True) not in ("c", "b", "u", "p"):
            raise BadConfig(f"{where}.type must be c, b, u or p", "")
        for key in ("major", "minor"):
            if dev["type"] != "p":
                fields.an_int(dev.get(key), f"{where}.{key}", required=True)
        for key in ("fileMode", "uid", "gid"):
            fields.a_uint(dev.get(key), f"{where}.{key}")
    fields.a_string(linux.get("cgroupsPath"), "linux.cgroupsPath")
    check_resources(linux.get("resources", {}))
    for key in ("maskedPaths", "readonlyPaths"):
        for i, path in enumerate(fields.a_list(linux.get(key, []), f"linux.{key}")):
            fields.absolute(fields.a_string(path, f"linux.{key}[{i}]"), f"linux.{key}[{i}]")
    if fields.a_string(linux.get("rootfsPropagation", ""), "linux.rootfsPropagation") not in PROPAGATIONS:
        raise BadConfig(f"linux.rootfsPropagation {linux['rootfsPropagation']!r} is not a "
                        f"propagation", f"use one of {', '.join(p for p in PROPAGATIONS if p)}")
    check_sysctl(fields.string_map(linux.get("sysctl", {}), "linux.sysctl"),
                 linux.get("namespaces", []))
    if linux.get("seccomp") is not None:
        check_seccomp(linux["seccomp"])
    if linux.get("personality") is not None:
        personality = fields.an_object(linux["personality"], "linux.personality")
        if personality.get("domain") not in ("LINUX", "LINUX32"):
            raise BadConfig("linux.personality.domain must be LINUX or LINUX32", "")
        if personality.get("flags"):
            raise UnsupportedConfig("config.json: linux.personality.flags are not supported by "
                                    "minict-oci", "remove them")
