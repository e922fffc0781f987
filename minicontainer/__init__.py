"""minicontainer: a small container runtime for teaching (the `minict` command).

Read docs/ARCHITECTURE.md for the map. In one sentence: a container is an ordinary Linux
process that the kernel has been asked to see differently (namespaces), with
a different root filesystem (overlayfs + pivot_root), under limits (cgroups).
"""

__version__ = "0.1.0"
