"""The container runtime: from a ContainerSpec to a running process, and back.

One module per concern (youki's layout, in Python):

    state.py        records on disk, locks, the truth about a container's status
    launch.py       the owner's side of starting: PID namespace, fork, sync, cgroup hook
    child.py        the container's side: namespaces, root, security, execve
    rootfs.py       overlayfs root, bind mounts, tmpfs, pivot_root
    mounts.py       /proc, /sys, /etc files, masked and read-only paths
    devices.py      the container's /dev
    gpu.py          hpcshim's GPU Plan -> binds, device nodes, env (--gpu, --gpu-plan)
    security.py     capabilities, user, no_new_privs, fds, cwd (the CVE defences)
    capabilities.py capability names and Docker's default set
    users.py        user[:group] from the image's /etc/passwd and /etc/group
    etcfiles.py     /etc/hostname, /etc/hosts, /etc/resolv.conf contents
    tty.py          the pty from the container's devpts and the relay
    init.py         --init: a reaper as PID 1
    supervisor.py   the owner of a detached container
    lifecycle.py    run, start, stop, kill, rm, logs, inspect, ps
    exec.py         minict exec: join a running container
    recovery.py     minict cleanup: what a SIGKILL left behind

Every kernel-facing call goes through minicontainer.syscalls.Kernel.
"""
