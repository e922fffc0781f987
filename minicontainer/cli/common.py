"""What the container commands share: the root check and a narrated Kernel."""

import os

from ..errors import NotRoot
from ..syscalls import Kernel, Narrator


def need_root(what: str) -> None:
    """Containers, their state and their processes belong to root."""
    if os.geteuid() != 0:
        raise NotRoot(f"minict {what} needs root (containers run as root, in namespaces)",
                      f"run it as root: sudo minict {what} ...")


def need_root_or_own_store(config, what: str) -> None:
    """ps, inspect, logs, stop, kill, rm, exec, port: root, or a user on a store of their own.

    Without root `minict run` works in the user's own store and state dir
    (runtime/rootless.py), and its containers are the user's own processes
    and files. Listing, signalling and removing them must work without
    root too: else a container `run --name NAME` made could never be
    removed, and NAME would stay taken (NameInUse says "minict rm NAME",
    which then needed root). Root's store stays root's: needs root."""
    refused = None if os.geteuid() == 0 else config.not_writable()
    if refused is not None:
        _, path = refused
        raise NotRoot(f"minict {what} on {path} needs root: it is not writable by uid "
                      f"{os.geteuid()}", "use a store of your own (without root the default "
                      "is ~/.local/share/minict; or --root/--state), or run it as root")


def kernel_for(config):
    """The kernel layer, narrating when --explain asked for it."""
    return Kernel(Narrator(config.explain))
