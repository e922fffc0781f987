"""What kind of image IMAGE names, from its spelling and (for a plain file) its content.

    DIR                          a root filesystem directory (or Apptainer sandbox)
    FILE.sif, docker://..., ...  passed to the runtime untouched, as before
    oci-archive:PATH[:NAME]      an OCI image layout in a tar (skopeo, buildah, minict save --format oci)
    docker-archive:PATH[:NAME]   `docker save` output (classic, or Docker 25+'s)
    PATH.tar (any tar file)      one of the two, told apart by content: an archive with
                                 `oci-layout` and `index.json` is an OCI archive, one with
                                 only `manifest.json` a docker archive
    oci:DIR[:NAME]               an OCI image layout directory
    minict:NAME[:TAG]            an image in minict's store (`minict images`)

The prefixes are the transport names Apptainer, skopeo and podman already use
(containers/image), so what a user types for one tool works for the other.
minict's images get a prefix of their own, `minict:`, rather than a bare
`busybox`: a bare word is also a relative directory name and, to Apptainer,
nothing at all, and hpcshim must know which store to ask before it asks.
(With `--runtime minict` a bare name still goes to minict untouched.)
NAME picks one image from an archive or layout that holds several (a tag such
as `busybox:latest`); PATH may itself contain `:`, so the split is only made
when the whole text is not an existing path.
"""

import os

from ..errors import BadArgument, ImageNotFound, NotAnImage

ARCHIVE_PREFIXES = {"oci-archive:": "oci-archive", "docker-archive:": "docker-archive",
                    "oci:": "oci-layout"}


class ImageRef:
    # A plain class, not a dataclass: this module is imported on every
    # `hpcshim exec`, and dataclasses pulls in `inspect` (milliseconds).
    def __init__(self, kind: str, text: str, path: str = "", name: str = ""):
        self.kind = kind    # directory | other | oci-archive | docker-archive | oci-layout | minict
        self.text = text    # what the user wrote
        self.path = path    # the archive file or layout directory
        self.name = name    # the image to pick inside it, or minict's NAME[:TAG]

    @property
    def is_oci_layout(self) -> bool:
        """An OCI image layout (directory or tar), as opposed to docker's format."""
        return self.kind in ("oci-archive", "oci-layout")


def parse(text: str) -> ImageRef:
    for prefix, kind in ARCHIVE_PREFIXES.items():
        if text.startswith(prefix):
            path, name = _split_name(text[len(prefix):])
            _must_exist(path, text, directory=kind == "oci-layout")
            return ImageRef(kind, text, path, name)
    if text.startswith("minict:"):
        name = text[len("minict:"):]
        if not name:
            raise BadArgument("minict: needs an image name", hint="for example minict:busybox or minict:app:1.0")
        return ImageRef("minict", text, name=name)
    if "://" in text:
        return ImageRef("other", text)        # docker://, library://, oras://: the runtime's business
    if os.path.isdir(text):
        return ImageRef("directory", text, path=text)
    if os.path.isfile(text):
        kind = sniff_archive(text)
        return ImageRef(kind, text, path=text) if kind else ImageRef("other", text, path=text)
    if text.endswith(".tar"):
        _must_exist(text, text, directory=False)
    return ImageRef("other", text)            # e.g. a name minict knows (--runtime minict busybox)


def sniff_archive(path: str) -> str | None:
    """'oci-archive', 'docker-archive', or None for a file that is not a tar
    (a SIF, a squashfs...). A tar that is neither kind is an error."""
    import tarfile  # only to look inside a file given as IMAGE (slow to import)
    try:
        if not tarfile.is_tarfile(path):
            if path.endswith(".tar"):
                raise NotAnImage(f"{path} is not a tar archive", hint="give an OCI or docker archive, "
                                 "a directory or a SIF file")
            return None
        with tarfile.open(path, "r:*") as tar:
            names = {n[2:] if n.startswith("./") else n for n in tar.getnames()}
    except (OSError, tarfile.TarError) as exc:
        raise NotAnImage(f"cannot read {path}: {exc}", hint="is the archive complete?") from exc
    if "oci-layout" in names and "index.json" in names:
        return "oci-archive"      # Docker 25+ archives have both; their OCI side is the full one
    if "manifest.json" in names:
        return "docker-archive"
    raise NotAnImage(f"{path} is a tar file but neither an OCI archive (no oci-layout, index.json) "
                     "nor a docker archive (no manifest.json)",
                     hint="create it with `docker save`, `skopeo copy ... oci-archive:` or `minict save`")


def _split_name(rest: str) -> tuple[str, str]:
    """PATH[:NAME] -> (PATH, NAME); a PATH that exists as written wins."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, ""
    path, _, name = rest.rpartition(":")
    if os.path.exists(path):
        return path, name
    head, _, tail = path.rpartition(":")      # PATH:NAME:TAG (a name with a tag)
    if head and os.path.exists(head):
        return head, f"{tail}:{name}"
    return rest, ""


def _must_exist(path: str, text: str, directory: bool) -> None:
    if not path:
        raise BadArgument(f"{text!r} names no file", hint="for example oci-archive:/path/image.tar")
    if not os.path.exists(path):
        raise ImageNotFound(f"image {path} does not exist", hint="check the path (relative to "
                            f"{os.getcwd()})")
    if directory and not os.path.isdir(path):
        raise NotAnImage(f"oci:{path} is not a directory", hint="use oci-archive: for a tar file")
    if not directory and os.path.isdir(path):
        raise NotAnImage(f"{text} is a directory, not an archive",
                         hint="use oci:DIR for an OCI layout directory, or the directory itself "
                              "for a root filesystem")
