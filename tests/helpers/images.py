"""Build test images offline, in every format minict loads.

    img = ImageBuilder()
    img.add_layer(tar_from_dir(rootfs), compression="gzip")
    img.add_layer(tar_of([Entry.file("etc/motd", b"hi"), Entry.whiteout("bin/vi")]))
    img.write_oci_layout(path, ref_name="busybox:latest")
    img.write_oci_archive(path, ref_name="busybox:latest")
    img.write_docker_archive(path, repo_tags=["busybox:latest"])           # classic docker save
    img.write_docker_archive(path, repo_tags=[...], oci_layout=True)       # Docker 25+ docker save

Layers are real tars written by Python's tarfile (pax format, numeric
owners); the formats follow the OCI image-layout spec (image-layout.md) and
docker's `docker save` output (manifest.json + repositories).
"""

import gzip
import hashlib
import io
import json
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from minicontainer.image.importer import layer_member

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_TYPES = {
    None: "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
FIXED_MTIME = 1_700_000_000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---- layer tars -----------------------------------------------------------

@dataclass
class Entry:
    """One tar member, described by hand (for whiteouts and hostile tars)."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    linkname: str = ""
    uid: int = 0
    gid: int = 0
    devmajor: int = 0
    devminor: int = 0
    pax: dict = field(default_factory=dict)
    mtime: int = FIXED_MTIME

    @classmethod
    def file(cls, name, data=b"", mode=0o644, **kw):
        return cls(name, tarfile.REGTYPE, data, mode, **kw)

    @classmethod
    def dir(cls, name, mode=0o755, **kw):
        return cls(name, tarfile.DIRTYPE, mode=mode, **kw)

    @classmethod
    def symlink(cls, name, target, **kw):
        return cls(name, tarfile.SYMTYPE, linkname=target, mode=0o777, **kw)

    @classmethod
    def hardlink(cls, name, target, **kw):
        return cls(name, tarfile.LNKTYPE, linkname=target, **kw)

    @classmethod
    def chardev(cls, name, major, minor, mode=0o666, **kw):
        return cls(name, tarfile.CHRTYPE, mode=mode, devmajor=major, devminor=minor, **kw)

    @classmethod
    def blockdev(cls, name, major, minor, mode=0o660, **kw):
        return cls(name, tarfile.BLKTYPE, mode=mode, devmajor=major, devminor=minor, **kw)

    @classmethod
    def whiteout(cls, path):
        parent, _, base = path.rpartition("/")
        return cls.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}", mode=0o600)

    @classmethod
    def opaque(cls, directory):
        return cls.file(f"{directory.rstrip('/')}/.wh..wh..opq", mode=0o600)


def tar_of(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.name)
            info.type = e.type
            info.mode = e.mode
            info.uid, info.gid = e.uid, e.gid
            info.mtime = e.mtime
            info.linkname = e.linkname
            info.devmajor, info.devminor = e.devmajor, e.devminor
            info.pax_headers = dict(e.pax)
            if e.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def tar_from_dir(root: Path) -> bytes:
    """A layer tar of a directory tree (numeric owners, capability xattrs kept)."""
    root = Path(root)
    buf = io.BytesIO()

    def keep_caps(info: tarfile.TarInfo) -> tarfile.TarInfo:
        return layer_member(root, info)   # as `minict import` packs a directory

    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*"), key=lambda p: str(p.relative_to(root))):
            rel = str(path.relative_to(root))
            mode = path.lstat().st_mode
            if stat.S_ISSOCK(mode):
                continue
            tar.add(path, arcname=rel, recursive=False, filter=keep_caps)
    return buf.getvalue()


def compress(data: bytes, compression: str | None) -> bytes:
    if compression is None:
        return data
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(compression)


# ---- images -----------------------------------------------------------------

class ImageBuilder:
    def __init__(self, config: dict | None = None, architecture: str = "amd64", os_name="linux"):
        self.blobs: dict[str, bytes] = {}
        self.layers: list[dict] = []
        self.diff_ids: list[str] = []
        self.layer_tars: list[bytes] = []
        self.run_config = dict(config or {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:"
                                                   "/usr/sbin:/usr/bin:/sbin:/bin"],
                                          "Cmd": ["sh"]})
        self.architecture = architecture
        self.os = os_name

    def add_layer(self, tar_bytes: bytes, compression: str | None = "gzip") -> "ImageBuilder":
        blob = compress(tar_bytes, compression)
        digest = sha256(blob)
        self.blobs[digest] = blob
        self.layers.append({"mediaType": LAYER_TYPES[compression], "digest": digest,
                            "size": len(blob)})
        self.diff_ids.append(sha256(tar_bytes))
        self.layer_tars.append(tar_bytes)
        return self

    def config_bytes(self) -> bytes:
        config = {
            "created": "2023-11-14T22:13:20Z",
            "architecture": self.architecture,
            "os": self.os,
            "config": self.run_config,
            "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "tests/helpers/images.py"}
                        for _ in self.diff_ids],
        }
        return json.dumps(config, sort_keys=True).encode()

    def manifest_bytes(self) -> bytes:
        config = self.config_bytes()
        self.blobs[sha256(config)] = config
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": self.layers,
        }
        return json.dumps(manifest, sort_keys=True).encode()

    def manifest_descriptor(self, ref_name: str | None = None) -> dict:
        manifest = self.manifest_bytes()
        self.blobs[sha256(manifest)] = manifest
        desc = {"mediaType": OCI_MANIFEST, "digest": sha256(manifest), "size": len(manifest),
                "platform": {"architecture": self.architecture, "os": self.os}}
        if ref_name:
            desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
        return desc

    # -- OCI image layout (image-layout.md) --

    def layout_files(self, ref_names: list[str | None]) -> dict[str, bytes]:
        manifests = [self.manifest_descriptor(name) for name in ref_names]
        files = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                 "index.json": json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                           "manifests": manifests}).encode()}
        for digest, data in self.blobs.items():
            files[f"blobs/sha256/{digest[7:]}"] = data
        return files

    def write_oci_layout(self, dest: Path, ref_name: str | None = "latest") -> Path:
        return write_tree(Path(dest), self.layout_files([ref_name]))

    def write_oci_archive(self, dest: Path, ref_name: str | None = "latest") -> Path:
        return write_tar(Path(dest), self.layout_files([ref_name]))

    # -- docker save --

    def docker_archive_files(self, repo_tags: list[str], oci_layout: bool = False) -> dict:
        """Classic `docker save`: <id>/layer.tar (uncompressed), <config-hex>.json,
        manifest.json and repositories. With oci_layout, Docker 25+'s shape:
        an OCI layout whose manifest.json points at blobs/sha256/..."""
        config = self.config_bytes()
        files = {}
        if oci_layout:
            # Docker 25+ stores uncompressed layers as OCI blobs.
            layers = []
            for tar_bytes in self.layer_tars:
                files[f"blobs/sha256/{sha256(tar_bytes)[7:]}"] = tar_bytes
                layers.append(f"blobs/sha256/{sha256(tar_bytes)[7:]}")
            plain = ImageBuilder(self.run_config, self.architecture, self.os)
            for t in self.layer_tars:
                plain.add_layer(t, compression=None)
            names = [{"io.containerd.image.name": _docker_full(t),
                      "org.opencontainers.image.ref.name": t.rpartition(":")[2]} for t in repo_tags]
            manifests = []
            for ann in names or [None]:
                desc = plain.manifest_descriptor()
                if ann:
                    desc["annotations"] = ann
                manifests.append(desc)
            for digest, data in plain.blobs.items():
                files[f"blobs/sha256/{digest[7:]}"] = data
            files["oci-layout"] = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
            files["index.json"] = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                              "manifests": manifests}).encode()
            config_name = f"blobs/sha256/{sha256(config)[7:]}"
        else:
            layers = []
            for i, tar_bytes in enumerate(self.layer_tars):
                layer_id = hashlib.sha256(f"{i}{sha256(tar_bytes)}".encode()).hexdigest()
                files[f"{layer_id}/layer.tar"] = tar_bytes
                files[f"{layer_id}/VERSION"] = b"1.0"
                layers.append(f"{layer_id}/layer.tar")
            config_name = f"{sha256(config)[7:]}.json"
        files[config_name] = config
        files["manifest.json"] = json.dumps([{"Config": config_name, "RepoTags": repo_tags or None,
                                              "Layers": layers}]).encode()
        repos = {}
        for tag in repo_tags:
            repo, _, t = tag.rpartition(":")
            repos.setdefault(repo, {})[t] = layers[-1].split("/")[0] if not oci_layout else ""
        files["repositories"] = json.dumps(repos).encode()
        return files

    def write_docker_archive(self, dest: Path, repo_tags: list[str], oci_layout=False) -> Path:
        return write_tar(Path(dest), self.docker_archive_files(repo_tags, oci_layout))


def _docker_full(tag: str) -> str:
    name = tag if "/" in tag.split(":")[0] or "." in tag.split("/")[0] else f"library/{tag}"
    return name if name.split("/")[0].count(".") or ":" in name.split("/")[0] \
        else f"docker.io/{name}"


def write_tree(dest: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dest


def write_tar(dest: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        dirs = set()
        for name in files:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, FIXED_MTIME
            tar.addfile(info, io.BytesIO(data))
    return dest


def busybox_image(rootfs: Path, compression: str | None = "gzip") -> ImageBuilder:
    """A one-layer busybox image from a rootfs made by build_busybox_rootfs."""
    return ImageBuilder().add_layer(tar_from_dir(rootfs), compression)
