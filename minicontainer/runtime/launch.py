"""Starting the container's first process, from the owner's side.

The owner is the process that looks after a container while it runs: the
foreground `minict run`, or the supervisor of a detached one. It

1. makes the sync channels (a "go" pipe, an error pipe, and for -t a unix
   socket to receive the pty master),
2. makes the container's cgroup (with its limits) and puts the device
   rules in force (device_access.py: an eBPF program attached to that
   cgroup, or the fallback when there is none), so the child is forked
   knowing which; takes an address on its network (networking.prepare),
3. turns the container into config.json (bundle.py: the engine's half)
   and forks the child, the runtime's init (child.py runs oci/init.py),
   into new PID and network namespaces (the child is PID 1 in there) and
   steps back into its own (_fork_into_namespaces),
4. records the child's pid, plugs it into its network (veth, address,
   route, published ports) and moves it into the cgroup while it is
   still waiting, so not one instruction of the container's code runs
   outside its limits, its device rules or its network,
5. says "go", then reads the error pipe: end-of-file means execve
   succeeded (the pipe is close-on-exec); a JSON line means the child
   failed and says why.
"""

import os
import signal
import socket
from dataclasses import dataclass

from ..errors import MinictError
from .. import idmap
from .. import syscalls as sc
from ..oci import init, process
from . import (bundle, child, device_access, joining, networking, rootless, state, syscall_filter,
               tty, usernet)
from .command import error_from_child, read_all
from .resources import make_cgroup


@dataclass
class Started:
    """A container process that has exec'd its command."""
    pid: int                    # host pid of the container's PID 1
    master: int | None = None   # pty master, with -t


def _drop_cgroups(*cgroups) -> None:
    """The container never started: its cgroups go too (the error that
    stopped it is the one to report, so a failure here is left to cleanup)."""
    for cgroup in cgroups:
        if cgroup is None:
            continue
        try:
            cgroup.destroy()
        except MinictError:
            pass


def launch(kernel: sc.Kernel, record, log_fd: int | None = None, close_early=()) -> Started:
    """Fork the container's PID 1 and wait until it has exec'd the command."""
    with kernel.narrator.speaking("runtime"):   # (the network's steps: "engine")
        return _launch(kernel, record, log_fd, close_early)


def _launch(kernel, record, log_fd, close_early) -> Started:
    spec = record.spec
    cgroup = make_cgroup(kernel, spec)
    guard = network = ipc = None
    try:
        guard = device_access.install(kernel, spec, cgroup)
        ipc = joining.joined_ipc(kernel, record)
        network = networking.prepare(record) or usernet.prepare(record)
        return _fork_and_start(kernel, record, guard, cgroup, network, ipc, log_fd, close_early)
    except BaseException:
        _drop_cgroups(cgroup, guard.v1_cgroup if guard else None)
        if isinstance(network, networking.Attachment):
            with kernel.narrator.speaking("engine"):
                networking.detach(kernel, record)
        raise
    finally:
        if ipc is not None:
            ipc.close()


def _fork_and_start(kernel, record, guard, cgroup, network, ipc, log_fd, close_early) -> Started:
    spec = device_access.confine(record.spec, guard.mechanism)
    config = bundle.config_of(spec, str(record.dir), own_cgroup=cgroup is not None,
                              rootless=rootless.active(), console_size=tty.size_of(0))
    state.write_json(record.bundle_config_file, config)    # what `inspect --bundle` shows
    if not syscall_filter.confined(spec):     # say why the runtime will load none
        with kernel.narrator.speaking("engine"):
            kernel.explain("No linux.seccomp written into config.json: " + (
                "--privileged" if spec.privileged else "--security-opt seccomp=unconfined"))
    process.preload(config["linux"].get("seccomp"))
    channels = init.Channels(sync=False)
    console_parent = None
    if spec.tty:
        console_parent, channels.console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    engine = child.MinictRun(spec, str(record.dir), close_early, guard.nodev, ipc, log_fd,
                             console_parent)
    netns = None
    if isinstance(network, networking.Attachment):
        # Made and plugged in before the container's process exists, as
        # podman has netavark plug the namespace it hands to the runtime.
        with kernel.narrator.speaking("engine"):
            netns = networking.new_namespace(kernel)
            try:
                networking.attach(kernel, network, netns)
            except BaseException:
                os.close(netns)
                raise
    pid = _fork_into_namespaces(kernel, record, lambda: child.container_main(
        kernel, config, channels, engine), netns)
    kernel.explain(f"The container's first process is PID {pid} on the host, PID 1 inside")
    channels.parent_side()
    go_write, error_read = channels.go_write, channels.error_read
    try:
        state.write_starting(record, pid, os.getpid(), devices=guard.mechanism,
                             network=network.to_dict() if network else None)
        with kernel.narrator.speaking("engine"):
            if isinstance(network, usernet.UserNet):  # without root: slirp4netns
                usernet.start(kernel, network, pid, record.dir / "slirp4netns.log")
            elif network is not None:
                networking.hosts_for(record, network)
        for joined in (cgroup, guard.v1_cgroup):
            if joined is not None:
                joined.add_pid(pid)
        os.write(go_write, b"g")
        os.close(go_write)
        go_write = None
        master = None
        if spec.tty:
            master = tty.take_master(kernel, console_parent)
            console_parent.close()
        failure = read_all(error_read)
    except BaseException:
        kill_and_reap(kernel, pid)
        raise
    finally:
        if go_write is not None:
            os.close(go_write)
        os.close(error_read)
    if failure:
        os.waitpid(pid, 0)     # (launch removes the cgroups)
        if master is not None:
            os.close(master)
        raise error_from_child(failure)
    state.write_running(record)
    return Started(pid, master)


def _fork_into_namespaces(kernel, record, container_main, plugged: int | None = None) -> int:
    """Fork the container's first process, born in its PID and network
    namespaces; returns its pid (the child runs container_main, never returns).

    Both namespaces are entered here rather than by the child, with the same
    trick: the owner steps into a new one (unshare) or an existing one
    (setns: `plugged`, the network namespace made and plugged in already,
    which this closes; or another container's), forks, and steps back into
    its own. unshare(CLONE_NEWPID) only decides where the *next child* is
    born; CLONE_NEWNET and setns move the owner itself for that moment. So
    the child is in its network namespace from its first instruction.
    """
    spec = record.spec
    if rootless.active():
        return _clone_into_user_namespace(kernel, spec, record.layout.containers.parent,
                                          container_main)
    own_pid = own_net = joined_net = None
    flags, parts = 0, []
    if spec.pid_mode != "host":   # --pid host: it is born in the host's, as minict's children are
        own_pid = kernel.open_namespace("self", "pid", "Hold minict's own PID namespace, to come back")
        flags, parts = sc.CLONE_NEWPID, ["PID namespace (it will be PID 1 there)"]
    if spec.network != "host":
        own_net = kernel.open_namespace("self", "net", "Hold minict's own network namespace, to "
                                                       "come back")
        joined_net = plugged if plugged is not None else networking.joined_namespace(kernel, record)
        if joined_net is None:
            flags |= sc.CLONE_NEWNET
            parts.append("network namespace")
    pid = -1
    try:
        if joined_net is not None:
            whose = "the container's own, plugged in" if plugged is not None else spec.network
            kernel.setns(joined_net, sc.CLONE_NEWNET, f"Step into the network namespace "
                                                      f"({whose}) for the next child to be "
                                                      f"born in", what=f"fd {joined_net}")
        if flags:
            kernel.unshare(flags, f"New {' and '.join(parts)} for the next child")
        pid = kernel.fork("Fork the container's first process")
        if pid == 0:   # the child: container_main ends in execve or os._exit
            for fd in (own_pid, own_net, joined_net):
                if fd is not None:
                    os.close(fd)
            container_main()
    finally:
        if pid != 0:   # the parent, or a failed fork
            if own_pid is not None:
                kernel.setns(own_pid, sc.CLONE_NEWPID, "Back in minict: its later children are "
                                                       "born in the host's PID namespace again",
                             what="open(\"/proc/self/ns/pid\")")
            if own_net is not None:
                kernel.setns(own_net, sc.CLONE_NEWNET, "Back in the host's network namespace",
                             what="open(\"/proc/self/ns/net\")")
            for fd in (own_pid, own_net, joined_net):
                if fd is not None:
                    os.close(fd)
    return pid


def _clone_into_user_namespace(kernel, spec, store_root, container_main) -> int:
    """Without root (rootless.py): the child is born in a new user namespace
    and, owned by it, new PID and network namespaces (--network host: the
    host's); minict writes its id maps while it waits for "go"."""
    id_map = rootless.choose_id_map(kernel, store_root)
    flags = sc.CLONE_NEWUSER | sc.CLONE_NEWPID
    if spec.network != "host":
        flags |= sc.CLONE_NEWNET
    pid = idmap.clone_into_namespaces(
        kernel, flags, "Without root: the first process is born in a new user namespace, and "
                       "in PID and network namespaces that belong to it")
    if pid == 0:
        container_main()   # ends in execve or os._exit
    try:
        idmap.write_maps(kernel, pid, id_map)
    except BaseException:
        kill_and_reap(kernel, pid)
        raise
    return pid


def kill_and_reap(kernel, pid: int) -> None:
    """SIGKILL a child of ours and wait for it, so that no zombie is left
    (a process already gone is fine)."""
    try:
        kernel.kill(pid, signal.SIGKILL, "It cannot go on: kill it")
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
