"""The optional bindings the kernel layer uses, imported when first needed.

- python-prctl (capabilities, no_new_privs...): it compiles against libcap,
  so it is in minict's extra dependencies; the base install (hpcshim,
  minict's image commands) goes without.
- pyroute2 (netlink: links, addresses, routes): an extra dependency too, and
  slow to import (~60 ms, ~8 s in the VM tier): only a container on a
  network needs it.
"""


def prctl():
    import prctl as module  # optional (see above)
    return module


def netlink():
    """(IPRoute, NetlinkError) from pyroute2."""
    from pyroute2 import IPRoute  # optional and slow (see above)
    from pyroute2.netlink.exceptions import NetlinkError  # (as above)
    return IPRoute, NetlinkError
