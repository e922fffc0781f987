"""Starting the container's first process, from the owner's side.

The owner is the process that looks after a container while it runs: the
foreground `minict run`, or the supervisor of a detached one. It

1. makes the sync channels (a "go" pipe, an error pipe, and for -t a unix
   socket to receive the pty master),
2. decides where the container's cgroup goes (resources.cgroup_home) and
   what holds its device rules (device_access.plan: an eBPF program on
   that cgroup, a cgroup v1 devices cgroup, or nodev when there is
   none), so the child is forked knowing which; takes an address on its
   network (networking.prepare),
3. makes the container's network namespace and plugs it into its network
   (veth, address, route, published ports), holding it by an fd, before
   the container's process exists, as podman has netavark do;
4. turns the container into config.json (bundle.py: the engine's half),
   naming that namespace by its path, /proc/OWNER/fd/N, and its cgroup
   by cgroupsPath; then the runtime's half, the code minict-oci's create
   runs: the cgroup with its limits and device filter (oci/cgroup.py
   prepare), and the child, the runtime's init (child.py runs
   oci/init.py), forked with the runtime's own fork (oci/create.py
   fork_init: PID 1 of a new PID namespace; without root, cloned into a
   user namespace whose maps the config holds); records its pid and
   moves it into the cgroup while it is still waiting, so not one
   instruction of the container's code runs outside its limits, its
   device rules or its network,
5. says "go", then reads the error pipe: end-of-file means execve
   succeeded (the pipe is close-on-exec); a JSON line means the child
   failed and says why.
"""

import os
import signal
import socket
from dataclasses import dataclass

from ..errors import MinictError
from .. import syscalls as sc
from ..oci import cgroup as oci_cgroup, create, init, process
from . import (bundle, child, device_access, joining, networking, rootless, state, syscall_filter,
               tty, usernet)
from .command import error_from_child, read_all
from .resources import cgroup_home, cgroups_path_of


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
    with kernel.narrator.speaking("runtime"):   # (the engine's steps say "engine")
        return _launch(kernel, record, log_fd, close_early)


def _launch(kernel, record, log_fd, close_early) -> Started:
    engine = record.engine
    with kernel.narrator.speaking("engine"):
        home = cgroup_home(kernel, engine)
        guard = device_access.plan(kernel, engine, has_cgroup=home is not None)
    made = []    # the cgroups made for it, removed again if it does not start
    network = ipc = None
    try:
        guard = device_access.make_v1_cgroup(kernel, guard, engine.id)
        made.append(guard.v1_cgroup)
        ipc = joining.joined_ipc(kernel, record)
        network = networking.prepare(record) or usernet.prepare(record)
        return _fork_and_start(kernel, record, home, guard, made, network, ipc, log_fd,
                               close_early)
    except BaseException:
        _drop_cgroups(*made)
        if isinstance(network, networking.Attachment):
            with kernel.narrator.speaking("engine"):
                networking.detach(kernel, record)
        raise
    finally:
        if ipc is not None:
            ipc.close()


def _fork_and_start(kernel, record, home, guard, made, network, ipc, log_fd,
                    close_early) -> Started:
    held = {}   # namespaces the engine holds for the runtime to join: {type: fd}
    try:
        config = _write_config(kernel, record, home, guard, network, ipc, held)
        # The runtime's half from here: the same code minict-oci's create runs.
        cgroup = None
        if home is not None:
            cgroup = oci_cgroup.prepare(kernel, config, record.id, within=home,
                                        device_filter=guard.mechanism == device_access.EBPF)
            made.append(cgroup)
        return _start_with(kernel, record, config, guard, cgroup, network, ipc, log_fd,
                           close_early)
    finally:
        for fd in held.values():
            os.close(fd)


def _write_config(kernel, record, home, guard, network, ipc, held) -> dict:
    """The engine's half: the container's config.json with what this start
    adds (bundle.for_start), written into its record (what `inspect
    --bundle` shows), the network namespace it joins made and plugged
    first, and held in `held`."""
    engine = record.engine
    with kernel.narrator.speaking("engine"):
        _hold_network_namespace(kernel, record, network, held)
        id_map = (rootless.choose_id_map(kernel, record.layout.containers.parent)
                  if rootless.active() else None)
        joined = dict(held)
        if ipc is not None:          # (held open by `ipc`, closed by _launch)
            joined["ipc"] = ipc.ipc_fd
        cgroups_path = cgroups_path_of(home, engine.id) if home is not None else None
        config = bundle.for_start(record.config, engine, id_map=id_map, cgroups_path=cgroups_path,
                                  console_size=tty.size_of(0), nodev=guard.nodev,
                                  joined={kind: f"/proc/{os.getpid()}/fd/{fd}"
                                          for kind, fd in joined.items()})
        state.write_json(record.bundle_config_file, config)
        if not syscall_filter.confined(engine):     # say why the runtime will load none
            kernel.explain("No linux.seccomp written into config.json: " + (
                "--privileged" if engine.privileged else "--security-opt seccomp=unconfined"))
    return config


def _start_with(kernel, record, config, guard, cgroup, network, ipc, log_fd,
                close_early) -> Started:
    terminal = config["process"]["terminal"]
    process.preload(config["linux"].get("seccomp"))
    channels = init.Channels(sync=False)
    console_parent = None
    if terminal:
        console_parent, channels.console = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    minict_run = child.MinictRun(record.engine, str(record.dir), close_early, guard.nodev, ipc,
                                 log_fd, console_parent)
    pid = create.fork_init(kernel, config, lambda: child.container_main(
        kernel, config, channels, minict_run))
    kernel.explain(f"The container's first process is PID {pid} on the host"
                   + (", PID 1 inside" if record.engine.pid_mode != "host" else ""))
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
        if terminal:
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


def _hold_network_namespace(kernel, record, network, held: dict) -> None:
    """The network namespace the container joins, when it exists before it:
    made and plugged into its network now, before the container's process
    exists, as podman has netavark plug the namespace it then names in
    config.json; or --network container:NAME's. Held open in `held` until
    the container's first process has joined it (config.json names it by
    this fd: bundle.namespaces_of)."""
    if isinstance(network, networking.Attachment):
        held["network"] = networking.new_namespace(kernel)
        networking.attach(kernel, network, held["network"])
        return
    joined = networking.joined_namespace(kernel, record)
    if joined is not None:
        held["network"] = joined


def kill_and_reap(kernel, pid: int) -> None:
    """SIGKILL a child of ours and wait for it, so that no zombie is left
    (a process already gone is fine)."""
    try:
        kernel.kill(pid, signal.SIGKILL, "It cannot go on: kill it")
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
