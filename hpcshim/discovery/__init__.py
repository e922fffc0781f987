"""GPU discovery: what the host has, read from files, each item found or skipped.

Every function here takes a HostRoot: the host's filesystem seen under a
prefix (default `/`). Tests point it at a fake driver tree built from real
formats; on a GPU node it is `/`. Nothing here decides *which* GPUs a job
gets (that is hpcshim.selection) or how a runtime injects them (backends).

- hostroot:  path joining and symlink resolution that stays inside the prefix
- liblists:  the nvliblist/rocmliblist name lists, and a site's extension
- libraries: ld.so.cache lookup + driver-version directory scan + ELF filter
- devices:   device nodes (stat), and which of them this process may open
- nvidia:    driver version, GPUs, binaries, firmware, sockets, ICD files
- rocm:      /dev/kfd, render nodes, the ROCm library list
- inventory: one host-wide Inventory (cached when that is safe)
"""
