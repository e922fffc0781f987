"""The kernel-facing pieces of a container's secure defaults, used by the
last steps before execve that every container process takes (the first one
of minict run and minict-oci, and every exec): oci/process.py says their
order and why. Here: becoming the container's user, closing inherited fds
and checking the working directory (CVE-2024-21626), and making a process
that enters a container non-dumpable (CVE-2019-5736).
"""

import errno
import os
import signal

from .. import syscalls as sc
from ..errors import RunFailed, UnknownUser


def switch_user(kernel: sc.Kernel, uid: int, gid: int, additional_gids: list[int],
                die_with_owner: bool = True) -> None:
    """Groups, gid, uid. `die_with_owner`: minict's container dies with the
    minict that owns it; minict-oci's outlives `create`, which exits."""
    if _setgroups_denied():
        # Without root (rootless.py) minict denied setgroups to write the gid
        # map: the groups stay as they are (only the caller's gid exists).
        kernel.explain("setgroups is denied in this user namespace: supplementary groups "
                       "unchanged")
    else:
        kernel.setgroups(list(additional_gids),
                         "Set the supplementary groups from the image's /etc/group")
    try:
        kernel.setgid(gid, f"Become group {gid}")
        kernel.setuid(uid, f"Become user {uid}" + ("" if uid == 0 else
                                                   " (the kernel now clears our capabilities)"))
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        # Only without root (rootless.py): the id is not in the user
        # namespace's map (idmap.py), which with one id holds only root.
        raise UnknownUser(f"user {uid}:{gid} does not exist in this container's user namespace "
                          f"(its id map: {' / '.join(_id_map_lines())})",
                          "without subordinate ids only root (0) exists inside; ask for "
                          "/etc/subuid and /etc/subgid ranges (and install uidmap), then use a "
                          "new store (--root)") from None
    # Changing credentials clears the parent-death signal (prctl(2)), so it
    # is set again: the container must still die with its owner.
    if die_with_owner:
        kernel.set_pdeathsig(signal.SIGKILL, "Die if minict dies (set again: changing user cleared it)")


def _id_map_lines() -> list[str]:
    with open("/proc/self/uid_map") as f:
        return [" ".join(line.split()) for line in f if line.strip()]


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


def close_inherited_fds(kernel: sc.Kernel, keep: set[int]) -> None:
    """CVE-2024-21626 (runc "Leaky Vessels"): an fd minict happened to hold
    open on a host directory, inherited by the container, let a process
    chdir into the host through /proc/self/fd/N. Close every fd above 2 we
    do not need (the ones we keep are close-on-exec) BEFORE changing into
    the working directory."""
    kernel.close_fds_except(keep, "Close every inherited file descriptor above 2 before "
                                  "entering the working directory (CVE-2024-21626)")


def enter_workdir(kernel: sc.Kernel, workdir: str) -> None:
    """chdir into the working directory, then check we really are inside
    the container's root (CVE-2024-21626: a cwd outside the root shows up
    as "(unreachable)/..." or as ENOENT from getcwd)."""
    try:
        kernel.chdir(workdir, "Enter the working directory")
    except FileNotFoundError:
        raise RunFailed(f"working directory {workdir} does not exist in the container",
                        "create it in the image, or give another -w") from None
    except PermissionError:
        raise RunFailed(f"working directory {workdir} is not accessible to the container's user",
                        "give another -w, or another --user") from None
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        cwd = "(unreachable)"
    if not cwd.startswith("/"):
        raise RunFailed(f"the working directory resolves outside the container ({cwd})",
                        "refusing to start: this is the CVE-2024-21626 escape")


def make_non_dumpable(kernel: sc.Kernel, why: str | None = None) -> None:
    """CVE-2019-5736: a process of minict's (the host's python binary) that
    enters a container can be reached from inside through /proc/PID/exe
    and the binary overwritten. A non-dumpable process's /proc entries
    belong to root and need CAP_SYS_PTRACE, which containers do not have."""
    kernel.set_dumpable(False, why or "Make this process non-dumpable before it enters the "
                                      "container, so /proc/PID/exe cannot be opened from inside "
                                      "(CVE-2019-5736)")


def ensure_workdir(kernel, workdir: str) -> None:
    """docker creates a missing working directory; so do we (inside the
    container's root: after pivot_root no path can lead outside it)."""
    missing = []
    path = workdir
    while path != "/" and not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for directory in reversed(missing):
        kernel.mkdir(directory, 0o755, f"Create the working directory {directory}")
