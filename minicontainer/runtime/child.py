"""Inside the container: `minict run`'s first process, from fork to execve.

The runtime's steps are minict-oci's init (oci/init.py), following the
config.json that the engine's half made of the flags (bundle.py): the same
code podman and containerd drive. launch.py forks this process with
minict-oci's fork (oci/create.py fork_init: PID 1 of a new PID namespace),
and passes the config in memory; the network namespace the engine made and
plugged in already, the config names by a path, and init joins it.

What `minict run` asks that config.json has no word for, MinictRun adds
at init's hooks (an OCI engine would do these outside the runtime, or a
runtime reads them from annotations, as crun does):

    before "go"     die with minict (PR_SET_PDEATHSIG); close the fds of
                    the owner's that the container must not hold
    join            --ipc container:NAME: a copy of its /dev/shm, taken from
                    inside its mount namespace (its IPC namespace the
                    config names by path: init joins it)
    mount_root      the image's layers stacked as an overlay, mounted
                    inside the container's own mount namespace, so that
                    no mount of it is left on the host if minict dies
    after_mounts    that /dev/shm copy, attached
    stdio           stdin from /dev/null without -i; a detached
                    container's output to its log file
    exec            --init: stay as a reaper, fork the command (reaper.py)

Nothing here may return into the caller's code: the process ends in
execve or in os._exit. A failure is written as one JSON line to the error
pipe (close-on-exec, so the owner reads end-of-file exactly when execve
succeeded), which the owner turns into the right error and exit code.

"""

import os
import signal
import socket

from .. import syscalls as sc
from .. import idmap
from ..oci import init
from . import rootfs, security
from .command import exec_process
from .reaper import run_reaper


class MinictRun(init.Engine):
    """minict run's additions to the runtime's init (see the module's docstring)."""
    die_with_owner = True

    def __init__(self, engine, record_dir: str, close_early=(), nodev: bool = False, ipc=None,
                 log_fd: int | None = None, console_parent: socket.socket | None = None):
        # engine: the EngineRecord (its layers, -i, --init, --ipc)
        self.engine, self.record_dir, self.close_early = engine, record_dir, close_early
        self.nodev, self.ipc, self.log_fd = nodev, ipc, log_fd
        self.console_parent = console_parent
        self.shm = None

    def before_go(self, kernel):
        kernel.set_pdeathsig(signal.SIGKILL, "Die if minict dies, so a crash never leaves "
                                             "the container running unattended")
        for fd in self.close_early:
            os.close(fd)
        if self.console_parent is not None:
            self.console_parent.close()

    def join(self, kernel):
        if self.ipc is not None:
            self.shm = copy_shm(kernel, self.ipc)
        elif self.engine.ipc == "host":
            kernel.explain("--ipc host: stay in the host's IPC namespace")

    def mount_root(self, kernel, root):
        rootfs.mount_overlay(kernel, self.engine.layer_dirs, self.record_dir, root, self.nodev,
                             userxattr=idmap.in_user_namespace())

    def after_mounts(self, kernel, root):
        if self.shm is not None:
            # (Plain paths: /dev is the tmpfs this process mounted a moment ago.)
            target = rootfs.path_in_root(root, "/dev/shm")
            if not os.path.isdir(target):
                kernel.mkdir(target, 0o1777, "Mount point for POSIX shared memory")
            kernel.attach_mount(self.shm, target, "/dev/shm: the copy of the joined "
                                                  "container's, so both see one tmpfs")

    def stdio(self, kernel, terminal):
        if terminal:
            return
        if not self.engine.interactive:
            null = os.open("/dev/null", os.O_RDONLY)
            kernel.redirect_stdio(null, (0,), "No -i: stdin reads nothing (/dev/null)")
            os.close(null)
        if self.log_fd is not None:
            kernel.redirect_stdio(self.log_fd, (1, 2), "Detached: stdout and stderr go to the "
                                                       "log file")
            os.close(self.log_fd)

    def exec(self, kernel, proc, path, error_fd):
        if self.engine.init:
            run_reaper(kernel, proc, path, error_fd)
        exec_process(kernel, proc, path)


def container_main(kernel: sc.Kernel, config: dict, channels: init.Channels,
                   engine: MinictRun) -> None:
    """The body of the container's first process. Never returns."""
    init.main(kernel, config, engine.record_dir, channels, engine.nodev, engine=engine)


def copy_shm(kernel, ipc) -> int:
    """--ipc container:NAME: take a copy of that container's /dev/shm mount
    (returned as a detached mount's fd). Its IPC namespace config.json
    names by the path of the owner's fd, and init joins it (oci/init.py).

    A bind mount cannot reach into another mount namespace (mount(2) says
    EINVAL), so the copy is made from inside it: setns into the donor's
    mount namespace, open_tree(OPEN_TREE_CLONE) its /dev/shm, setns back.
    The detached copy is attached at the new /dev/shm (after_mounts)."""
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
