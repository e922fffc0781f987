"""The image store: content-addressed blobs, unpacked layers, and names.

On disk, under the root (`--root`, `MINICT_ROOT`, default /var/lib/minict):

    blobs/sha256/<hex>        manifests, configs and layer blobs, named by
                              the sha256 of their bytes (OCI image-layout style)
    layers/<diffid-hex>/fs/   one directory per layer, unpacked once, keyed
                              by its diff id (the sha256 of the uncompressed
                              tar), whiteouts already in overlayfs form
    layers/<diffid-hex>/meta.json
    index.json                names -> manifest digest, and a summary of each
                              image (config digest, diff ids, size)
    tmp/                      work in progress; never read as content
    downloads/sha256/<hex>    layer blobs a pull is fetching; what a killed pull
                              leaves lets the next one ask only for the rest
                              (image/pull.py); dropped when the image is in,
                              or by gc after DOWNLOADS_KEPT_DAYS untouched
    locks/                    flock(2) files

Two images that share a base share its layer directories, and a container
needs only an upper/work dir of its own, so creating one costs the same
whatever the image size.

Safety (docs/ARCHITECTURE.md, "State on disk"):
- Content appears by rename(2) from tmp/ only when complete and verified,
  so a crash leaves at worst unreferenced content, never half of something.
- Loads and pulls hold `locks/gc.lock` shared (so does `minict save`, while
  it copies blobs out); `rmi` and garbage collection hold it exclusive. So
  two loads run at once (and share layers: whoever renames a layer first
  wins, the other discards its copy), while nothing is collected under a
  load's feet.
- Every command that writes first tries the gc lock exclusively without
  waiting; if it gets it, no load is running, so anything in tmp/ and
  anything no image references was left by a crash and is removed.
- index.json is read-modify-written under `locks/index.lock`, via
  temp + rename.
"""

import json
import os
import re
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from baselib.files import TEMP_MARK

from .. import idmap
from ..errors import BadReference, ImageInUse, ImageNotFound, MissingBlob, StoreCorrupt
from ..fsutil import atomic_write, digest_hex, file_lock, raise_if_disk_full
from .ingest import Ingest
from .reference import Reference, parse

DEFAULT_MAX_UNPACK = 64 * 1024**3  # bytes per image; a bomb stops here
DOWNLOADS_KEPT_DAYS = 7            # a stopped pull's bytes wait this long for the next one


@dataclass
class Image:
    """One image in the store, as the runtime needs it."""
    manifest_digest: str
    config_digest: str
    manifest: dict = field(repr=False)
    config: dict = field(repr=False)           # the whole image config (OCI image-spec config.md)
    diff_ids: list[str] = field(repr=False)
    layer_dirs: list[Path] = field(repr=False)  # unpacked layers, bottom (base) first
    names: list[str] = field(default_factory=list)          # canonical references
    repo_digests: list[str] = field(default_factory=list)
    size: int = 0                               # bytes of uncompressed layer tars

    @property
    def id(self) -> str:
        """The image ID docker shows: the config's digest."""
        return self.config_digest

    @property
    def run_config(self) -> dict:
        """Entrypoint, Cmd, Env, WorkingDir, User...: the `config` object."""
        return self.config.get("config") or {}

    @property
    def created(self) -> str | None:
        return self.config.get("created")


class Store:
    def __init__(self, root: Path, max_unpack: int | None = None):
        self.root = Path(root)
        env_cap = os.environ.get("MINICT_MAX_UNPACK")
        self.max_unpack = max_unpack or (int(env_cap) if env_cap else DEFAULT_MAX_UNPACK)

    def _create_dirs(self) -> None:
        """Made by the first command that writes, so that reading (or a
        command that fails before writing) leaves no empty store behind."""
        for sub in ("blobs/sha256", "layers", "tmp", "locks", "downloads/sha256"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ---- paths -------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs/sha256" / digest_hex(digest)

    def download_path(self, digest: str) -> Path:
        return self.root / "downloads/sha256" / digest_hex(digest)

    def layer_dir(self, diff_id: str) -> Path:
        return self.root / "layers" / digest_hex(diff_id)

    def layer_fs(self, diff_id: str) -> Path:
        return self.layer_dir(diff_id) / "fs"

    @property
    def _gc_lock(self) -> Path:
        return self.root / "locks/gc.lock"

    @property
    def _index_lock(self) -> Path:
        return self.root / "locks/index.lock"

    # ---- the index -----------------------------------------------------------

    def _read_index(self) -> dict:
        path = self.root / "index.json"
        try:
            index = json.loads(path.read_text())
        except FileNotFoundError:
            return {"schemaVersion": 1, "names": {}, "images": {}}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreCorrupt(f"{path} is not valid JSON ({exc})",
                               "restore it from a backup or remove the store root") from exc
        index.setdefault("names", {})
        index.setdefault("images", {})
        return index

    def _write_index(self, index: dict) -> None:
        atomic_write(self.root / "index.json", json.dumps(index, indent=1, sort_keys=True).encode())

    @contextmanager
    def _index_update(self):
        """Read-modify-write index.json under its lock."""
        with file_lock(self._index_lock):
            index = self._read_index()
            yield index
            self._write_index(index)

    # ---- reading -------------------------------------------------------------

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise MissingBlob(f"blob {digest} is missing from the store",
                              "the store is damaged: remove the image and load it again") from None

    def image(self, manifest_digest: str, index: dict | None = None) -> Image:
        index = index if index is not None else self._read_index()
        record = index["images"].get(manifest_digest)
        if record is None:
            raise ImageNotFound(f"no image with manifest {manifest_digest} in the store")
        manifest = json.loads(self.read_blob(manifest_digest))
        config = json.loads(self.read_blob(record["config"]))
        names = sorted(n for n, d in index["names"].items() if d == manifest_digest)
        return Image(
            manifest_digest=manifest_digest,
            config_digest=record["config"],
            manifest=manifest,
            config=config,
            diff_ids=list(record["diff_ids"]),
            layer_dirs=[self.layer_fs(d) for d in record["diff_ids"]],
            names=names,
            repo_digests=list(record.get("repo_digests", [])),
            size=record.get("size", 0),
        )

    def images(self) -> list[Image]:
        index = self._read_index()
        return [self.image(d, index) for d in sorted(index["images"])]

    def resolve(self, ref: "str | Reference") -> Image:
        """Find an image by name, name@digest, manifest digest or ID prefix."""
        index = self._read_index()
        digest = self._lookup(index, ref)
        return self.image(digest, index)

    def _lookup(self, index: dict, ref: "str | Reference") -> str:
        text = str(ref)
        if isinstance(ref, str):
            by_id = self._lookup_id(index, text)
            if by_id:
                return by_id
        try:
            parsed = ref if isinstance(ref, Reference) else parse(text)
        except BadReference:
            raise ImageNotFound(f"no image {text!r} in the store",
                                "see `minict images` for what is there") from None
        if parsed.digest:
            for mdigest, record in index["images"].items():
                if mdigest == parsed.digest or \
                        f"{parsed.name}@{parsed.digest}" in record.get("repo_digests", []):
                    return mdigest
        elif str(parsed) in index["names"]:
            return index["names"][str(parsed)]
        raise ImageNotFound(f"no image {parsed.familiar()} in the store",
                            f"pull it with 'minict pull {parsed.familiar()}', or load or import it")

    @staticmethod
    def _lookup_id(index: dict, text: str) -> str | None:
        """IDs as docker accepts them: a unique prefix (4+ hex digits) of the
        image ID, with or without `sha256:`, or a full manifest digest."""
        prefix = text[7:] if text.startswith("sha256:") else text
        if not re.fullmatch(r"[a-f0-9]{4,64}", prefix):
            return None
        hits = {m for m, rec in index["images"].items()
                if digest_hex(rec["config"]).startswith(prefix) or (len(prefix) == 64 and digest_hex(m) == prefix)}
        if len(hits) > 1:
            raise BadReference(f"image ID prefix {text!r} is ambiguous",
                               "give more digits of the ID")
        return hits.pop() if hits else None

    # ---- writing -------------------------------------------------------------

    @contextmanager
    def ingest(self):
        """Hold the store open for adding images; see Ingest."""
        fresh = not self.root.exists()
        self._create_dirs()
        self.recover()
        failed = False
        try:
            with file_lock(self._gc_lock, shared=True):
                work = Path(tempfile.mkdtemp(prefix="ingest-", dir=self.root / "tmp"))
                try:
                    yield Ingest(self, work)
                except OSError as exc:
                    failed = True
                    raise_if_disk_full(exc, "adding to the image store")
                except BaseException:
                    failed = True
                    raise
                finally:
                    self.remove_trees([work])
        finally:
            # A failed ingest may have renamed some layers into place before
            # failing; collect them now (if no other load is running) so
            # the store is exactly as it was before.
            if failed:
                self.recover()
                if fresh:
                    self._remove_if_unused()

    def recover(self) -> bool:
        """Remove crash leftovers, if no load is running. True if it ran."""
        if not (self.root / "locks").is_dir():
            return False  # no store yet: nothing to recover
        with file_lock(self._gc_lock, blocking=False) as held:
            if not held:
                return False
            self._collect_garbage()
            return True

    def _remove_if_unused(self) -> None:
        """Delete a store root this process created, when nothing was ever
        committed to it and no pull left bytes to resume from (and no other
        load is running in it)."""
        with file_lock(self._gc_lock, blocking=False) as held:
            if held and not (self.root / "index.json").exists() \
                    and not any((self.root / "downloads/sha256").iterdir()):
                        self.remove_trees([self.root])

    def remove(self, ref: str, force: bool = False,
               in_use=lambda image: []) -> tuple[list[str], bool]:
        """Untag ref; delete the image if no name is left (or ref was an ID).

        Returns (names untagged, whether the image itself was deleted).
        `in_use(image)` returns the containers using an image; an image in
        use is never deleted.
        """
        self._lookup(self._read_index(), ref)  # not found: fail before creating anything
        self._create_dirs()
        with file_lock(self._gc_lock):
            with self._index_update() as index:
                digest = self._lookup(index, ref)
                names = sorted(n for n, d in index["names"].items() if d == digest)
                by_id = isinstance(ref, str) and self._lookup_id(index, ref) is not None
                parsed = None if by_id else (ref if isinstance(ref, Reference) else parse(ref))
                if by_id or parsed.digest:
                    # By ID or digest: the image itself goes, with all its names.
                    if by_id and len(names) > 1 and not force:
                        raise ImageInUse(f"image {ref} has several names ({', '.join(names)})",
                                         "remove them one by one, or use rmi -f")
                    untag = names
                else:
                    untag = [str(parsed)]
                delete = not [n for n in names if n not in untag]
                if delete:
                    users = in_use(self.image(digest, index))
                    if users:
                        raise ImageInUse(
                            f"image {ref} is used by container(s) {', '.join(users)}",
                            "remove those containers first (minict rm)")
                for name in untag:
                    index["names"].pop(name, None)
                if delete:
                    del index["images"][digest]
            if delete:
                self._collect_garbage()
            return untag, delete

    def tag(self, source: "str | Reference", target: str) -> Reference:
        """Give the image `source` (a name, name@digest or ID prefix) the
        name `target` (NAME[:TAG], normalized as every name in the store:
        busybox -> docker.io/library/busybox:latest), as `docker tag` does.
        Returns the normalized name.

        A name belongs to one image at a time: if `target` already names
        another image, the name moves, and that image keeps its other names
        (or stays, untagged, until `minict rmi` of its ID), as with docker.
        """
        name = parse(target)
        if name.digest:
            # A digest names content; it cannot point somewhere else.
            raise BadReference(f"cannot tag with a digest: {target!r}",
                               "give the new name as NAME[:TAG], e.g. course/app:1.0")
        self._lookup(self._read_index(), source)  # not found: fail before creating anything
        self._create_dirs()
        with self._index_update() as index:
            # Looked up again under the lock: another command may have
            # removed or re-tagged the image in between.
            index["names"][str(name)] = self._lookup(index, source)
        return name

    @contextmanager
    def keep_content(self):
        """Hold the gc lock shared while blobs are read outside a load
        (`minict save` copies them out): `rmi` and garbage collection wait,
        so no blob disappears half-way through a copy."""
        if not (self.root / "locks").is_dir():
            yield  # no store yet: nothing to keep (the lookups will say so)
            return
        with file_lock(self._gc_lock, shared=True):
            yield

    def _collect_garbage(self) -> None:
        """Delete tmp/ and whatever no image references. Caller holds the
        gc lock exclusively, so no load is in progress."""
        tmp = self.root / "tmp"
        doomed = list(tmp.iterdir())
        # atomic_write's temp file, when a writer died between write and rename
        # (every index writer holds the gc lock, so under it exclusively none is alive)
        for stale in self.root.glob(f".index.json{TEMP_MARK}*"):
            stale.unlink(missing_ok=True)
        index = self._read_index()
        keep_blobs, keep_layers = set(), set()
        for mdigest, record in index["images"].items():
            keep_blobs.update({mdigest, record["config"]})
            keep_blobs.update(record.get("layer_blobs", []))
            keep_layers.update(record["diff_ids"])
        keep_blob_hex = {digest_hex(d) for d in keep_blobs}
        keep_layer_hex = {digest_hex(d) for d in keep_layers}
        for blob in (self.root / "blobs/sha256").iterdir():
            if blob.name not in keep_blob_hex:
                doomed.append(blob)
        for layer in (self.root / "layers").iterdir():
            if layer.name not in keep_layer_hex:
                doomed.append(layer)
        # Not a crash's leftovers but a stopped pull's bytes, kept for the next
        # pull (image/pull.py), unless nobody came back for them.
        too_old = time.time() - DOWNLOADS_KEPT_DAYS * 86400
        downloads = self.root / "downloads/sha256"
        if downloads.is_dir():
            doomed += [d for d in downloads.iterdir() if d.stat().st_mtime < too_old]
        if doomed:
            self.remove_trees(doomed)

    # ---- owners without root (idmap.py) ------------------------------------------

    def id_map(self) -> idmap.IdMap | None:
        """Without root: the id map this store's files are owned through
        (idmap.of_store); None for root, who owns every id."""
        return None if os.geteuid() == 0 else idmap.of_store(self.root)

    def owners_of(self, image: "Image") -> dict | None:
        """Without root: what became of the image's file owners (for `minict
        image inspect`): kept through a ranged id map, or squashed to the
        caller. None for root, who keeps every owner."""
        id_map = self.id_map()
        if id_map is None:
            return None
        metas = [json.loads((self.layer_dir(d) / "meta.json").read_text()) for d in image.diff_ids]
        squashed = sorted({i for meta in metas for i in meta.get("squashed_ids", [])})
        if id_map.ranged:
            statement = "kept: inside, each file has the owner the image gave it"
            if squashed:
                statement += f"; except ids {squashed}, which the map lacks: they are root's"
        else:
            statement = ("squashed: every file of the image is yours on the host, root's inside"
                         + (f"; the image's own owners (ids {squashed}) are not kept, and "
                            f"--user with them fails" if squashed else "")
                         + ". With subordinate ids (/etc/subuid, /etc/subgid, and newuidmap "
                           "from Debian's uidmap) a new store keeps them")
        skipped = [item for meta in metas for item in meta.get("skipped", [])]
        return {"IdMap": id_map.describe(), "Owners": statement,
                **({"Skipped": skipped} if skipped else {})}

    def remove_trees(self, paths: list[Path]) -> None:
        """Remove files and directory trees of the store, whoever inside owns
        them: with a ranged id map, files kept as uid 1000 are owned by a
        subordinate id the caller cannot delete, so the removal runs in a
        user namespace with that map, where the caller is root over them."""
        def remove_all():
            for path in paths:
                _remove(path)
        idmap.run_as_owner(self.root, remove_all,
                           f"remove {len(paths)} item(s) of the store {self.root}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
