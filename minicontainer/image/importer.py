"""`minict import`: make a one-layer image from a root filesystem, like
`docker import`, so a class can build images with no registry at all.

The source is a directory or a tar (plain, gzip or zstd). A directory is
first packed into a tar (numeric owners, file capabilities kept); either way
the tar then goes through exactly the same safe unpacking as a pulled
layer, so `import` is no back door around the extractor's checks.

`--change` applies Dockerfile-style instructions to the new image's config,
the subset docker import documents: CMD, ENTRYPOINT, ENV, WORKDIR, USER,
EXPOSE, LABEL, STOPSIGNAL, VOLUME.
"""

import json
import os
import shlex
import tarfile
import time
from pathlib import Path

from . import mediatypes as mt
from ..errors import ArchiveError, BadArgument
from ..fsutil import walk_sorted
from .platforms import host_platform
from .reference import parse
from .store import Image, Store

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def import_rootfs(store: Store, source: Path, name: str, changes=(), message: str = "") -> Image:
    ref = parse(name)
    source = Path(source)
    run_config = {"Env": [DEFAULT_PATH]}
    for change in changes:
        apply_change(run_config, change)
    if not source.exists():
        raise ArchiveError(f"{source} does not exist", "give a directory or a tar of a root filesystem")

    with store.ingest() as ing:
        if source.is_dir():
            tar_path = ing.temp_path("rootfs-")
            _pack_dir(source, tar_path)
        else:
            tar_path = source
        with open(tar_path, "rb") as blob:
            layer = ing.add_layer(blob, blob_digest=None, diff_id=None, media_type=None,
                                  what=f"root filesystem {source}")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        platform = host_platform()
        config = {
            "created": now,
            "architecture": platform.architecture,
            "os": platform.os,
            "config": run_config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created": now, "created_by": f"minict import {source.name}",
                         **({"comment": message} if message else {})}],
        }
        if platform.variant:
            config["variant"] = platform.variant
        config_bytes = json.dumps(config, sort_keys=True).encode()
        config_digest = ing.add_blob_bytes(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": config_digest,
                       "size": len(config_bytes)},
            "layers": [{"mediaType": {None: mt.OCI_LAYER, "gzip": mt.OCI_LAYER_GZIP,
                                      "zstd": mt.OCI_LAYER_ZSTD}[layer.compression],
                        "digest": layer.blob_digest, "size": layer.blob_size}],
        }
        return ing.commit_image(json.dumps(manifest, sort_keys=True).encode(), [ref])


def layer_member(root: Path, info: tarfile.TarInfo) -> tarfile.TarInfo:
    """A tar member of a layer made from the directory `root`: numeric ids
    only, and the file's capabilities kept as the pax record the extractor
    reads back (tarfile does not record xattrs by itself; `ping` needs its
    cap_net_raw)."""
    info.uname = info.gname = ""
    if info.isreg():
        try:
            cap = os.getxattr(root / info.name, "security.capability", follow_symlinks=False)
            info.pax_headers["SCHILY.xattr.security.capability"] = cap.decode(
                "utf-8", "surrogateescape")
        except OSError:
            pass
    return info


def _pack_dir(root: Path, dest: Path) -> None:
    """Pack a directory into a tar as a layer (layer_member), sockets skipped
    (they cannot be archived and mean nothing in an image)."""

    def describe(info: tarfile.TarInfo) -> tarfile.TarInfo:
        return layer_member(root, info)

    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in walk_sorted(root):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False, filter=describe)


# ---- --change ----------------------------------------------------------------

_CHANGE_HINT = ('use Dockerfile syntax, e.g. --change \'CMD ["sh"]\' or '
                '--change "ENV GREETING=hello"')


def apply_change(config: dict, change: str) -> None:
    """Apply one Dockerfile-style instruction to an image's `config`."""
    keyword, _, rest = change.strip().partition(" ")
    keyword, rest = keyword.upper(), rest.strip()
    if not rest:
        raise BadArgument(f"--change {change!r} has no value", _CHANGE_HINT)
    if keyword in ("CMD", "ENTRYPOINT"):
        config["Cmd" if keyword == "CMD" else "Entrypoint"] = _exec_form(rest, change)
    elif keyword == "ENV":
        for key, value in _pairs(rest, change):
            env = [e for e in config.get("Env", []) if not e.startswith(key + "=")]
            config["Env"] = env + [f"{key}={value}"]
    elif keyword == "LABEL":
        config.setdefault("Labels", {}).update(dict(_pairs(rest, change)))
    elif keyword == "WORKDIR":
        config["WorkingDir"] = rest
    elif keyword == "USER":
        config["User"] = rest
    elif keyword == "STOPSIGNAL":
        config["StopSignal"] = rest
    elif keyword == "EXPOSE":
        for port in rest.split():
            config.setdefault("ExposedPorts", {})[port if "/" in port else f"{port}/tcp"] = {}
    elif keyword == "VOLUME":
        for vol in (_exec_form(rest, change) if rest.startswith("[") else rest.split()):
            config.setdefault("Volumes", {})[vol] = {}
    else:
        raise BadArgument(f"--change {keyword} is not supported",
                          "use CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, "
                          "STOPSIGNAL or VOLUME")


def _exec_form(text: str, change: str) -> list[str]:
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise BadArgument(f"--change {change!r}: invalid JSON array", _CHANGE_HINT) from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadArgument(f"--change {change!r}: expected a JSON array of strings",
                              _CHANGE_HINT)
        return value
    return ["/bin/sh", "-c", text]  # shell form, as in a Dockerfile


def _pairs(text: str, change: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise BadArgument(f"--change {change!r}: {exc}", _CHANGE_HINT) from None
    if len(words) == 2 and "=" not in words[0]:
        return [(words[0], words[1])]  # legacy "ENV KEY value"
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise BadArgument(f"--change {change!r}: expected KEY=VALUE", _CHANGE_HINT)
        pairs.append((key, value))
    return pairs
