"""`minict pull`: fetch an image from a registry into the store.

The steps (OCI distribution-spec "Pull"; image-spec for what is fetched):

1. GET the manifest the reference names (a tag or a digest), accepting
   every manifest and index type minict handles.
2. If it is an image index (OCI) or manifest list (Docker), pick the entry
   for the wanted platform (image-spec image-index.md) and GET that
   manifest by its digest.
3. GET the config blob (image-spec config.md); it lists the diff ids, the
   digests of the uncompressed layers.
4. For each layer the store does not already have (by diff id): stream
   the blob to its file in the store's downloads/, checking its sha256 as
   it arrives, then unpack it (the store checks the diff id too).
5. Record the image under its tag, with `name@sha256:...` (the digest the
   tag pointed at, index or manifest) as its repo digest; then drop the
   image's downloads.

All network reads that can fail early (manifests, config) happen before
the store is touched; the rest happens inside `store.ingest()`, which
leaves the store exactly as it was if anything goes wrong. Only downloads/
outlives a failed or killed pull: the next pull of a blob asks the
registry for the rest of it alone (a Range request), as `docker pull`
does after a restart, so a big image on a slow link is not started over.
Those bytes are never read as content before the blob's digest is checked.
"""

import json
import sys
from contextlib import contextmanager

from . import mediatypes as mt
from ..errors import DigestMismatch, ImageNotFound, NoMatchingPlatform, RegistryError, StoreCorrupt
from .platforms import Platform, host_platform, parse_platform, select_manifest
from ..fsutil import file_lock
from .reference import Reference, parse
from .registry import RegistryClient
from .registry.client import Manifest, check_descriptor
from .ingest import config_diff_ids, parse_manifest
from .store import Image, Store


def pull(store: Store, ref: str, platform: str | None = None, *, insecure=(),
         progress: bool | None = None, out=sys.stderr) -> Image:
    """Pull `ref` into `store` and return the image.

    platform: "os/arch[/variant]", or None for this machine's.
    insecure: registries (HOST[:PORT]) that may be spoken to over plain HTTP.
    progress: a bar per layer; None means "when `out` is a terminal".
    out: where status lines go (None: nowhere).
    """
    reference = parse(ref)
    wanted = parse_platform(platform)
    report = Reporter(out, progress)
    with RegistryClient(reference.registry, insecure=insecure) as client:
        report.line(f"{reference.digest or reference.tag}: Pulling from {reference.repository}")
        # Steps 1-3: everything that can fail early, before the store is touched.
        top, manifest = _find_manifest(client, reference, wanted)
        parsed = parse_manifest(manifest.data, f"manifest of {reference.familiar()}")
        config_bytes = client.fetch_blob_bytes(reference.repository, parsed["config"],
                                               "image config")
        config = _json(config_bytes, f"config of {reference.familiar()}")
        diff_ids = config_diff_ids(config)
        if len(diff_ids) != len(parsed["layers"]):
            raise StoreCorrupt(f"{reference.familiar()}: manifest lists {len(parsed['layers'])} "
                               f"layers but its config has {len(diff_ids)} diff ids",
                               "the image in the registry is malformed")
        if top is manifest:
            _check_single_platform(config, wanted, explicit=platform is not None,
                                   what=reference.familiar(), report=report)

        # Steps 4-5, inside the store's ingest: all of it, or none of it.
        up_to_date = _manifest_held(store, reference) == manifest.digest
        try:
            with store.ingest() as ing:
                ing.add_blob_bytes(config_bytes, expected=parsed["config"]["digest"],
                                   what=f"config of {reference.familiar()}")
                for descriptor, diff_id in zip(parsed["layers"], diff_ids):
                    if _pull_layer(client, ing, reference, descriptor, diff_id, report):
                        up_to_date = False
                # A pull by digest gets no tag, as with docker: the digest is its name.
                names = [reference] if reference.tag and not reference.digest else []
                image = ing.commit_image(manifest.data, names=names,
                                         repo_digests=[f"{reference.name}@{top.digest}"])
        except BaseException:
            _drop_downloads(store, parsed["layers"], keep_partial=True)
            raise
        _drop_downloads(store, parsed["layers"], keep_partial=False)
    report.line(f"Digest: {top.digest}")
    status = "Image is up to date for" if up_to_date else "Downloaded newer image for"
    report.line(f"Status: {status} {reference.familiar()}")
    return image


def _find_manifest(client: RegistryClient, reference: Reference,
                   wanted: Platform) -> tuple[Manifest, Manifest]:
    """(what the tag or digest names, the image manifest to pull): the same
    thing for a single-platform image; an index and one of its entries
    for a multi-platform one."""
    top = client.get_manifest(reference.repository, reference.digest or reference.tag)
    if top.media_type not in mt.INDEX_TYPES:
        return top, top
    index = _json(top.data, f"image index of {reference.familiar()}")
    chosen = select_manifest(index, wanted, reference.familiar())
    digest, _ = check_descriptor(chosen, f"{wanted} entry of {reference.familiar()}'s index")
    return top, client.get_manifest(reference.repository, digest)


def _pull_layer(client: RegistryClient, ing, reference: Reference, descriptor: dict,
                diff_id: str, report: "Reporter") -> bool:
    """Download and unpack one layer unless the store has it (by diff id,
    so a layer shared with an image already here costs nothing).
    Returns whether anything was downloaded."""
    short = str(descriptor.get("digest", "")).partition(":")[2][:12]
    if ing.layer_present(diff_id) and ing.has_blob(descriptor["digest"]):
        report.line(f"{short}: Already exists")
        return False
    download = ing.store.download_path(descriptor["digest"])
    # Locked: two pulls of one blob take turns, and the second finds it whole.
    with file_lock(download), open(download, "r+b") as sink:
        held = sink.seek(0, 2)
        if held:
            report.line(f"{short}: Resuming from byte {held} (left by a pull that stopped)")
        try:
            with report.bar(short, descriptor.get("size")) as tick:
                client.fetch_blob(reference.repository, descriptor, sink, f"layer {short}",
                                  on_progress=tick)
        except DigestMismatch:
            download.unlink(missing_ok=True)     # not the blob's bytes: nothing to resume from
            raise
        blob = ing.link_blob(download)     # the downloads/ copy stays until the image is in
    if ing.layer_present(diff_id):
        # Unpacked already, from a blob compressed otherwise (another image):
        # keep this image's own blob for `minict save` and `push`.
        ing.commit_blob(blob, descriptor["digest"])
        report.line(f"{short}: Blob kept (layer already unpacked)")
        return True
    with open(blob, "rb") as source:
        ing.add_layer(source, blob_digest=descriptor["digest"], diff_id=diff_id,
                      media_type=descriptor.get("mediaType", ""),
                      what=f"layer {short} of {reference.familiar()}", keep_blob=False)
    # Checked against its digest while downloading, and its diff id while
    # unpacking: keep it in blobs/, beside the image's manifest and config.
    ing.commit_blob(blob, descriptor["digest"])
    report.line(f"{short}: Pull complete")
    return True


def _drop_downloads(store: Store, layers: list[dict], keep_partial: bool) -> None:
    """Remove the layers' files in downloads/ once the pull is over: all of
    them when the image is in; when it failed, all but the transfers cut
    short midway (none arrived: nothing to resume; a complete blob that
    failed to unpack would fail the same way again). One another pull is
    using stays; gc takes it when old."""
    for descriptor in layers:
        download = store.download_path(descriptor["digest"])
        if not download.exists():
            continue
        with file_lock(download, blocking=False) as ours:
            cut_short = 0 < download.stat().st_size < descriptor["size"]
            if ours and not (keep_partial and cut_short):
                download.unlink(missing_ok=True)


def _manifest_held(store: Store, reference: Reference) -> str | None:
    """The manifest digest `reference` names in the store now, if any."""
    try:
        return store.resolve(reference).manifest_digest
    except ImageNotFound:
        return None


def _json(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{what} is not valid JSON ({exc})",
                            "the image in the registry is malformed") from exc
    if not isinstance(value, dict):
        raise RegistryError(f"{what} is not a JSON object", "the image in the registry is malformed")
    return value


def _check_single_platform(config: dict, wanted: Platform, explicit: bool, what: str,
                           report: "Reporter") -> None:
    """A plain manifest has one platform, named in its config. Refuse a
    mismatch the user asked about; only warn about one they did not (it
    may still run, e.g. under binfmt emulation)."""
    theirs = {"os": config.get("os"), "architecture": config.get("architecture"),
              "variant": config.get("variant")}
    if wanted.matches(theirs):
        return
    actual = Platform(theirs["os"] or "?", theirs["architecture"] or "?", theirs["variant"])
    if explicit:
        raise NoMatchingPlatform(f"{what} is a single-platform image for {actual}, not {wanted}",
                                 f"pull it with --platform {actual}, or pick another image")
    report.line(f"WARNING: {what} is for {actual}, but this machine is {host_platform()}")


class Reporter:
    """docker-like status lines; a progress bar per layer on a terminal."""

    def __init__(self, out, progress: bool | None):
        self.out = out
        if progress is None:
            progress = bool(out) and hasattr(out, "isatty") and out.isatty()
        self.bars = progress and out is not None

    def line(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    @contextmanager
    def bar(self, label: str, total: int | None):
        """Yields a callback taking the bytes received so far."""
        if not self.bars:
            yield None
            return
        from tqdm import tqdm  # lazy: only a terminal pull needs it
        with tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024,
                  file=self.out, leave=False, dynamic_ncols=True) as progress:
            yield lambda done: progress.update(done - progress.n)
