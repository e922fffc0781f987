"""Images: what a container is made from.

    resolve(config, ref)  the front door: the image `ref` names, from the
                          store, pulled from its registry first if it is not
                          there (what `minict run` does with its IMAGE)

One module per job:

    reference.py    docker's image names: busybox -> docker.io/library/busybox:latest
    platforms.py    os/arch[/variant], and picking one from an image index
    mediatypes.py   the OCI and docker media types minict reads
    store.py        content-addressed blobs, one directory per layer, names
    ingest.py       adding to the store: blobs, layers, images, verified, renamed into place
    blob_reader.py  reading a layer blob: its compression, both of its digests, a size cap
    extract.py      writing a layer's tar into its directory, safely
    whiteouts.py    a layer's whiteouts, as overlayfs' own forms (once, at unpack)
    archive.py      `minict load`: docker save archives, oci-archives, OCI layouts
    importer.py     `minict import`: a root filesystem directory or tar as an image
    export.py       `minict save`: docker or oci archives, from the blobs as stored
    pull.py         `minict pull`: from a registry, through registry/
    push.py         `minict push`: to a registry
"""

import sys

from ..errors import ImageNotFound, MinictError
from .reference import parse
from .store import Image, Store


def resolve(config, ref: str) -> Image:
    """The image `ref` names: from the store, or pulled first (as `docker run` does).

    A malformed name is that error (BadReference), not a reason to pull.
    A failed pull keeps its own error class (and exit code) and says why it
    was tried."""
    store = Store(config.root)
    try:
        return store.resolve(ref)
    except ImageNotFound as missing:
        parse(ref)
        not_here = missing
    try:
        from .pull import pull   # the registry client (requests): only when a pull is needed
    except ImportError:
        raise ImageNotFound(not_here.message, "load or import it first (minict load, minict "
                            "import); pulling needs minict's extra: pip install '.[minict]'") \
            from None
    print(f"Unable to find image '{ref}' locally", file=sys.stderr, flush=True)
    try:
        return pull(store, ref, platform=None)
    except MinictError as failed:
        raise type(failed)(f"image {ref} is not in the store, and pulling it failed: "
                           f"{failed.message}", failed.hint) from None
