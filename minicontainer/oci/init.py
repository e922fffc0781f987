"""Inside the container: minict-oci's init, from fork to execve.

create.py forks this process (already PID 1 of its PID namespace, already
in its cgroup). It then follows config.json, one step at a time:

    wait for "go"
    -> join the namespaces the config gives a path for, make the others
    -> the root's propagation; the bundle's rootfs bound onto itself
    -> config.json's mounts, in order; linux.devices and the default nodes
    -> tell create "mounted"; create runs the prestart and createRuntime
       hooks; then createContainer hooks, here
    -> pivot_root; hostname; sysctl; maskedPaths; readonlyPaths;
       root.readonly; a shared or unbindable rootfsPropagation
    -> loopback up, personality, rlimits, oomScoreAdj
    -> the pty to --console-socket (process.terminal)
    -> user, groups, capabilities, no_new_privs (without noNewPrivileges,
       the seccomp filter first: loading it then needs CAP_SYS_ADMIN)
    -> tell create "ready" (create exits: the container is "created")
    -> wait on exec.fifo until `minict-oci start` opens it
    -> startContainer hooks; seccomp (with no_new_privs); close fds; cwd; execve

Until "ready", a failure goes to create as one JSON line on the error
pipe (close-on-exec: end-of-file there means execve happened) and
create reports it and cleans up. After it, create is gone: the failure is
printed on the container's stderr, which the engine reads.

`minict run` runs this same init, in its own process (runtime/child.py):
what its flags ask that config.json has no word for (the overlay root
mounted in the container's own mount namespace, --ipc container:'s
/dev/shm, --init's reaper, dying with minict) it adds through an Engine,
whose hooks do nothing for minict-oci. With no sync socket and no fifo
(minict run has no hooks and no separate start), init goes straight on.
"""

import json
import os
import signal
import socket

from .. import syscalls as sc
from ..runtime import mounts as kernel_files
from ..runtime import rootfs
from ..idmap import in_user_namespace
from ..runtime.command import exec_process, report_failure
from ..errors import BadArgument, MinictError, RunFailed
from . import hooks, mounts, process

NEW = {"mount": sc.CLONE_NEWNS, "uts": sc.CLONE_NEWUTS, "ipc": sc.CLONE_NEWIPC,
       "network": sc.CLONE_NEWNET, "cgroup": sc.CLONE_NEWCGROUP, "pid": sc.CLONE_NEWPID,
       "user": sc.CLONE_NEWUSER}
PROC_NAMES = {"mount": "mnt", "uts": "uts", "ipc": "ipc", "network": "net", "cgroup": "cgroup",
              "pid": "pid", "user": "user"}
PROPAGATION = {"": sc.MS_PRIVATE, "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE,
               "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE, "shared": sc.MS_SHARED,
               "rshared": sc.MS_SHARED, "unbindable": sc.MS_UNBINDABLE,
               "runbindable": sc.MS_UNBINDABLE}


class Channels:
    """The fds between create (the parent) and init (this child).
    `sync`: a socket pair for the hooks' moments ("mounted", the state,
    "ready"); minict run, with no hooks, has none."""

    def __init__(self, sync: bool = True):
        self.go_read, self.go_write = os.pipe2(os.O_CLOEXEC)           # parent -> child: "go"
        self.error_read, self.error_write = os.pipe2(os.O_CLOEXEC)     # child -> parent: failure
        self.parent_sync, self.child_sync = socket.socketpair() if sync else (None, None)
        self.console = None                                            # --console-socket
        self.fifo = None                                               # O_PATH on exec.fifo

    def child_side(self):
        os.close(self.go_write)
        os.close(self.error_read)
        if self.parent_sync is not None:
            self.parent_sync.close()

    def parent_side(self):
        os.close(self.go_read)
        os.close(self.error_write)
        if self.child_sync is not None:
            self.child_sync.close()
        if self.console is not None:
            self.console.close()
        if self.fifo is not None:
            os.close(self.fifo)


class Engine:
    """What an engine running this init in its own process adds to config.json
    (minict run: runtime/child.py's MinictRun). For minict-oci, nothing."""
    die_with_owner = False                 # keep a parent-death signal across setuid

    def before_go(self, kernel):
        """First thing in the child, before waiting for "go"."""

    def join(self, kernel):
        """Before the namespaces are made: join what config.json cannot name."""

    def mount_root(self, kernel, root: str):
        """Before the rootfs is bound onto itself: mount it, if the engine has not."""

    def after_mounts(self, kernel, root: str):
        """After config.json's mounts and devices, before pivot_root."""

    def stdio(self, kernel, terminal: bool):
        """Where fds 0, 1, 2 go, after the terminal (if any) is set up."""

    def exec(self, kernel, proc: dict, path: str, error_fd: int):
        exec_process(kernel, proc, path)


def main(kernel: sc.Kernel, config: dict, bundle: str, ch: Channels, nodev: bool,
         preserve_fds: int = 0, engine: Engine | None = None) -> None:
    """The body of the container's first process. Never returns."""
    main_with(ch, lambda ready: _init(kernel, config, bundle, ch, nodev, preserve_fds, ready,
                                      engine or Engine()))


def main_with(ch: Channels, body) -> None:
    """Run body(ready) (init's, or exec's joiner), which ends in execve; a
    failure is reported to create/exec on the error pipe while it waits
    (before ready[0] is set), on stderr after it. Never returns."""
    ready = [False]
    try:
        body(ready)
    except BaseException as exc:   # noqa: B902 - anything at all must end in _exit
        if isinstance(exc, MinictError):
            message = exc.message
        elif isinstance(exc, OSError):   # the kernel's refusal names the call (syscalls)
            message = f"could not set up the container: {exc}"
        else:
            message = f"could not set up the container: {type(exc).__name__}: {exc}"
        hint = exc.hint if isinstance(exc, MinictError) else None
        if ready[0]:
            os.write(2, f"minict-oci: {message}\n".encode())
        else:
            report_failure(ch.error_write, type(exc).__name__ if isinstance(exc, MinictError)
                    else "RunFailed", message, hint)
        os._exit(exc.exit_code if isinstance(exc, MinictError) and exc.exit_code in (126, 127)
                 else 125)


def _init(kernel, config, bundle, ch: Channels, nodev, preserve_fds, ready, engine) -> None:
    engine.before_go(kernel)
    ch.child_side()
    if os.read(ch.go_read, 1) != b"g":
        os._exit(125)       # the parent died before saying go
    os.close(ch.go_read)
    linux, proc = config.get("linux", {}), config["process"]
    kernel.setsid("A session of its own: the container's signals are its own")
    if any(ns["type"] == "user" for ns in linux.get("namespaces", [])):
        # Cloned into a new user namespace, init still has its host ids,
        # which the map may not hold: it becomes the namespace's root.
        kernel.setgid(0, "Become gid 0 of the new user namespace")
        kernel.setuid(0, "Become uid 0 of the new user namespace (all its capabilities)")
    engine.join(kernel)
    namespaces = linux.get("namespaces", [])
    enter_namespaces(kernel, namespaces, born_at_fork(namespaces))
    propagation = linux.get("rootfsPropagation", "")
    # Shared or unbindable come after pivot_root (the kernel refuses to pivot
    # onto a shared mount, and an unbindable one cannot be bound): until
    # then every mount is private, as with no rootfsPropagation at all.
    before = propagation if propagation in ("slave", "rslave") else "rprivate"
    kernel.mount(None, "/", None, sc.MS_REC | PROPAGATION[before], None,
                 f"Make every mount {_propagation_name(before)}, so what we mount stays ours")
    root = build_root(kernel, config, bundle, nodev, engine)

    state_line = None
    if ch.child_sync is not None:
        ch.child_sync.sendall(b"m")           # create runs prestart + createRuntime hooks
        state_line = _read_line(ch.child_sync)
        if not state_line:
            os._exit(125)
        hooks.run(config.get("hooks", {}), "createContainer", json.loads(state_line))

    rootfs.pivot(kernel, root)
    if config.get("hostname"):
        kernel.sethostname(config["hostname"], "The config's hostname (its own UTS namespace)")
    for key, value in linux.get("sysctl", {}).items():   # before /proc/sys is made read-only
        kernel.write_proc("/proc/sys/" + key.replace(".", "/"), value, f"linux.sysctl {key}")
    kernel_files.mask_paths(kernel, linux.get("maskedPaths", []))
    kernel_files.readonly_paths(kernel, linux.get("readonlyPaths", []))
    process.prepare_cwd(kernel, proc)         # (made before the root may turn read-only)
    if config["root"].get("readonly"):
        rootfs.remount_root_readonly(kernel)
    if propagation not in ("", before, "private"):     # (after the binds above)
        recursive = sc.MS_REC if propagation.startswith("r") else 0
        kernel.mount(None, "/", None, recursive | PROPAGATION[propagation], None,
                     f"linux.rootfsPropagation: make the container's root {propagation}")
    if any(ns["type"] == "network" and not ns.get("path") for ns in linux.get("namespaces", [])):
        kernel.link_up("lo", "Bring up loopback in the new network namespace (it starts down)")
    if linux.get("personality"):
        domain = linux["personality"]["domain"]
        kernel.set_personality(sc.PER_LINUX32 if domain == "LINUX32" else sc.PER_LINUX, domain,
                               "linux.personality")
    process.limits_and_score(kernel, proc)
    proc = process.with_home(proc)
    path = process.resolve_command(proc)
    if proc.get("terminal"):
        console(kernel, ch.console, proc.get("consoleSize"))
    engine.stdio(kernel, bool(proc.get("terminal")))
    process.identity_and_capabilities(kernel, proc, linux.get("seccomp"), engine.die_with_owner)

    if ch.fifo is not None:
        _end_on_signals()                     # (before "ready": an engine may kill at once)
    if ch.child_sync is not None:
        ch.child_sync.sendall(b"r")           # create writes the state and exits
        ch.child_sync.close()
        ready[0] = True
    started = _wait_for_start(ch.fifo) if ch.fifo is not None else None
    if state_line is not None:
        hooks.run(config.get("hooks", {}), "startContainer",
                  json.loads(state_line) | {"status": "running"})
    process.last_steps(kernel, proc, linux.get("seccomp"),
                       {ch.error_write, started, *range(3, 3 + preserve_fds)} - {None})
    engine.exec(kernel, proc, path, ch.error_write)


def build_root(kernel, config: dict, bundle: str, nodev: bool, engine: Engine) -> str:
    """Everything mounted in the new root before pivot_root; returns the root.
    `nodev`: no device controller guards the container, so only the
    runtime's own /dev may hold device nodes that can be opened."""
    root = os.path.realpath(os.path.join(bundle, config["root"]["path"]))
    engine.mount_root(kernel, root)
    kernel.mount(root, root, None, sc.MS_BIND | sc.MS_REC, None,
                 "Bind the rootfs onto itself: pivot_root needs a mount point")
    if nodev:
        kernel.mount(None, root, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_NODEV
                     | rootfs.preserved_flags(root), None,
                     "No device controller here: device nodes in the rootfs cannot be opened "
                     "(only the runtime's own /dev)")
    cgroup_namespace = any(ns["type"] == "cgroup"
                           for ns in config.get("linux", {}).get("namespaces", []))
    for mount in config.get("mounts", []):
        mounts.make_mount(kernel, root, bundle, mount, nodev, cgroup_namespace)
    # In a user namespace mknod is refused: the host's nodes are bound instead.
    mounts.make_devices(kernel, root, config.get("linux", {}).get("devices", []),
                        bind_host=in_user_namespace())
    engine.after_mounts(kernel, root)
    return root


def _propagation_name(name: str) -> str:
    return (name or "rprivate").lstrip("r") + " (recursively)"


def born_at_fork(namespaces: list) -> set:
    """The namespaces init is born in (create.fork_init makes or joins them
    at the fork), so that it must not make them again: its PID namespace;
    with a new user namespace, that one, and a new network namespace made
    with it (so that it belongs to it, and the engine can plug it into a
    network in user space, slirp4netns, before saying "go")."""
    kinds = {ns["type"]: ns for ns in namespaces}
    born = {"pid"} & kinds.keys()
    if "user" in kinds:
        born.add("user")
        if "network" in kinds and not kinds["network"].get("path"):
            born.add("network")
    return born


def enter_namespaces(kernel: sc.Kernel, namespaces: list, born_in=frozenset()) -> None:
    """Join the ones with a path (setns), make the others (one unshare),
    but for those init was born in (born_at_fork)."""
    flags = 0
    for ns in namespaces:
        kind = ns["type"]
        if kind in born_in:
            continue
        if ns.get("path"):
            fd = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
            try:
                kernel.setns(fd, NEW[kind], f"Join the {kind} namespace at {ns['path']}",
                             what=ns["path"])
            finally:
                os.close(fd)
        else:
            flags |= NEW[kind]
    if flags:
        kernel.unshare(flags, "New namespaces, as linux.namespaces lists them")


def console(kernel, console_socket: socket.socket, size, bind_console: bool = True) -> None:
    """process.terminal: a pty of the container's own devpts; its master
    goes to the engine over --console-socket (SCM_RIGHTS), as runc's
    docs/terminals.md describes; the peer becomes stdin, stdout, stderr
    and the controlling terminal, and /dev/console."""
    master, peer = kernel.open_pty("process.terminal: a pty from the container's devpts")
    if size:
        kernel.set_window_size(master, size["height"], size["width"], "process.consoleSize")
    socket.send_fds(console_socket, [b"/dev/ptmx"], [master])
    os.close(master)
    console_socket.close()
    if bind_console:
        if not os.path.exists("/dev/console"):
            kernel.write_file("/dev/console", b"", 0o600, "Mount point for /dev/console")
        kernel.mount(os.ttyname(peer), "/dev/console", None, sc.MS_BIND, None,
                     "/dev/console is the container's pty")
    kernel.set_controlling_tty(peer, "The pty is our controlling terminal")
    kernel.redirect_stdio(peer, (0, 1, 2), "The pty is the command's stdin, stdout and stderr")
    if peer > 2:
        os.close(peer)


def _end_on_signals() -> None:
    """While it waits for start, init is PID 1 of its PID namespace, where
    the kernel drops each signal it has no handler for (KILL and STOP
    aside): `minict-oci kill ID` (TERM) of a created container would do
    nothing. A handler for each signal that ends a process makes it end
    init, as it would end runc's (Go's runtime handles them); execve gives
    the command the defaults again (runtime/command.py umask_and_signals)."""
    for number in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
                   signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(number, lambda received, frame: os._exit(128 + received))


def _wait_for_start(fifo: int) -> int:
    """Block until `start` opens exec.fifo for reading, then tell it we are
    off. The fifo was opened O_PATH before pivot_root; /proc/self/fd
    reopens it. The end we write to stays open (close-on-exec) until
    execve: start waits for its end-of-file to run the poststart hooks."""
    fd = os.open(f"/proc/self/fd/{fifo}", os.O_WRONLY | os.O_CLOEXEC)
    os.write(fd, b"0")
    os.close(fifo)
    return fd


def _read_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    return data


def console_for(terminal: bool, path: str | None) -> socket.socket | None:
    """--console-socket, connected, when process.terminal asks for a pty:
    the pty's master goes to the caller through it (runc's
    docs/terminals.md). One without the other is refused, as runc does."""
    if terminal and not path:
        raise BadArgument("process.terminal is true, but no --console-socket was given: "
                          "minict-oci hands the pty to its caller through one",
                          "give --console-socket, or set terminal false (no -t)")
    if path and not terminal:
        raise BadArgument("--console-socket was given, but process.terminal is false",
                          "drop --console-socket, or ask for a terminal (-t)")
    return connect_console(path) if path else None


def connect_console(path: str) -> socket.socket:
    """--console-socket: connected by the runtime before the fork, so a bad
    path fails create at once, and init sends the pty master through it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise RunFailed(f"cannot connect to the console socket {path}: {exc.strerror}",
                        "give the path of a listening unix socket (--console-socket)") from None
    return sock
