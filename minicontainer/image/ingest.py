"""Adding to the image store: blobs, layers (unpacked once, by diff id) and
images, all verified, then renamed into place. Store.ingest() hands out an
Ingest while it holds the store's gc lock shared (store.py says why).

parse_manifest and config_diff_ids read the two documents every image
source (an archive, a registry) hands over.
"""

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from . import mediatypes as mt
from .. import idmap
from ..errors import DigestMismatch, MinictError, MissingBlob, StoreCorrupt, UnsupportedMediaType
from ..fsutil import digest_hex, sha256_bytes
from .extract import extract_layer, keep_owners
from .reference import Reference

MAX_IDS_SHOWN = 20                 # owners, skipped entries listed in a layer's meta.json


class Ingest:
    """Adds blobs, layers and images to a store while holding its gc lock
    shared. Get one from Store.ingest(); everything written goes through
    `work` (a private temp dir) and is renamed into place when verified."""

    def __init__(self, store, work: Path):   # (store.Store)
        self.store = store
        self.work = work
        self.staged: list[tuple[str, dict, list[str]]] = []

    # ---- blobs ---------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self.store.blob_path(digest).exists()

    def temp_path(self, prefix: str = "blob-") -> Path:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=self.work)
        os.close(fd)
        return Path(name)

    def link_blob(self, download: Path) -> Path:
        """A second name in the work dir for a file in the store's downloads/
        (no copy): committed or discarded like a temp file, while the
        download itself stays until the pull is over."""
        tmp = self.work / f"download-{download.name}"
        os.link(download, tmp)
        return tmp

    def commit_blob(self, tmp: Path, digest: str) -> Path:
        """Move a verified temp file into blobs/ (a no-op if already there)."""
        final = self.store.blob_path(digest)
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)  # same content wherever it came from: replace is harmless
        return final

    def add_blob_bytes(self, data: bytes, expected: str | None = None, what: str = "blob") -> str:
        digest = sha256_bytes(data)
        if expected and digest != expected:
            raise DigestMismatch(f"{what} has digest {digest}, expected {expected}",
                                 "the source is corrupt or was tampered with; fetch it again")
        if not self.has_blob(digest):
            tmp = self.temp_path()
            tmp.write_bytes(data)
            self.commit_blob(tmp, digest)
        return digest

    def add_blob_file(self, source, expected: str | None = None, what: str = "blob") -> str:
        """Keep the blob read from the binary file `source` (checked against
        `expected`); returns its digest. For a layer the store has already
        unpacked from another image whose blob was compressed differently:
        `minict save` and `push` hand on this image's own blob, byte for byte."""
        tmp = self.temp_path()
        digest = hashlib.sha256()
        with open(tmp, "wb") as sink:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
                sink.write(chunk)
        found = "sha256:" + digest.hexdigest()
        if expected and found != expected:
            tmp.unlink()
            raise DigestMismatch(f"{what} has digest {found}, expected {expected}",
                                 "the source is corrupt or was tampered with; fetch it again")
        self.commit_blob(tmp, found)
        return found

    def layer_present(self, diff_id: str) -> bool:
        return (self.store.layer_dir(diff_id) / "meta.json").exists()

    def layer_meta(self, diff_id: str) -> dict:
        return json.loads((self.store.layer_dir(diff_id) / "meta.json").read_text())

    def add_layer(self, source, *, blob_digest: str | None, diff_id: str | None,
                  media_type: str | None, what: str, keep_blob: bool = True):
        """Unpack a layer from `source` (a binary file of the blob), verifying
        the blob digest and the diff id where given (None: computed, as for
        `minict import`), and keep a copy of the blob.

        Returns the layer's ExtractedLayer record; when diff_id is given and
        the store already has that layer, returns None without reading
        `source`.
        """
        if media_type is not None and media_type not in mt.LAYER_TYPES:
            raise UnsupportedMediaType(f"{what} has media type {media_type!r}, which is not an "
                                       f"image layer minict can unpack",
                                       "only OCI/Docker tar, tar+gzip and tar+zstd layers work")
        if diff_id is not None and self.layer_present(diff_id):
            return None
        layer_tmp = Path(tempfile.mkdtemp(prefix="layer-", dir=self.work))
        blob_tmp = self.temp_path() if keep_blob else None
        layer = extract_layer(source, layer_tmp / "fs", blob_digest=blob_digest, diff_id=diff_id,
                             what=what, max_bytes=self.store.max_unpack, tee_path=blob_tmp)
        owners = self._set_owners(layer_tmp / "fs", layer.owners, what)
        (layer_tmp / "meta.json").write_text(json.dumps(
            {"diff_id": layer.diff_id, "size": layer.size, "blob": layer.blob_digest,
             "compression": layer.compression, **owners,
             **({"skipped": layer.skipped[:MAX_IDS_SHOWN]} if layer.skipped else {})}))
        if blob_tmp is not None:
            self.commit_blob(blob_tmp, layer.blob_digest)
        try:
            os.rename(layer_tmp, self.store.layer_dir(layer.diff_id))
        except OSError:
            if not self.layer_present(layer.diff_id):
                raise
            self.store.remove_trees([layer_tmp])  # another load got there first: share theirs
        return layer

    def _set_owners(self, layer_fs: Path, owners: dict, what: str) -> dict:
        """Without root, the owners extract_layer could not set: kept (a
        ranged id map has their ids: set now, in a user namespace with that
        map) or squashed (every file stays the caller's: root inside).
        Returns what the layer's meta.json says of them."""
        id_map = self.store.id_map()
        if id_map is None:
            return {}
        ids = sorted({uid for uid, _, _ in owners.values()} | {gid for _, gid, _ in owners.values()})
        if not id_map.ranged:
            return {"owners": "squashed", "squashed_ids": ids[:MAX_IDS_SHOWN]}
        kept = {path: owner for path, owner in owners.items() if id_map.holds(owner[0], owner[1])}
        if kept:
            idmap.run_in_user_namespace(id_map, lambda: keep_owners(str(layer_fs), kept),
                                        f"set the owners in {what}")
        missing = sorted({i for path, (uid, gid, _) in owners.items() if path not in kept
                          for i in (uid, gid)})
        return {"owners": "kept", "squashed_ids": missing[:MAX_IDS_SHOWN]}

    # ---- images ----------------------------------------------------------------

    def commit_image(self, manifest_bytes: bytes, names: list[Reference] = (),
                     repo_digests: list[str] = ()):
        """Stage one image and commit it at once (see stage_image); returns its store.Image."""
        digest = self.stage_image(manifest_bytes, names, repo_digests)
        self.commit_staged()
        return self.store.image(digest)

    def stage_image(self, manifest_bytes: bytes, names: list[Reference] = (),
                    repo_digests: list[str] = ()) -> str:
        """Check an image whose config blob and layers are already in place,
        and queue it for commit_staged(). Returns the manifest digest.

        Checks the manifest against the config (one diff id per layer) and
        that every layer is unpacked, and adds the manifest blob. Nothing is
        visible by name until commit_staged() writes the index, so a
        multi-image archive loads all or nothing.
        """
        manifest = parse_manifest(manifest_bytes, "manifest")
        config_digest = manifest["config"]["digest"]
        if not self.has_blob(config_digest):
            raise MissingBlob(f"config blob {config_digest} was not added", "load the image again")
        config = json.loads(self.store.read_blob(config_digest))
        diff_ids = config_diff_ids(config)
        if len(diff_ids) != len(manifest["layers"]):
            raise StoreCorrupt(f"manifest lists {len(manifest['layers'])} layers but its config "
                               f"has {len(diff_ids)} diff_ids", "the image is malformed")
        size = 0
        for diff_id in diff_ids:
            if not self.layer_present(diff_id):
                raise MissingBlob(f"layer {diff_id} was not unpacked", "load the image again")
            size += self.layer_meta(diff_id)["size"]
        mdigest = self.add_blob_bytes(manifest_bytes)
        record = {
            "config": config_digest,
            "diff_ids": diff_ids,
            "layer_blobs": [d["digest"] for d in manifest["layers"]],
            "size": size,
            "added": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "repo_digests": sorted(set(repo_digests)),
        }
        self.staged.append((mdigest, record, [str(n) for n in names]))
        return mdigest

    def commit_staged(self) -> None:
        """Make every staged image visible, in one atomic index update."""
        with self.store._index_update() as index:
            for mdigest, record, names in self.staged:
                old = index["images"].get(mdigest)
                if old:
                    record["repo_digests"] = sorted(set(old.get("repo_digests", []))
                                                    | set(record["repo_digests"]))
                index["images"][mdigest] = record
                for name in names:
                    index["names"][name] = mdigest
        self.staged = []


def parse_manifest(data: bytes, what: str) -> dict:
    """Parse and check an image manifest (OCI image-spec manifest.md, or
    Docker's Image Manifest V2 Schema 2)."""
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreCorrupt(f"{what} is not valid JSON ({exc})", "the image is malformed") from exc
    if not isinstance(manifest, dict):
        raise StoreCorrupt(f"{what} is not a JSON object", "the image is malformed")
    if manifest.get("schemaVersion") == 1:
        raise UnsupportedMediaType(f"{what} is a Docker schema 1 manifest, which is deprecated",
                                   "re-push the image with a current docker or skopeo")
    media_type = manifest.get("mediaType", mt.OCI_MANIFEST)
    if media_type in mt.INDEX_TYPES:
        raise UnsupportedMediaType(f"{what} is an image index, not a manifest",
                                   "pick a platform (--platform)")
    if media_type not in mt.MANIFEST_TYPES or "config" not in manifest:
        raise UnsupportedMediaType(f"{what} has media type {media_type!r}, not an image manifest",
                                   "minict runs OCI and Docker v2 images only")
    config_type = manifest["config"].get("mediaType")
    if config_type not in mt.CONFIG_TYPES:
        raise UnsupportedMediaType(f"{what} points at a config of type {config_type!r}: "
                                   f"not a container image (maybe an artifact such as a Helm chart)",
                                   "minict runs OCI and Docker v2 images only")
    for layer in manifest.get("layers", []):
        if layer.get("mediaType") not in mt.LAYER_TYPES:
            raise UnsupportedMediaType(f"{what} has a layer of media type "
                                       f"{layer.get('mediaType')!r}",
                                       "only tar, tar+gzip and tar+zstd layers are supported")
    manifest.setdefault("layers", [])
    return manifest


def config_diff_ids(config: dict) -> list[str]:
    try:
        diff_ids = list(config["rootfs"]["diff_ids"])
        for d in diff_ids:
            digest_hex(d)
        return diff_ids
    except (KeyError, TypeError, MinictError):
        raise StoreCorrupt("image config has no valid rootfs.diff_ids",
                           "the image is malformed") from None
