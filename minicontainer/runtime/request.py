"""`minict run`'s command line, parsed once, at its edge, into one typed request.

click hands the CLI a dict of its parameters. cli/containers.py turns it
into a RunRequest here, and from then on the engine reads named, typed,
read-only fields (run.py, rootless.check_request, gpu flags, the limits,
create.container_from), never a dict handed along and popped from. What a
flag's value means is checked where it is used (flags.py: docker's rules;
the limits: resources.limits_from_flags), before anything is made.
"""

import dataclasses
from dataclasses import dataclass, field

from ..cgroups.limits import RESOURCE_FLAGS


@dataclass(frozen=True, kw_only=True)
class RunRequest:
    """`minict run [FLAGS] IMAGE [COMMAND...]`, as typed (click's names).
    Multiple-value flags are tuples; a flag not given is its default."""
    image: str
    command: tuple[str, ...] = ()
    # the process
    entrypoint: str | None = None            # --entrypoint ("" drops the image's)
    env: tuple[str, ...] = ()                 # -e NAME=value, -e NAME
    env_file: tuple[str, ...] = ()
    workdir: str | None = None                # -w
    user: str | None = None                   # -u NAME|UID[:GROUP|GID]
    tty: bool = False                         # -t
    interactive: bool = False                 # -i
    init: bool = False                        # --init
    ulimit: tuple[str, ...] = ()
    # the container's life
    name: str | None = None
    detach: bool = False                      # -d
    auto_remove: bool = False                 # --rm
    label: tuple[str, ...] = ()
    # its files
    volume: tuple[str, ...] = ()              # -v
    tmpfs: tuple[str, ...] = ()
    mount: tuple[str, ...] = ()
    read_only: bool = False
    # its privileges
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    security_opt: tuple[str, ...] = ()
    # devices and GPUs
    device: tuple[str, ...] = ()
    gpu: str | None = None                    # --gpu[=MODE]
    gpus: str | None = None                   # docker's --gpus
    gpu_plan: str | None = None               # an hpcshim Plan file
    # namespaces and the network
    hostname: str | None = None
    network: str = "bridge"
    network_given: bool = True                # False: --network left at its default
    publish: tuple[str, ...] = ()             # -p
    publish_all: bool = False                 # -P
    add_host: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    ipc: str = "private"
    shm_size: str | None = None
    pid: str = "private"
    # cgroup limits, as given (--memory, --cpus...: cgroups.limits.RESOURCE_FLAGS)
    resources: dict = field(default_factory=dict)

    @classmethod
    def from_flags(cls, image: str, command, flags: dict) -> "RunRequest":
        """From click's parameters of `minict run` (a flag not given: None,
        or an empty tuple for a multiple one)."""
        flags = dict(flags)
        resources = {name: flags.pop(name) for name in RESOURCE_FLAGS if name in flags}
        given = {name: tuple(value) if isinstance(value, list) else value
                 for name, value in flags.items() if value is not None}
        return cls(image=image, command=tuple(command), **given,
                   resources={name: value for name, value in resources.items()
                              if value not in (None, (), [], "")})

    def replace(self, **changes) -> "RunRequest":
        return dataclasses.replace(self, **changes)
