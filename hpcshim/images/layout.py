"""Reading an image out of an OCI layout (directory or tar) or a docker archive.

hpcshim reads only what it needs: which image to use (one, or the one NAME
picks), its config (ENTRYPOINT, CMD, Env, WorkingDir: what `hpcshim run`
starts with ch-run, and the image's LD_LIBRARY_PATH), the config's digest
(the cache key: it covers every layer through rootfs.diff_ids, so the same
image in any archive format unpacks to the same directory), and the layer
blobs, which write_layout() hands to umoci as a minimal OCI layout.

Names inside an archive are never used as paths as they stand: a blob is
found by a digest that must be `sha256:` and 64 hex digits, and a docker
archive's file names are looked up as archive members, never joined onto a
host directory.
"""

import hashlib
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass, field

from ..errors import AmbiguousImage, NotAnImage, UnknownImage

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


class DirSource:
    """Files of an OCI layout directory."""

    def __init__(self, root: str):
        self.root = root
        self.label = f"oci:{root}"

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.root, name), "rb") as f:
            return f.read()

    def has(self, name: str) -> bool:
        return os.path.isfile(os.path.join(self.root, name))

    def link_or_copy(self, name: str, dest: str) -> None:
        # A symlink: the user's blobs may be gigabytes, and umoci only reads them.
        os.symlink(os.path.abspath(os.path.join(self.root, name)), dest)


class TarSource:
    """Members of an archive file (regular files only; `./` prefixes ignored)."""

    def __init__(self, path: str):
        self.label = path
        self.tar = tarfile.open(path, "r:*")
        self.members = {}
        for info in self.tar.getmembers():
            name = info.name[2:] if info.name.startswith("./") else info.name
            if info.isfile():
                self.members[name] = info

    def read(self, name: str) -> bytes:
        return self.tar.extractfile(self.members[name]).read()

    def has(self, name: str) -> bool:
        return name in self.members

    def link_or_copy(self, name: str, dest: str) -> None:
        with self.tar.extractfile(self.members[name]) as src, open(dest, "xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def close(self) -> None:
        self.tar.close()


@dataclass
class Image:
    """One image chosen from a source."""
    source: object
    format: str                 # oci | docker
    name: str                   # how the archive names it ("" if it does not)
    config_digest: str
    config: dict                # the whole image config document
    manifest_digest: str = ""   # OCI only (docker archives have no manifest blob)
    layers: list = field(default_factory=list)   # OCI: descriptors; docker: member names
    config_member: str = ""     # docker only: the config's file name in the archive

    @property
    def run_config(self) -> dict:
        """Entrypoint, Cmd, Env, WorkingDir... (what ExecRequest.image_config holds)."""
        return dict(self.config.get("config") or {})

    @property
    def env(self) -> dict[str, str]:
        return env_dict(self.run_config.get("Env") or [])


def env_dict(entries: list[str]) -> dict[str, str]:
    env = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if sep and key:
            env[key] = value
    return env


def open_source(path: str, oci_layout_dir: bool):
    if oci_layout_dir:
        return DirSource(path)
    try:
        return TarSource(path)
    except (OSError, tarfile.TarError) as exc:
        raise NotAnImage(f"cannot read {path}: {exc}", hint="is the archive complete?") from exc


def select(source, fmt: str, want: str) -> Image:
    """The image `want` names (or the only one) from an OCI or docker source."""
    try:
        return _select_oci(source, want) if fmt == "oci" else _select_docker(source, want)
    except (KeyError, ValueError, TypeError, AttributeError, OSError) as exc:
        raise NotAnImage(f"{source.label}: unreadable image index or manifest ({exc.__class__.__name__}: "
                         f"{exc})", hint="the archive may be truncated or not an image") from exc


def _select_oci(source, want: str) -> Image:
    index = json.loads(source.read("index.json"))
    candidates = [(_oci_names(d), d) for d in index.get("manifests") or []]
    names, desc = _pick(source.label, candidates, want)
    while desc.get("mediaType") in (OCI_INDEX, DOCKER_LIST):      # a multi-platform image
        nested = json.loads(source.read(_blob(desc["digest"])))
        desc = _for_this_platform(source.label, nested.get("manifests") or [])
    manifest = json.loads(source.read(_blob(desc["digest"])))
    config_digest = manifest["config"]["digest"]
    config = json.loads(_verified(source, config_digest))
    return Image(source, "oci", names[0] if names else "", config_digest, config,
                 manifest_digest=desc["digest"], layers=list(manifest.get("layers") or []))


def _select_docker(source, want: str) -> Image:
    entries = json.loads(source.read("manifest.json"))
    candidates = [(list(e.get("RepoTags") or []), e) for e in entries]
    names, entry = _pick(source.label, candidates, want)
    config_bytes = source.read(entry["Config"])
    digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    return Image(source, "docker", names[0] if names else "", digest, json.loads(config_bytes),
                 layers=list(entry["Layers"]), config_member=entry["Config"])


def _oci_names(desc: dict) -> list[str]:
    notes = desc.get("annotations") or {}
    return [n for n in (notes.get(CONTAINERD_NAME), notes.get(REF_NAME)) if n]


def _pick(label: str, candidates: list, want: str):
    if not candidates:
        raise NotAnImage(f"{label} holds no image", hint="check how the archive was made")
    if want:
        hits = [c for c in candidates if any(_same_name(want, n) for n in c[0])]
        if not hits:
            raise UnknownImage(f"no image {want!r} in {label} (it has: {_listing(candidates)})",
                               hint="use one of those names")
        return hits[0]
    if len(candidates) > 1:
        raise AmbiguousImage(f"{label} holds {len(candidates)} images ({_listing(candidates)}): "
                             "say which", hint="append :NAME, e.g. oci-archive:FILE:busybox:latest")
    return candidates[0]


def _same_name(want: str, name: str) -> bool:
    """`busybox` matches busybox:latest, docker.io/library/busybox:latest and a bare tag `latest`."""
    full = want if ":" in want.rsplit("/", 1)[-1] else want + ":latest"
    return name in (want, full) or name.endswith("/" + full)


def _listing(candidates: list) -> str:
    return ", ".join("/".join(names) if names else "(unnamed)" for names, _ in candidates)


def _for_this_platform(label: str, manifests: list) -> dict:
    arch = _ARCH.get(os.uname().machine, os.uname().machine)
    for desc in manifests:
        platform = desc.get("platform") or {}
        if platform.get("os") == "linux" and platform.get("architecture") == arch:
            return desc
    raise UnknownImage(f"{label}: no linux/{arch} image in the multi-platform index",
                       hint="use an archive made for this machine")


def _blob(digest: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValueError(f"digest {digest!r} is not sha256:<64 hex digits>")
    return "blobs/sha256/" + digest[7:]


def _verified(source, digest: str) -> bytes:
    data = source.read(_blob(digest))
    if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"blob {digest} does not match its digest")
    return data


# ---- a minimal OCI layout for umoci ------------------------------------------

TAG = "hpcshim"
_LAYER_TYPES = ((b"\x1f\x8b", "application/vnd.oci.image.layer.v1.tar+gzip"),
                (b"\x28\xb5\x2f\xfd", "application/vnd.oci.image.layer.v1.tar+zstd"))


def write_layout(image: Image, dest: str) -> None:
    """An OCI layout at dest holding just `image`, tagged TAG (umoci unpack
    needs a tag; the user's layout may have none, or several images)."""
    blobs = os.path.join(dest, "blobs", "sha256")
    os.makedirs(blobs)
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    if image.format == "oci":
        for digest in [image.manifest_digest, image.config_digest] + [d["digest"] for d in image.layers]:
            target = os.path.join(dest, _blob(digest))
            if not os.path.lexists(target):
                image.source.link_or_copy(_blob(digest), target)
        manifest_digest = image.manifest_digest
        size = os.path.getsize(os.path.join(dest, _blob(manifest_digest)))
    else:
        manifest_digest, size = _docker_to_oci(image, dest)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": size,
                            "annotations": {REF_NAME: TAG}}]}
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)


def _docker_to_oci(image: Image, dest: str) -> tuple[str, int]:
    """A docker archive's layers and config as OCI blobs, plus a manifest for them."""
    layers = []
    for member in image.layers:
        tmp = os.path.join(dest, "layer.tmp")
        image.source.link_or_copy(member, tmp)
        digest, size, head = _digest_of(tmp)
        os.rename(tmp, os.path.join(dest, _blob(digest)))
        media = next((t for magic, t in _LAYER_TYPES if head.startswith(magic)),
                     "application/vnd.oci.image.layer.v1.tar")
        layers.append({"mediaType": media, "digest": digest, "size": size})
    config = image.source.read(image.config_member)      # the very bytes its digest was taken of
    with open(os.path.join(dest, _blob(image.config_digest)), "wb") as f:
        f.write(config)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": image.config_digest,
                                      "size": len(config)},
                           "layers": layers}).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    with open(os.path.join(dest, _blob(digest)), "wb") as f:
        f.write(manifest)
    return digest, len(manifest)


def _digest_of(path: str) -> tuple[str, int, bytes]:
    h = hashlib.sha256()
    size = 0
    head = b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if not head:
                head = chunk[:4]
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size, head
