"""What the container commands share: the root check and a narrated Kernel."""

import os

from ..errors import NotRoot


def need_root(what: str) -> None:
    """Containers, their state and their processes belong to root."""
    if os.geteuid() != 0:
        raise NotRoot(f"minict {what} needs root (containers run as root, in namespaces)",
                      f"run it as root: sudo minict {what} ...")


def kernel_for(config):
    """The kernel layer, narrating when --explain asked for it."""
    from ..syscalls import Kernel, Narrator
    return Kernel(Narrator(config.explain))
