"""Inside the container: everything between fork and execve.

launch.py forks this process as PID 1 of a new PID namespace. Then, one
small step at a time (DESIGN.md's data flow):

    wait for the owner's go-ahead (it puts us in our cgroup first, if any)
    -> unshare the mount, UTS, IPC, network and cgroup namespaces
    -> make mounts private -> overlay root -> /proc, /dev, /sys,
       /sys/fs/cgroup, /etc files, volumes, tmpfs -> pivot_root -> mask
       and write-protect parts of /proc and /sys -> hostname -> loopback up
       -> stdio (a pty for -t)
    -> capabilities, user, no_new_privs -> seccomp filter -> close fds
    -> working directory
    -> execve the command (or, with --init, fork it under a tiny reaper)

Nothing here may return into the caller's code: the process ends in
execve or in os._exit. A failure is written as one JSON line to the error
pipe (close-on-exec, so the owner reads end-of-file exactly when execve
succeeded), which the owner turns into the right error and exit code.
"""

import errno
import json
import os
import signal
import stat

from .. import syscalls as sc
from ..errors import CommandNotExecutable, CommandNotFound, MinictError, RunFailed
from . import devices, mounts, rootfs, security, syscall_filter


class Channels:
    """The fds that tie the container's first process to its owner.
    (A plain class: dataclasses is not imported by `minict run`, see spec.py.)"""

    def __init__(self, go_read: int, go_write: int, error_read: int, error_write: int,
                 log_fd: int | None = None):
        self.go_read = go_read            # the owner writes one byte: "go on"
        self.go_write = go_write
        self.error_read = error_read      # the child writes one JSON line if it fails
        self.error_write = error_write    # (both error ends are close-on-exec)
        self.log_fd = log_fd              # detached without -t: stdout and stderr go here
        self.console_child = None         # socket: the child sends the pty master here (-t)
        self.console_parent = None


def preload(spec) -> None:
    """Import now what the child needs after pivot_root: from then on the
    host's files, Python's own library included, are out of reach."""
    import fcntl  # noqa: F401
    import prctl  # noqa: F401
    from . import users  # noqa: F401  (minict exec -u reads the container's /etc/passwd)
    if syscall_filter.confined(spec):
        syscall_filter.import_library()
    if spec.tty:
        import socket  # noqa: F401
        import termios  # noqa: F401
        from . import tty  # noqa: F401
    if spec.init:
        from . import init  # noqa: F401


def container_main(kernel: sc.Kernel, spec, record_dir: str, channels: Channels,
                   close_early=(), nodev: bool = False) -> None:
    """The body of the container's first process. Never returns.
    `nodev`: no device controller guards this container (device_access.py),
    so every mount but /dev is made nodev."""
    run_or_report(channels.error_write,
                   lambda: _setup_and_exec(kernel, spec, record_dir, channels, close_early, nodev))


def container_main_exec_only(kernel: sc.Kernel, spec, error_fd: int) -> None:
    """The command's process under --init (everything else is done). Never returns."""
    def start():
        if spec.tty:
            # Job control: the command gets its own process group and the
            # terminal's foreground, as a shell started by login would.
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTTOU])
            os.setpgid(0, 0)
            os.tcsetpgrp(0, os.getpid())
        umask_and_signals()
        exec_command(kernel, spec.argv, spec.env)
    run_or_report(error_fd, start)


def run_or_report(error_fd: int, body) -> None:
    """Run body (which ends in execve); on any failure, report it on the
    error pipe and _exit with docker's code (125, 126 or 127)."""
    code = 125
    try:
        body()
    except MinictError as exc:
        code = exc.exit_code if exc.exit_code in (126, 127) else 125
        _report(error_fd, type(exc).__name__, exc.message, exc.hint)
    except OSError as exc:
        _report(error_fd, "RunFailed", f"could not set up the container: {exc}", None)
    except BaseException as exc:   # noqa: B902 - anything at all must end in _exit
        _report(error_fd, "RunFailed",
                f"could not set up the container: {type(exc).__name__}: {exc}", None)
    os._exit(code)


def _report(fd: int, kind: str, message: str, hint: str | None) -> None:
    try:
        os.write(fd, json.dumps({"kind": kind, "message": message, "hint": hint}).encode() + b"\n")
    except OSError:
        pass


def _setup_and_exec(kernel, spec, record_dir, ch: Channels, close_early, nodev) -> None:
    kernel.set_pdeathsig(signal.SIGKILL, "Die if minict dies, so a crash never leaves "
                                         "the container running unattended")
    for fd in (ch.go_write, ch.error_read, *close_early):
        os.close(fd)
    if ch.console_parent is not None:
        ch.console_parent.close()
    # Wait for the owner. End-of-file instead of the byte means the owner
    # died before we could set PR_SET_PDEATHSIG: give up.
    if os.read(ch.go_read, 1) != b"g":
        os._exit(125)
    os.close(ch.go_read)
    own_cgroup = mounts.in_own_cgroup(spec.id)   # before the cgroup namespace hides the path

    kernel.setsid("Start a new session: keyboard signals go to minict, which forwards them")
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWCGROUP
    parts = "mount table, hostname, IPC objects, cgroup view"
    if spec.network != "host":
        flags |= sc.CLONE_NEWNET
        parts += ", network stack"
    kernel.unshare(flags, f"Give the container its own {parts} (its PID namespace was made "
                          f"before this process was forked, so it is PID 1)")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "Make every mount private, so nothing we mount propagates to the host")

    root = os.path.join(record_dir, "merged")
    build_root(kernel, spec, record_dir, root, own_cgroup, nodev)
    rootfs.pivot(kernel, root)
    if not spec.privileged:
        mounts.mask_paths(kernel)
        mounts.readonly_paths(kernel)
    kernel.sethostname(spec.hostname, "Name the container (its own UTS namespace: the host keeps its name)")
    if spec.network != "host":
        kernel.link_up("lo", "Bring up the loopback interface of the new network namespace "
                             "(it starts down)")
    setup_stdio(kernel, spec, ch)
    ensure_workdir(kernel, spec.workdir)
    if spec.read_only:
        rootfs.remount_root_readonly(kernel)
    umask_and_signals()
    security.restrict_capabilities_and_identity(kernel, spec)
    syscall_filter.install(kernel, spec)
    keep = {ch.error_write} | ({kernel.narrator.fd} if kernel.narrator.enabled else set())
    security.close_inherited_fds(kernel, keep)
    security.enter_workdir(kernel, spec.workdir)
    if spec.init:
        from .init import run_init
        run_init(kernel, spec, ch.error_write)
    exec_command(kernel, spec.argv, spec.env)


def build_root(kernel, spec, record_dir, root, own_cgroup: bool = False,
               nodev: bool = False) -> None:
    """Everything mounted into the new root before pivot_root.
    `own_cgroup`: the container has a cgroup of its own to show at /sys/fs/cgroup.
    `nodev`: the root, volumes and tmpfs mounts are nodev (/proc, /sys and
    /dev/shm always are); only /dev, filled by minict, is not."""
    rootfs.mount_overlay(kernel, spec.layer_dirs, record_dir, root, nodev)
    mounts.mount_proc(kernel, root)
    devices.populate_dev(kernel, root, spec.devices)
    mounts.mount_sys(kernel, root, readonly=not spec.privileged)
    if own_cgroup:
        mounts.mount_cgroup(kernel, root, readonly=not spec.privileged)
    mounts.bind_etc_files(kernel, root, record_dir, nodev)
    # Shallow destinations first, so /data is mounted before /data/sub.
    planned = [(b.destination, "bind", b) for b in spec.binds] + \
              [(t.destination, "tmpfs", t) for t in spec.tmpfs]
    for destination, kind, item in sorted(planned, key=lambda p: p[0].count("/")):
        if kind == "bind":
            rootfs.bind_mount(kernel, root, item.source, destination, item.readonly,
                              f"Bind {item.source} at {destination}"
                              f"{' (read-only)' if item.readonly else ''}", nodev)
        else:
            rootfs.mount_tmpfs(kernel, root, destination, item.options, nodev)


def setup_stdio(kernel, spec, ch: Channels) -> None:
    """Point fds 0, 1, 2 where the container's output belongs."""
    if spec.tty:
        from .tty import hand_over_master, open_container_pty
        master, peer = open_container_pty()
        hand_over_master(ch.console_child, master)
        os.close(master)
        ch.console_child.close()
        kernel.set_controlling_tty(peer, "Make the container's pty our controlling terminal")
        for fd in (0, 1, 2):
            os.dup2(peer, fd)
        if peer > 2:
            os.close(peer)
        return
    if not spec.interactive:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
    if ch.log_fd is not None:
        os.dup2(ch.log_fd, 1)
        os.dup2(ch.log_fd, 2)
        os.close(ch.log_fd)


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


def umask_and_signals() -> None:
    """Undo what Python did to this process that execve would keep:
    Python ignores SIGPIPE and SIGXFSZ (ignored signals survive execve,
    and `yes | head` would then never end)."""
    os.umask(0o022)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def find_command(name: str, env: list[str]) -> str:
    """Resolve argv[0] the way a shell would, in the container's PATH.
    docker's codes: 127 when not found, 126 when found but not executable."""
    if "/" in name:
        if not os.path.exists(name):
            raise CommandNotFound(f"{name}: no such file or directory in the container",
                                  "check the path, e.g. minict run IMAGE ls -l " + os.path.dirname(name))
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise CommandNotExecutable(f"{name} is not executable", "check its permissions")
        return name
    path_var = next((e[5:] for e in env if e.startswith("PATH=")), "")
    denied = None
    for directory in path_var.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            if os.access(candidate, os.X_OK):
                return candidate
            denied = candidate
    if denied:
        raise CommandNotExecutable(f"{denied} is not executable", "check its permissions")
    raise CommandNotFound(f"executable {name!r} not found in the container's PATH ({path_var})",
                          "check the command exists in the image")


def exec_command(kernel, argv: list[str], env: list[str]) -> None:
    path = find_command(argv[0], env)
    try:
        kernel.execve(path, argv, env, "Replace this process with the container's command")
    except OSError as exc:
        if exc.errno == errno.ENOENT:   # e.g. a script whose #! interpreter is missing
            raise CommandNotFound(f"cannot run {path}: {exc.strerror} (a missing interpreter?)",
                                  "check the #! line and that its interpreter is in the image") from None
        if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EPERM):
            raise CommandNotExecutable(f"cannot execute {path}: {exc.strerror}",
                                       "check it is a program for this machine") from None
        raise RunFailed(f"execve {path} failed: {exc}") from None
