"""`minict load`: bring images in from archives and image layouts.

Accepted, detected by content (not by file name):

- OCI image layout, as a directory or a tar (`oci-archive`): `oci-layout`,
  `index.json` and `blobs/<alg>/<hex>` (image-spec image-layout.md). Docker
  25+ `docker save` writes this too, plus a manifest.json.
- Classic `docker save`: `manifest.json` listing, per image, its config file,
  its RepoTags and its layer tars (docker's image/spec/v1.2.md "combined
  image JSON + filesystem changeset format").
- Either of the tars compressed as a whole (gzip or zstd), or read from stdin.

Names: a docker archive's RepoTags; in an OCI layout, the containerd
annotation `io.containerd.image.name` (Docker 25+, nerdctl) or else
`org.opencontainers.image.ref.name`. That one is often just a tag ("latest",
what skopeo writes for `oci:DIR:latest`): then the repository comes from
`--name`, or from the archive's file name. An image with no name at all
loads untagged, as docker does ("Loaded image ID: ...").

Every image of a multi-image archive is loaded, all or nothing.
"""

import gzip
import json
import re
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from . import mediatypes as mt
from ..errors import ArchiveError, BadReference, DigestMismatch, MissingBlob
from ..fsutil import CHUNK, sha256_bytes
from .blob_reader import (DECOMPRESS_ERRORS, GZIP_MAGIC, ZSTD_MAGIC, HashingReader, PeekableReader,
                          corrupt, sniff_compression, zstd_errors)
from .platforms import host_platform, parse_platform, select_manifest
from .reference import Reference, parse
from .ingest import Ingest, config_diff_ids, parse_manifest
from .store import Image, Store

CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class Loaded:
    image: Image
    names: list[Reference] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        if self.names:
            return [f"Loaded image: {n.familiar()}" for n in self.names]
        return [f"Loaded image ID: {self.image.id}"]


# ---- sources: a directory or a tar, read by member name ---------------------

class DirSource:
    def __init__(self, root: Path):
        self.root = root

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def read(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def open(self, name: str):
        return open(self._path(name), "rb")

    def _path(self, name: str) -> Path:
        # Names come from the layout's own JSON: keep them inside the root.
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise ArchiveError(f"archive refers to {name!r}, outside the image layout",
                               "the archive is malformed or hostile")
        return self.root.joinpath(*parts)


class TarSource:
    """Members of an (uncompressed, seekable) tar, by name. Nothing is
    extracted to disk: member names never reach the file system."""

    def __init__(self, path: Path, what: str):
        self.what = what
        try:
            self.tar = tarfile.open(path, mode="r:")
            self.members = {}
            for member in self.tar:
                self.members[_norm(member.name)] = member
        except (tarfile.TarError, EOFError) as exc:
            raise ArchiveError(f"{what} is not a readable tar archive ({exc})",
                               "it may be truncated; export or download it again") from exc

    def exists(self, name: str) -> bool:
        member = self.members.get(_norm(name))
        return member is not None and (member.isfile() or member.issym() or member.islnk())

    def open(self, name: str):
        member = self.members.get(_norm(name))
        if member is None:
            raise MissingBlob(f"{self.what} has no file {name!r}",
                              "the archive is incomplete; export it again")
        try:
            return self.tar.extractfile(member)
        except (KeyError, tarfile.TarError) as exc:  # a link to a missing member
            raise MissingBlob(f"{self.what}: cannot read {name!r} ({exc})",
                              "the archive is incomplete; export it again") from exc

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data = f.read()
        member = self.members[_norm(name)]
        if member.isfile() and len(data) != member.size:
            raise ArchiveError(f"{self.what} is truncated (member {name!r})",
                               "export or download it again")
        return data

    def close(self):
        self.tar.close()


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


# ---- entry point ----------------------------------------------------------------

def load(store: Store, path: Path | None, *, name: str | None = None,
         platform: str | None = None, stdin=None) -> list[Loaded]:
    """Load every image in `path` (a file or directory; None means stdin)."""
    wanted = parse_platform(platform) if platform else host_platform()
    repo_override = _repo_override(name)
    what = str(path) if path else "standard input"
    with store.ingest() as ing:
        source = None
        try:
            if path is not None and Path(path).is_dir():
                source = DirSource(Path(path))
            else:
                tar_path = _as_plain_tar(ing, path, stdin or sys.stdin.buffer, what)
                source = TarSource(tar_path, what)
            default_repo = repo_override or _repo_from_filename(path)
            if source.exists("index.json"):
                loaded = _load_oci_layout(ing, source, what, wanted, default_repo)
            elif source.exists("manifest.json"):
                loaded = _load_docker_archive(ing, source, what)
            elif source.exists("repositories"):
                raise ArchiveError(f"{what} is in the pre-1.10 docker save format",
                                   "re-export it with a docker newer than 1.10, or skopeo")
            else:
                raise ArchiveError(f"{what} is neither an OCI image layout nor a docker save "
                                   f"archive (no index.json or manifest.json)",
                                   "give a docker save tarball, an oci-archive or an OCI layout")
            if not loaded:
                raise ArchiveError(f"{what} holds no images", "check how it was exported")
            ing.commit_staged()
        finally:
            if isinstance(source, TarSource):
                source.close()
    return [Loaded(store.image(digest), names) for digest, names in loaded]


def _as_plain_tar(ing: Ingest, path: Path | None, stdin, what: str) -> Path:
    """A seekable, uncompressed tar: the file itself, or a temp copy of
    stdin or of the decompressed file (random access needs a real file)."""
    if path is not None:
        with open(path, "rb") as f:
            head = f.read(4)
        if not _compressed(head):
            return Path(path)
        tmp = ing.temp_path("archive-")
        with open(path, "rb") as src, open(tmp, "wb") as out:
            _decompress_into(src, out, head, what)
        return tmp
    # stdin cannot seek back: peek at its first bytes.
    src = PeekableReader(stdin)
    head = src.peek(4)
    tmp = ing.temp_path("archive-")
    with open(tmp, "wb") as out:
        if _compressed(head):
            _decompress_into(src, out, head, what)
        else:
            shutil.copyfileobj(src, out, CHUNK)
    return tmp


def _compressed(head: bytes) -> bool:
    return head.startswith(GZIP_MAGIC) or head.startswith(ZSTD_MAGIC)


def _decompress_into(src, out, head: bytes, what: str) -> None:
    """Decompress a whole gzip or zstd archive (docker save | gzip)."""
    try:
        if head.startswith(GZIP_MAGIC):
            reader = gzip.GzipFile(fileobj=src)
        else:
            import zstandard  # one of minict's extra dependencies: only zstd archives need it
            reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
        shutil.copyfileobj(reader, out, CHUNK)
    except (*DECOMPRESS_ERRORS, *zstd_errors()) as exc:
        raise corrupt(what, exc) from exc


def _repo_override(name: str | None) -> Reference | None:
    return parse(name) if name else None


def _repo_from_filename(path: Path | None) -> Reference | None:
    """busybox.tar -> busybox, my-app.oci.tar.gz -> my-app (for tag-only names)."""
    if path is None:
        return None
    stem = Path(path).name.split(".")[0].lower()
    stem = re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-._")
    try:
        return parse(stem) if stem else None
    except BadReference:
        return None


# ---- OCI image layout -------------------------------------------------------------

def _blob_name(digest: str, what: str) -> str:
    algo, _, hexpart = str(digest).partition(":")
    if algo != "sha256" or not re.fullmatch(r"[a-f0-9]{64}", hexpart):
        raise ArchiveError(f"{what} refers to an invalid digest {digest!r}",
                           "the archive is malformed")
    return f"blobs/sha256/{hexpart}"


def _read_verified(source, digest: str, what: str) -> bytes:
    data = source.read(_blob_name(digest, what)) if source.exists(_blob_name(digest, what)) \
        else _missing(digest, what)
    if sha256_bytes(data) != digest:
        raise DigestMismatch(f"{what}: blob {digest} does not match its digest",
                             "the archive is corrupt; export it again")
    return data


def _missing(digest: str, what: str):
    raise MissingBlob(f"{what} lacks blob {digest}", "the archive is incomplete; export it again")


def _json(data: bytes, what: str) -> dict:
    try:
        value = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArchiveError(f"{what} is not valid JSON ({exc})", "the archive is malformed") from exc
    if not isinstance(value, (dict, list)):
        raise ArchiveError(f"{what} is not a JSON object", "the archive is malformed")
    return value


def _load_oci_layout(ing: Ingest, source, what: str, wanted, default_repo) -> list:
    index = _json(source.read("index.json"), f"{what}: index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ArchiveError(f"{what}: index.json has no manifests list", "the archive is malformed")
    loaded = []
    for desc in index["manifests"]:
        names = _oci_names(desc.get("annotations") or {}, default_repo)
        manifest_desc = desc
        if desc.get("mediaType") in mt.INDEX_TYPES:
            nested = _json(_read_verified(source, desc["digest"], what), f"{what}: image index")
            manifest_desc = select_manifest(nested, wanted, what)
        elif desc.get("platform") and not wanted.matches(desc["platform"]) and len(
                index["manifests"]) > 1 and not names:
            continue  # an untagged image for another platform: skip it
        digest = _load_one_oci(ing, source, manifest_desc, what, names)
        loaded.append((digest, names))
    return loaded


def _oci_names(annotations: dict, default_repo: Reference | None) -> list[Reference]:
    full = annotations.get(CONTAINERD_NAME)
    if full:
        return [parse(full)]
    ref_name = annotations.get(OCI_REF_NAME)
    if not ref_name:
        return []
    if ":" in ref_name or "/" in ref_name:
        return [parse(ref_name)]
    if default_repo is None:
        return []
    # A bare tag: the repository comes from --name or the file name.
    try:
        return [parse(f"{default_repo.name}:{ref_name}")]
    except BadReference:
        return []


def _load_one_oci(ing: Ingest, source, desc: dict, what: str, names: list[Reference]) -> str:
    manifest_bytes = _read_verified(source, desc["digest"], what)
    manifest = parse_manifest(manifest_bytes, f"{what}: manifest {desc['digest']}")
    config_bytes = _read_verified(source, manifest["config"]["digest"], what)
    ing.add_blob_bytes(config_bytes, manifest["config"]["digest"], f"{what}: config")
    diff_ids = config_diff_ids(_json(config_bytes, f"{what}: config"))
    if len(diff_ids) != len(manifest["layers"]):
        raise ArchiveError(f"{what}: manifest has {len(manifest['layers'])} layers, config "
                           f"{len(diff_ids)} diff_ids", "the archive is malformed")
    for i, (layer, diff_id) in enumerate(zip(manifest["layers"], diff_ids)):
        name = _blob_name(layer["digest"], what)
        if ing.layer_present(diff_id) and ing.has_blob(layer["digest"]):
            continue
        if not source.exists(name):
            _missing(layer["digest"], what)
        with source.open(name) as blob:
            if ing.layer_present(diff_id):   # unpacked already, from a blob compressed otherwise
                ing.add_blob_file(blob, layer["digest"], f"{what}: layer {i + 1}")
            else:
                ing.add_layer(blob, blob_digest=layer["digest"], diff_id=diff_id,
                              media_type=layer.get("mediaType"),
                              what=f"{what}: layer {i + 1} ({layer['digest'][:19]})")
    return ing.stage_image(manifest_bytes, names)


# ---- classic docker save ---------------------------------------------------------------

def _load_docker_archive(ing: Ingest, source, what: str) -> list:
    entries = _json(source.read("manifest.json"), f"{what}: manifest.json")
    if not isinstance(entries, list):
        raise ArchiveError(f"{what}: manifest.json is not a list", "the archive is malformed")
    loaded = []
    for entry in entries:
        try:
            config_name, layer_names = entry["Config"], list(entry["Layers"])
        except (KeyError, TypeError):
            raise ArchiveError(f"{what}: manifest.json entry lacks Config or Layers",
                               "the archive is malformed") from None
        if not source.exists(config_name):
            raise MissingBlob(f"{what} lacks the config file {config_name!r}",
                              "the archive is incomplete; export it again")
        config_bytes = source.read(config_name)
        config_digest = ing.add_blob_bytes(config_bytes)
        diff_ids = config_diff_ids(_json(config_bytes, f"{what}: {config_name}"))
        if len(diff_ids) != len(layer_names):
            raise ArchiveError(f"{what}: {len(layer_names)} layer files but the config has "
                               f"{len(diff_ids)} diff_ids", "the archive is malformed")
        descriptors = []
        for i, (layer_name, diff_id) in enumerate(zip(layer_names, diff_ids)):
            if not source.exists(layer_name):
                raise MissingBlob(f"{what} lacks the layer file {layer_name!r}",
                                  "the archive is incomplete; export it again")
            with source.open(layer_name) as blob:
                layer = ing.add_layer(blob, blob_digest=None, diff_id=diff_id, media_type=None,
                                      what=f"{what}: layer {i + 1} ({layer_name})")
            if layer is None:  # unpacked already: keep this image's own blob, and describe it
                with source.open(layer_name) as blob:
                    layer = _describe_blob(blob)
                if not ing.has_blob(layer.blob_digest):
                    with source.open(layer_name) as blob:
                        ing.add_blob_file(blob, layer.blob_digest, f"{what}: layer {i + 1}")
            descriptors.append({
                "mediaType": {None: mt.DOCKER_LAYER, "gzip": mt.DOCKER_LAYER_GZIP}.get(
                    layer.compression, mt.OCI_LAYER_ZSTD),
                "digest": layer.blob_digest, "size": layer.blob_size})
        # docker save carries no registry manifest: write the Docker v2
        # schema 2 manifest that describes exactly these files.
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "digest": config_digest,
                       "size": len(config_bytes)},
            "layers": descriptors,
        }
        names = [parse(tag) for tag in (entry.get("RepoTags") or [])]
        digest = ing.stage_image(json.dumps(manifest, indent=3).encode(), names)
        loaded.append((digest, names))
    return loaded


@dataclass
class _BlobInfo:
    blob_digest: str
    blob_size: int
    compression: str | None


def _describe_blob(blob) -> _BlobInfo:
    reader = HashingReader(blob)
    compression = sniff_compression(reader, "layer")
    reader.drain()
    return _BlobInfo(reader.digest(), reader.size, compression)
