"""Inside the container: everything between fork and execve.

launch.py forks this process as PID 1 of a new PID namespace. Then, one
small step at a time (docs/ARCHITECTURE.md, "Data flow"):

    wait for the owner's go-ahead (it puts us in our cgroup first, if any)
    -> unshare the mount, UTS, IPC, network and cgroup namespaces
    -> make mounts private -> overlay root -> /proc, /dev, /sys,
       /sys/fs/cgroup, /etc files, volumes, tmpfs -> pivot_root -> mask
       and write-protect parts of /proc and /sys -> hostname -> loopback up
       -> stdio (a pty for -t)
    -> capabilities, user, no_new_privs -> seccomp filter -> close fds
    -> working directory
    -> execve the command (command.py; with --init, fork it under a
       tiny reaper: reaper.py)

Nothing here may return into the caller's code: the process ends in
execve or in os._exit. A failure is written as one JSON line to the error
pipe (close-on-exec, so the owner reads end-of-file exactly when execve
succeeded), which the owner turns into the right error and exit code.
"""

import os
import signal
import socket
from dataclasses import dataclass

from .. import syscalls as sc
from .. import idmap
from . import devices, mounts, networking, rootfs, security, syscall_filter, tty
from .command import exec_command, run_or_report
from .reaper import run_reaper


@dataclass
class Channels:
    """The fds that tie the container's first process to its owner."""
    go_read: int                                # the owner writes one byte: "go on"
    go_write: int
    error_read: int                             # the child writes one JSON line if it fails
    error_write: int                            # (both error ends are close-on-exec)
    log_fd: int | None = None                   # detached without -t: stdout and stderr go here
    console_child: socket.socket | None = None  # the child sends the pty master here (-t)
    console_parent: socket.socket | None = None


def preload(spec) -> None:
    """Import now the optional libraries the child needs after pivot_root:
    from then on the host's files, Python's own library included, are out
    of reach. (Everything else the child runs is imported with this module.)"""
    sc.prctl()
    if syscall_filter.confined(spec):
        syscall_filter.import_library()


def container_main(kernel: sc.Kernel, spec, record_dir: str, channels: Channels,
                   close_early=(), nodev: bool = False, ipc=None) -> None:
    """The body of the container's first process. Never returns.
    `nodev`: no device controller guards this container (device_access.py),
    so every mount but /dev is made nodev. `ipc`: --ipc container:NAME's
    joining.JoinedIpc."""
    run_or_report(channels.error_write, lambda: _setup_and_exec(kernel, spec, record_dir, channels,
                                                                close_early, nodev, ipc))


def _setup_and_exec(kernel, spec, record_dir, ch: Channels, close_early, nodev, ipc) -> None:
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
    flags = sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWCGROUP
    shm = None
    if spec.ipc in ("private", "shareable"):
        flags |= sc.CLONE_NEWIPC
    elif ipc is not None:
        shm = join_ipc(kernel, spec, ipc)
    else:
        kernel.explain("--ipc host: stay in the host's IPC namespace")
    kernel.unshare(flags, "Give the container its own mount table, hostname, "
                          f"{'IPC objects, ' if flags & sc.CLONE_NEWIPC else ''}and cgroup view "
                          "(its PID and network namespaces were made before this process was "
                          "forked, unless --pid/--network host)")
    kernel.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE, None,
                 "Make every mount private, so nothing we mount propagates to the host")

    root = os.path.join(record_dir, "merged")
    build_root(kernel, spec, record_dir, root, own_cgroup, nodev, shm)
    rootfs.pivot(kernel, root)
    if not spec.privileged:
        mounts.mask_paths(kernel)
        mounts.readonly_paths(kernel)
    kernel.sethostname(spec.hostname, "Name the container (its own UTS namespace: the host keeps its name)")
    if networking.own_namespace(spec):
        kernel.link_up("lo", "Bring up the loopback interface of the new network namespace "
                             "(it starts down)")
    setup_stdio(kernel, spec, ch)
    security.ensure_workdir(kernel, spec.workdir)
    if spec.read_only:
        rootfs.remount_root_readonly(kernel)
    security.last_steps_before_exec(kernel, spec, ch.error_write)
    if spec.init:
        run_reaper(kernel, spec, ch.error_write)
    exec_command(kernel, spec.argv, spec.env)


def join_ipc(kernel, spec, ipc) -> int:
    """--ipc container:NAME: join that container's IPC namespace, and take a
    copy of its /dev/shm mount (returned as a detached mount's fd).

    A bind mount cannot reach into another mount namespace (mount(2) says
    EINVAL), so the copy is made from inside it: setns into the donor's
    mount namespace, open_tree(OPEN_TREE_CLONE) its /dev/shm, setns back.
    The detached copy then goes to the new /dev (devices.populate_dev)."""
    kernel.setns(ipc.ipc_fd, sc.CLONE_NEWIPC, f"--ipc {spec.ipc}: join the IPC namespace of "
                                              f"{ipc.name} (its shared memory, semaphores and "
                                              f"message queues)", what=spec.ipc)
    # Inside the donor's mount namespace for a moment: nothing there may
    # reach this (root, host python) process through /proc/PID/exe.
    security.make_non_dumpable(kernel)
    own_mnt = kernel.open_namespace("self", "mnt", "Hold on to our own mount namespace, to come back")
    kernel.setns(ipc.mnt_fd, sc.CLONE_NEWNS, f"Step into {ipc.name}'s mount namespace, to copy "
                                             f"its /dev/shm", what=f"{ipc.name}'s mnt")
    try:
        shm = kernel.clone_mount("/dev/shm", f"A detached copy of {ipc.name}'s /dev/shm mount "
                                             f"(the same tmpfs: the same files)")
    finally:
        kernel.setns(own_mnt, sc.CLONE_NEWNS, "Back in our own mount namespace",
                     what="open(\"/proc/self/ns/mnt\")")
        os.close(own_mnt)
    for fd in (ipc.ipc_fd, ipc.mnt_fd):
        os.close(fd)
    return shm


def build_root(kernel, spec, record_dir, root, own_cgroup: bool = False,
               nodev: bool = False, shm: int | None = None) -> None:
    """Everything mounted into the new root before pivot_root.
    `own_cgroup`: the container has a cgroup of its own to show at /sys/fs/cgroup.
    `nodev`: the root, volumes and tmpfs mounts are nodev (/proc, /sys and
    /dev/shm always are); only /dev, filled by minict, is not, and without
    root the binds of single host device nodes (a GPU plan's: gpu.py), which
    stand where root would have made the nodes with mknod.
    `shm`: --ipc container:'s /dev/shm (join_ipc's detached copy); with --ipc
    host the host's is bound; else the container has one of spec.shm_size."""
    userns = idmap.in_user_namespace()   # without root: no mknod, user.* overlay xattrs
    rootfs.mount_overlay(kernel, spec.layer_dirs, record_dir, root, nodev, userxattr=userns)
    mounts.mount_proc(kernel, root)
    devices.populate_dev(kernel, root, spec.devices, spec.shm_size,
                         "/dev/shm" if spec.ipc == "host" else shm, bind_host=userns)
    if userns and spec.network == "host":
        mounts.bind_sys(kernel, root)
    else:
        mounts.mount_sys(kernel, root, readonly=not spec.privileged)
    if own_cgroup:
        mounts.mount_cgroup(kernel, root, readonly=not spec.privileged)
    mounts.bind_etc_files(kernel, root, record_dir, nodev)
    # Shallow destinations first, so /data is mounted before /data/sub.
    planned = [(b.destination, "bind", b) for b in spec.binds] + \
              [(t.destination, "tmpfs", t) for t in spec.tmpfs]
    for destination, kind, item in sorted(planned, key=lambda p: p[0].count("/")):
        if kind == "bind" and userns and devices.is_device_node(item.source):
            devices.bind_host_node(kernel, root, item.source, destination)
        elif kind == "bind":
            rootfs.bind_mount(kernel, root, item.source, destination, item.readonly,
                              f"Bind {item.source} at {destination}"
                              f"{' (read-only)' if item.readonly else ''}", nodev)
        else:
            rootfs.mount_tmpfs(kernel, root, destination, item.options, nodev)


def setup_stdio(kernel, spec, ch: Channels) -> None:
    """Point fds 0, 1, 2 where the container's output belongs."""
    if spec.tty:
        master, peer = kernel.open_pty("-t: a terminal of the container's own devpts")
        tty.hand_over_master(ch.console_child, master)
        os.close(master)
        ch.console_child.close()
        kernel.set_controlling_tty(peer, "Make the container's pty our controlling terminal")
        kernel.redirect_stdio(peer, (0, 1, 2), "The pty is the command's stdin, stdout and stderr")
        if peer > 2:
            os.close(peer)
        return
    if not spec.interactive:
        null = os.open("/dev/null", os.O_RDONLY)
        kernel.redirect_stdio(null, (0,), "No -i: stdin reads nothing (/dev/null)")
        os.close(null)
    if ch.log_fd is not None:
        kernel.redirect_stdio(ch.log_fd, (1, 2), "Detached: stdout and stderr go to the log file")
        os.close(ch.log_fd)
