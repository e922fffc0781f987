"""`minict save`: write images from the store to a tar archive that
`docker load`, `podman load`, skopeo, umoci and `minict load` read.

Both formats are an OCI image layout in a tar (image-spec image-layout.md:
`oci-layout`, `index.json`, `blobs/sha256/<hex>`):

- `docker` (the default) is what `docker save` writes since Docker 25: the
  layout, plus the files older loaders read, `manifest.json` (per image:
  Config, RepoTags, and Layers as paths to the blobs) and `repositories`.
  index.json names each image as docker does, with containerd's
  `io.containerd.image.name` (the full reference) and
  `org.opencontainers.image.ref.name` (just the tag).
- `oci` is an oci-archive as skopeo and podman write it: the layout alone,
  each name in `org.opencontainers.image.ref.name` as a full reference, so
  `skopeo inspect oci-archive:FILE:docker.io/library/busybox:latest` and
  `umoci unpack --image DIR:docker.io/library/busybox:latest` find it.
  Tools expect OCI manifests in an OCI layout, so a Docker v2 manifest is
  rewritten with the matching OCI media types, as `skopeo copy` to `oci:`
  does. The config and layer blobs, and so the image ID, stay the same.

The blobs are the store's own (blobs/sha256): layers go out exactly as they
were pulled or loaded, never recompressed, and in the docker format each
image keeps its manifest digest.

Which names go in follows docker save: NAME:TAG writes that name; a NAME
without a tag writes every tag the store has in that repository; an image
given by ID or digest goes in without a name, and loads untagged.

With -o, the archive goes to a temp file in the same directory, renamed into
place only when complete: a failure leaves neither half an archive nor the
temp file. Standard output cannot give that guarantee.
"""

import errno
import io
import json
import os
import tarfile
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from baselib.files import TEMP_MARK

from . import mediatypes as mt
from ..errors import BadArgument, BadReference, MissingBlob, OutputNotWritable
from ..fsutil import raise_if_disk_full, sha256_bytes
from .archive import CONTAINERD_NAME, OCI_REF_NAME
from .reference import Reference, parse
from .store import Image, Store

FORMATS = ("docker", "oci")

# Docker v2 media types and their OCI equivalents (image-spec media-types.md,
# "Compatibility Matrix"). A type not listed is already an OCI one.
DOCKER_TO_OCI = {
    mt.DOCKER_MANIFEST: mt.OCI_MANIFEST,
    mt.DOCKER_CONFIG: mt.OCI_CONFIG,
    mt.DOCKER_LAYER: mt.OCI_LAYER,
    mt.DOCKER_LAYER_GZIP: mt.OCI_LAYER_GZIP,
    mt.DOCKER_LAYER_FOREIGN_GZIP: mt.OCI_LAYER_NONDIST_GZIP,
}


@dataclass
class SavedImage:
    """One image to write, and the names to write it under."""
    image: Image
    names: list[Reference] = field(default_factory=list)


@dataclass
class Archive:
    """Everything an archive will hold, worked out before a byte is written,
    so that a missing blob is found before any output exists.

    files: oci-layout, index.json (and manifest.json, repositories), by name.
    blobs: by digest, the store's file, or bytes made here (the manifests;
    one rewritten for OCI exists nowhere else)."""
    files: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, Path | bytes] = field(default_factory=dict)


# ---- entry points -----------------------------------------------------------------

def save_to_file(store: Store, refs: list[str], path: Path, fmt: str = "docker") -> None:
    """Write the images `refs` name to the file `path`, whole or not at all."""
    _check_format(fmt)
    path = Path(path)
    _check_output(path)
    with store.keep_content():
        archive = plan_archive(store, refs, fmt)
        with _replace_when_complete(path) as out:
            write_tar(archive, out)


def save_to_stream(store: Store, refs: list[str], stream, fmt: str = "docker") -> None:
    """Write the images `refs` name to a binary stream (standard output;
    the CLI refuses a terminal, as docker does)."""
    _check_format(fmt)
    with store.keep_content():
        archive = plan_archive(store, refs, fmt)
        try:
            write_tar(archive, stream)
        except OSError as exc:
            raise_if_disk_full(exc, "writing the archive to standard output")


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise BadArgument(f"unknown archive format {fmt!r}",
                          "use --format docker (docker save's, the default) or --format oci")


def _check_output(path: Path) -> None:
    if not path.parent.is_dir():
        raise OutputNotWritable(f"cannot write {path}: directory {path.parent} does not exist",
                                "create it first, or give -o a file in an existing directory")
    if path.is_dir():
        raise OutputNotWritable(f"cannot write {path}: it is a directory",
                                "give -o a file name, e.g. -o images.tar")


# ---- which images, under which names ----------------------------------------------

def choose_images(store: Store, refs: list[str]) -> list[SavedImage]:
    """The images `refs` name, each once (in the order first named), with
    every name it is to be written under."""
    chosen: dict[str, SavedImage] = {}  # by manifest digest
    for text in refs:
        for image, name in _matches(store, text):
            saved = chosen.setdefault(image.manifest_digest, SavedImage(image))
            if name is not None and name not in saved.names:
                saved.names.append(name)
    return list(chosen.values())


def _matches(store: Store, text: str) -> list[tuple[Image, Reference | None]]:
    """(image, name to write, or None) for one argument, by docker save's rules."""
    name = _parse_or_none(text)
    if name is not None and _repository_only(text):
        # `busybox` alone: every tag of the repository, if it has any.
        tagged = []
        for image in store.images():
            for other in map(parse, image.names):
                if other.name == name.name and other.tag and not other.digest:
                    tagged.append((image, other))
        if tagged:
            return tagged
    image = store.resolve(text)  # a name, name@digest, digest or ID prefix; else ImageNotFound
    if name is not None and str(name) in image.names:
        return [(image, name)]
    return [(image, None)]  # given by ID or digest: written without a name


def _parse_or_none(text: str) -> Reference | None:
    try:
        return parse(text)
    except BadReference:
        return None  # an ID such as sha256:<hex>; the store resolves it


def _repository_only(text: str) -> bool:
    """True for `busybox` or `localhost:5000/app`, which reference.parse
    completes with :latest; False when a tag or a digest was written."""
    return "@" not in text and ":" not in text.rpartition("/")[2]


# ---- what the archive holds -----------------------------------------------------------

def plan_archive(store: Store, refs: list[str], fmt: str) -> Archive:
    """Choose the images and lay out the archive in format `fmt`."""
    archive = Archive()
    index_entries, docker_entries, repositories = [], [], {}
    for saved in choose_images(store, refs):
        manifest_bytes = store.read_blob(saved.image.manifest_digest)
        if fmt == "oci":
            manifest_bytes = as_oci_manifest(manifest_bytes)
        manifest = json.loads(manifest_bytes)
        manifest_digest = sha256_bytes(manifest_bytes)
        archive.blobs[manifest_digest] = manifest_bytes
        for blob in [manifest["config"], *manifest["layers"]]:
            archive.blobs[blob["digest"]] = _store_blob(store, blob["digest"], saved.image)

        descriptor = {"mediaType": manifest.get("mediaType", mt.OCI_MANIFEST),
                      "digest": manifest_digest, "size": len(manifest_bytes)}
        platform = _platform(saved.image.config)
        if platform:
            descriptor["platform"] = platform
        index_entries += _named_descriptors(descriptor, saved.names, fmt)

        if fmt == "docker":
            docker_entries.append({
                "Config": _blob_name(manifest["config"]["digest"]),
                # null for an image saved by ID, as docker writes it
                "RepoTags": [name.familiar() for name in saved.names] or None,
                "Layers": [_blob_name(layer["digest"]) for layer in manifest["layers"]],
            })
            # The old format's "repositories": repository -> tag -> top layer
            # (docker 25 puts the name of the top layer's blob there).
            top = (manifest["layers"] or [manifest["config"]])[-1]["digest"]
            for name in saved.names:
                repositories.setdefault(name.familiar_name(), {})[name.tag] = \
                    top.partition(":")[2]

    archive.files["oci-layout"] = _json({"imageLayoutVersion": "1.0.0"})
    archive.files["index.json"] = _json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX,
                                         "manifests": index_entries})
    if fmt == "docker":
        archive.files["manifest.json"] = _json(docker_entries)
        if repositories:  # docker leaves it out when no image has a name
            archive.files["repositories"] = _json(repositories)
    return archive


def _named_descriptors(descriptor: dict, names: list[Reference], fmt: str) -> list[dict]:
    """index.json entries for one manifest: one per name (the same digest
    each time), or one without a name."""
    if not names:
        return [descriptor]
    entries = []
    for name in names:
        if fmt == "docker":
            annotations = {CONTAINERD_NAME: str(name), OCI_REF_NAME: name.tag}
        else:
            annotations = {OCI_REF_NAME: str(name)}
        entries.append(dict(descriptor, annotations=annotations))
    return entries


def as_oci_manifest(manifest_bytes: bytes) -> bytes:
    """The manifest with OCI media types: the same bytes (and digest) when
    it has them already; rewritten when it is a Docker v2 manifest."""
    manifest = json.loads(manifest_bytes)
    if manifest.get("mediaType", mt.OCI_MANIFEST) == mt.OCI_MANIFEST:
        return manifest_bytes
    converted = dict(manifest, mediaType=mt.OCI_MANIFEST)
    converted["config"] = _as_oci_descriptor(manifest["config"])
    converted["layers"] = [_as_oci_descriptor(layer) for layer in manifest["layers"]]
    return json.dumps(converted, indent=3).encode()


def _as_oci_descriptor(descriptor: dict) -> dict:
    media_type = descriptor["mediaType"]
    return dict(descriptor, mediaType=DOCKER_TO_OCI.get(media_type, media_type))


def _store_blob(store: Store, digest: str, image: Image) -> Path:
    path = store.blob_path(digest)
    if not path.is_file():
        label = parse(image.names[0]).familiar() if image.names else image.id
        raise MissingBlob(f"blob {digest} of image {label} is not in the store",
                          "it was lost, or the store holds that layer as another image "
                          "brought it; remove the images sharing it and load or pull this "
                          "one again")
    return path


def _platform(config: dict) -> dict | None:
    """The descriptor's platform, from the image config (image-index.md)."""
    if not config.get("architecture") or not config.get("os"):
        return None
    platform = {"architecture": config["architecture"], "os": config["os"]}
    if config.get("variant"):
        platform["variant"] = config["variant"]
    return platform


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest.partition(':')[2]}"


def _json(value) -> bytes:
    return json.dumps(value, indent=2).encode()


# ---- writing ----------------------------------------------------------------------------

def write_tar(archive: Archive, out) -> None:
    """Write the archive as a tar to `out`, strictly in order (stream mode:
    a pipe cannot seek). The small files come first, then the blobs. Every
    member has owner 0, mode 0644 (0755 for directories) and mtime 0, so the
    same images always give the same bytes."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, data in archive.files.items():
            tar.addfile(_member(name, len(data)), io.BytesIO(data))
        for directory in ("blobs", "blobs/sha256"):
            tar.addfile(_member(directory, 0, tarfile.DIRTYPE))
        for digest in sorted(archive.blobs):
            content = archive.blobs[digest]
            if isinstance(content, bytes):
                tar.addfile(_member(_blob_name(digest), len(content)), io.BytesIO(content))
            else:
                with open(content, "rb") as blob:
                    size = os.fstat(blob.fileno()).st_size
                    tar.addfile(_member(_blob_name(digest), size), blob)


def _member(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime = kind, size, 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


@contextmanager
def _replace_when_complete(path: Path):
    """Yield a file that becomes `path` only when the with-block ends
    without error: a temp file in the same directory (named the way
    baselib.files names its own, so `stale_temp_files` recognises one a
    SIGKILL left), fsynced, then renamed over `path`. rename(2) in one
    directory is atomic: `path` is the old file or the whole new one. On any
    error the temp file is removed. Like docker's, the file is 0600: an
    image may hold secrets."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent,
                                   prefix=f".{path.name}{TEMP_MARK}{os.getpid()}-")
    except OSError as exc:  # not even the temp file: read-only, not allowed, or full
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise OutputNotWritable(f"cannot create a file in {path.parent} ({exc.strerror})",
                                    "give -o a path in a directory you can write to") from exc
        raise_if_disk_full(exc, f"creating {path}")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())  # the rename must not land before the data
        os.rename(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise_if_disk_full(exc, f"writing {path}")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

