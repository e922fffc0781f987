"""config.json's `process`: who the command runs as, with what, and the last
steps before execve. Shared by the container's first process (init.py)
and by `minict-oci exec` (exec.py), as in runc.

`minict run`'s container and `minict exec` take the same steps, on the
process config.json gives them (runtime/bundle.py process_of). The order,
and why:
1. rlimits and oomScoreAdj, while we still hold CAP_SYS_RESOURCE;
2. the bounding set: capabilities outside it are gone for good;
3. PR_SET_KEEPCAPS, then groups, gid, uid: leaving uid 0 would otherwise
   empty the permitted set before step 4 could set it;
4. the effective, permitted and inheritable sets as the config lists them
   (minict's engine lists no inheritable ones: CVE-2022-24769, a non-empty
   inheritable set let programs with file capabilities gain them), then
   the ambient ones (which a non-root command keeps across execve);
5. no_new_privs, then the seccomp filter (loading one needs no_new_privs
   or CAP_SYS_ADMIN, and it comes as late as it can: it may forbid the
   calls above). Without noNewPrivileges the filter is loaded before step
   2 instead, while CAP_SYS_ADMIN is still held, as runc does; it must
   then allow what follows (setuid, capset, execve...);
6. every inherited fd above 2 closed, then the working directory, checked
   to be inside the root (CVE-2024-21626).
Before step 2 the command is looked up, with HOME added to its env when
config.json gives none (with_home, as runc does).
"""

import os
from pathlib import Path

from .. import syscalls as sc
from ..errors import RunFailed
from ..runtime import capabilities as caps
from ..runtime import security
from ..runtime.command import find_command
from ..runtime.docker_flags import ULIMITS
from ..runtime.syscall_filter import import_library
from ..runtime.users import resolve_user
from . import seccomp as profile

# RLIMIT_NAME -> its number (<asm-generic/resource.h>; RLIMIT_LOCKS is
# missing from Python's resource module, so it is spelled out: 10).
RLIMITS = {f"RLIMIT_{name.upper()}": number for name, number in ULIMITS.items()} | \
    {"RLIMIT_LOCKS": 10}


def preload(seccomp_config: dict | None) -> None:
    """Import now the libraries the container's side needs after it has
    entered the container's mount namespace, where the host's files
    (Python's own library included) are out of reach: libseccomp's only
    when there is a linux.seccomp to load."""
    sc.prctl()
    if seccomp_config:
        import_library()


def with_home(process: dict) -> dict:
    """The process with HOME in its env, as runc gives it: when config.json
    sets none, the home of process.user.uid in the container's
    /etc/passwd, or "/" (shells and many programs expect one). Called once
    the container's root is the root, so the file is the container's."""
    env = process.get("env", [])
    if any(item.startswith("HOME=") for item in env):
        return process
    home = resolve_user(str(process.get("user", {}).get("uid", 0)), [Path("/")]).home
    return {**process, "env": [*env, f"HOME={home}"]}


def resolve_command(process: dict) -> str:
    """process.args[0] found in the container (after pivot_root), as runc
    does before the container waits: a missing command fails `create`."""
    return find_command(process["args"][0], process.get("env", []))


def prepare_cwd(kernel: sc.Kernel, process: dict) -> None:
    """process.cwd, made if it is missing (as runc does), checked before the
    container waits, so a cwd that cannot be entered fails `create`."""
    cwd = process.get("cwd", "/")
    security.ensure_workdir(kernel, cwd)
    if not os.path.isdir(cwd):
        raise RunFailed(f"process.cwd {cwd} is not a directory in the container",
                        "give a directory")


def limits_and_score(kernel: sc.Kernel, process: dict) -> None:
    for limit in process.get("rlimits", []):
        soft, hard = (-1 if v >= 2**63 else v for v in (limit["soft"], limit["hard"]))
        kernel.setrlimit(limit["type"].removeprefix("RLIMIT_"), RLIMITS[limit["type"]], soft,
                         hard,   # -1: unlimited
                         f"process.rlimits: {limit['type']}")
    if process.get("oomScoreAdj") is not None:
        kernel.write_proc("/proc/self/oom_score_adj", str(process["oomScoreAdj"]),
                          "process.oomScoreAdj: how willing the OOM killer is to pick us")


def identity_and_capabilities(kernel: sc.Kernel, process: dict, seccomp_config,
                              die_with_owner: bool = False) -> None:
    """Steps 2-5 (the filter here only without noNewPrivileges: see step 5).
    `die_with_owner`: minict run's container dies with its minict, and
    changing user clears that signal, so it is set again."""
    if not process.get("noNewPrivileges"):
        load_seccomp(kernel, seccomp_config, "while CAP_SYS_ADMIN is held (no no_new_privs)")
    sets = process.get("capabilities", {})
    numbers = {name: [caps.NUMBERS[c] for c in sets.get(name, [])] for name in
               ("bounding", "effective", "permitted", "inheritable", "ambient")}
    bounding = set(numbers["bounding"])
    # A bounding set only shrinks: what the runtime itself lacks (this
    # host's root has no CAP_SYS_RESOURCE, say) it cannot give.
    available = {n for n in range(caps.last_cap() + 1) if sc.in_bounding_set(n)}
    missing = sorted({n for names in numbers.values() for n in names} - available)
    if missing:
        kernel.explain("Not available to minict-oci itself, so not to the container either: "
                       + ", ".join(caps.NAMES[n] for n in missing))
    for number in sorted(available - bounding):
        kernel.drop_bounding_cap(number, caps.NAMES[number],
                                 f"Drop {caps.NAMES[number]} from the bounding set")
    user = process.get("user", {})
    kernel.set_keepcaps("Keep the permitted set while leaving uid 0 (it is set just after)")
    security.switch_user(kernel, user.get("uid", 0), user.get("gid", 0),
                         user.get("additionalGids", []), die_with_owner=die_with_owner)
    kernel.set_capability_sets([n for n in numbers["effective"] if n in available],
                               [n for n in numbers["permitted"] if n in available],
                               [n for n in numbers["inheritable"] if n in available],
                               "process.capabilities: the effective, permitted and inheritable "
                               "sets as the config lists them")
    for number in numbers["ambient"]:
        if number not in numbers["inheritable"] or number not in numbers["permitted"] \
                or number not in available:
            # The kernel raises an ambient capability only if it is permitted
            # and inheritable; runc skips the others with a warning, and so do we.
            kernel.explain(f"Ambient {caps.NAMES[number]} skipped: not in both the permitted "
                           f"and the inheritable set")
            continue
        kernel.raise_ambient(number, caps.NAMES[number],
                             f"Ambient {caps.NAMES[number]}: kept across execve by a non-root command")
    if process.get("noNewPrivileges"):
        kernel.set_no_new_privs("process.noNewPrivileges: execve can never grant privileges")


def load_seccomp(kernel: sc.Kernel, seccomp_config: dict | None, when: str) -> None:
    if not seccomp_config:
        kernel.explain("No linux.seccomp in the config: no system call filter")
        return
    built, unknown, summary = profile.build(import_library(), seccomp_config)
    if unknown:
        kernel.explain(f"This libseccomp does not know {', '.join(unknown)}: left out")
    kernel.load_seccomp(built, summary, f"Load linux.seccomp, the engine's system call filter, "
                                        f"{when}")


def last_steps(kernel: sc.Kernel, process: dict, seccomp_config, keep_fds: set[int]) -> None:
    """The end of step 5 and step 6, then the caller execs."""
    if process.get("noNewPrivileges"):
        load_seccomp(kernel, seccomp_config, "last (no_new_privs is set)")
    keep = set(keep_fds) | ({kernel.narrator.fd} if kernel.narrator.enabled else set())
    security.close_inherited_fds(kernel, keep)
    security.enter_workdir(kernel, process.get("cwd", "/"))

