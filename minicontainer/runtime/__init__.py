"""minict run's engine and its side of the runtime: from an image and flags
to a container's config.json, to a running process, and back.

One module per concern (youki's layout, in Python):

  the commands
    run.py            minict run: flags -> limits, GPUs, image, create -> lifecycle.run
    lifecycle.py      run, start, stop, kill, rm, logs, inspect, ps
    exec.py           minict exec: join a running container
    recovery.py       minict cleanup: what a SIGKILL left behind
  what a container is
    request.py        the flags of minict run, typed once (RunRequest)
    create.py         image + flags -> config.json and the engine's record, checked once
    flags.py          what each flag means: -v, --tmpfs, --device, -e, the command...
    docker_flags.py   --ulimit --mount --ipc --pid --shm-size --add-host --dns --label --gpus
    bundle.py         config.json, one function per concern; what each start adds
    engine_record.py  EngineRecord: what the engine keeps that config.json has no field for
    state.py          records on disk, locks, the truth about a container's status
    process.py        a pid with its start time; pidfds
  starting it
    launch.py         the owner's side: cgroup, device rules, network, fork, sync
    child.py          the container's side: namespaces, root, security, execve
    rootfs.py         overlayfs root, mount points, bind mounts, tmpfs, pivot_root
    mounts.py         /proc, /sys, /etc files, masked and read-only paths
    devices.py        the container's /dev
    device_access.py  which devices it may open, and what enforces that
    security.py       capabilities, user, no_new_privs, fds, cwd (the CVE defences)
    capabilities.py   capability names and Docker's default set
    syscall_filter.py the seccomp filter
    users.py          user[:group] from the image's /etc/passwd and /etc/group
    etcfiles.py       /etc/hostname, /etc/hosts, /etc/resolv.conf contents
    command.py        finding and exec'ing the command; exit codes; signal forwarding
    reaper.py         --init: a reaper as PID 1
    gpu.py            hpcshim's GPU Plan -> binds, device nodes, env (--gpu, --gpu-plan)
    tty.py            the pty from the container's devpts, and the relay
  around it
    networking.py     a container's network: prepare, attach, detach, orphans
    joining.py        --network/--ipc container:NAME: another container's namespaces
    resources.py      the runtime's side of cgroups: limits, the cgroup's home, its end
    supervisor.py     the owner of a detached container
  without root
    rootless.py       a user namespace first: id maps, --device binds, what is refused
    usernet.py        --network slirp4netns

Every kernel-facing call goes through minicontainer.syscalls.Kernel
(tests/test_boundaries.py checks it).
"""
