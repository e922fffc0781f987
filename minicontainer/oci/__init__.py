"""minict-oci: the runtime half, a bundle (rootfs + config.json) -> a process.

The OCI runtime spec is the contract: an engine (podman, containerd,
`minict run` in time) writes the bundle; this package makes it a process,
driven by runc's command line (minicontainer/oci_cli.py). It knows no image, no
container name and no network: only the bundle and its state directory.

  config.py     config.json read whole and checked: BadConfig / UnsupportedConfig, one
                line naming the field, before anything is made
  fields.py     each value's JSON type checked, the field named in the error
  seccomp.py    linux.seccomp (the spec's profile format) -> a libseccomp filter
  sysctl.py     linux.sysctl: only the keys a namespace of the container's own keeps
  resources.py  linux.resources checked: the limits cgroup.py sets, the others refused
  state.py      ROOT/ID/state.json and exec.fifo; the status read from the kernel
  create.py     create: the state dir, the cgroup, init forked into its namespaces;
                run: create, start, wait, delete
  init.py       the container's side, from fork to execve (mounts, devices, pivot_root,
                masked paths, the console socket, waiting on exec.fifo)
  mounts.py     config.json mounts (flags, propagation, data; binds) and linux.devices
  process.py    rlimits, oomScoreAdj, user, capability sets, seccomp, cwd, execve
  idmaps.py     linux.uidMappings/gidMappings of a new user namespace
  cgroup.py     cgroupsPath and resources, on cgroup v2 (minicontainer/cgroups writes);
                pause/resume, update
  hooks.py      prestart, createRuntime, createContainer, startContainer, poststart,
                poststop
  lifecycle.py  start (exec.fifo opened: init goes on to execve), kill, delete, ps, list:
                the steps after create, which import none of create's modules
  exec.py       exec: another process in a running container
  defaults.py   `spec` (runc's starting config.json) and `features`
"""
