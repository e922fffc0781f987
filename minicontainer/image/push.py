"""`minict push`: upload an image from the store to its registry.

The image's name says where it goes: `127.0.0.1:5000/team/app:1.0` is tag
`1.0` of repository `team/app` on the registry `127.0.0.1:5000`. The steps
(OCI distribution-spec "Push"):

1. Find the image in the store under that name, before any network.
2. For each layer blob, then the config blob: HEAD it in the repository
   ("Checking if content exists in the registry"). A blob the registry
   has is skipped, so pushing an unchanged image again uploads nothing
   but its manifest.
3. Upload the others (registry/client.py `upload_blob`): POST opens an
   upload session; a blob up to UPLOAD_CHUNK bytes goes in one PUT
   ("monolithic"), a bigger one in PATCH chunks and a closing PUT.
4. PUT the manifest last: a registry refuses a manifest whose blobs it
   does not have. It goes as the exact bytes the store holds, with its own
   media type, because its digest (the image's digest, what a pull by
   digest asks for) is the sha256 of those bytes: re-serialising the JSON
   would make another image.

Blobs are read from the store's blobs/sha256/, where load, import and pull
keep them; nothing is recompressed, so the registry gets the very blobs the
manifest names. Cross-repository mounting (`?mount=&from=`) is not used.
"""

import sys
from dataclasses import dataclass, field

from . import mediatypes as mt
from ..errors import BadReference, ImageNotFound, MissingBlob
from .pull import Reporter
from .reference import DEFAULT_REGISTRY, Reference, parse
from .registry import RegistryClient
from .registry.client import check_descriptor
from .registry.endpoint import DOCKER_HUB_ALIASES
from .store import Image, Store

# Blobs up to this size go in one request; bigger ones in chunks of it.
UPLOAD_CHUNK = 32 * 1024 * 1024


@dataclass
class PushResult:
    """What a push did: the manifest's digest and size, and which blobs
    were sent or already there (by digest)."""
    reference: Reference
    digest: str
    size: int
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def push(store: Store, ref: str, *, insecure=(), out=sys.stdout,
         chunk_size: int = UPLOAD_CHUNK) -> PushResult:
    """Push the image named `ref` to the registry its name starts with.

    insecure: registries (HOST[:PORT]) that may be spoken to over plain HTTP.
    out: where status lines go (None: nowhere).
    chunk_size: blobs bigger than this are uploaded in chunks of this size.
    """
    reference = registry_reference(ref)
    image = _find_image(store, reference)
    manifest_bytes = store.read_blob(image.manifest_digest)
    # OCI manifests may leave mediaType out; then the OCI type is meant.
    media_type = image.manifest.get("mediaType") or mt.OCI_MANIFEST
    report = Reporter(out, progress=False)
    report.line(f"The push refers to repository [{reference.name}]")
    result = PushResult(reference, image.manifest_digest, len(manifest_bytes))
    with RegistryClient(reference.registry, insecure=insecure) as client:
        for descriptor in [*image.manifest["layers"], image.manifest["config"]]:
            _push_blob(client, store, reference, descriptor, chunk_size, report, result)
        # The registry answers with the digest it stored; the client checks
        # that it is the digest of what we sent.
        result.digest = client.put_manifest(reference.repository, reference.tag,
                                            manifest_bytes, media_type)
    report.line(f"{reference.tag}: digest: {result.digest} size: {result.size}")
    return result


def registry_reference(text: str) -> Reference:
    """Parse `text` as a push target: it must name a registry and a tag.

    `busybox` means docker.io/library/busybox:latest to a pull, and docker
    would push it to Docker Hub. minict refuses instead: a push is meant for
    a registry the user names (docker.io/... is still accepted, written out).
    """
    reference = parse(text)
    if reference.digest:
        raise BadReference(f"cannot push {text!r}: a digest names content, not a place to put it",
                           "push a tag, e.g. NAME:TAG; the registry computes the digest")
    first = text.split("/", 1)[0].lower()
    if reference.registry == DEFAULT_REGISTRY and first not in DOCKER_HUB_ALIASES:
        raise BadReference(
            f"{text!r} names no registry, and minict does not push to Docker Hub unasked",
            f"tag the image with a registry name first, e.g. "
            f"`minict tag {text} localhost:5000/{reference.familiar_name()}:{reference.tag}`, "
            f"or write docker.io/{reference.familiar_name()} to mean Docker Hub")
    return reference


def _find_image(store: Store, reference: Reference) -> Image:
    try:
        return store.resolve(reference)
    except ImageNotFound:
        raise ImageNotFound(f"no image {reference} in the store",
                            "see `minict images`; to push an image under another name, tag it "
                            "first with `minict tag SOURCE NAME`") from None


def _push_blob(client: RegistryClient, store: Store, reference: Reference, descriptor: dict,
               chunk_size: int, report: Reporter, result: PushResult) -> None:
    """HEAD one blob; upload it unless the repository has it already."""
    digest, size = check_descriptor(descriptor, "a blob of the image's manifest")
    short = digest.partition(":")[2][:12]
    what = f"blob {short}"
    if client.blob_exists(reference.repository, digest, what):
        report.line(f"{short}: Layer already exists")
        result.skipped.append(digest)
        return
    try:
        source = open(store.blob_path(digest), "rb")
    except FileNotFoundError:
        # The store unpacks each layer once (by diff id). When this layer
        # came first with another image, compressed differently, only that
        # image's blob was kept; a blob with this digest cannot be remade.
        raise MissingBlob(f"{what} of {reference.familiar()} is not in the store, and the "
                          f"registry does not have it either",
                          "its layer came into the store with another image first; load or "
                          "pull this image into an empty store (--root) and push from there"
                          ) from None
    with source:
        client.upload_blob(reference.repository, digest, size, source, what, chunk_size)
    report.line(f"{short}: Pushed")
    result.uploaded.append(digest)
