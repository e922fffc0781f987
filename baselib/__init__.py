"""What minicontainer (minict) and hpcshim both build on: the standard
library only, so that hpcshim, which must install on GPU nodes without a
compiler, can use it as freely as minict.

    errors.py   UserError: a problem the user can act on, as one line and an exit code
    files.py    atomic_write: a file replaced whole or not at all
    inroot.py   open_in_root: a path opened inside a directory as if it were `/`
                (openat2 RESOLVE_IN_ROOT), for container roots and fake host trees
"""
