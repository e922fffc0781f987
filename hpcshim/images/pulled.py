"""Images `hpcshim pull` fetched for ch-run, found again by the name they were pulled as.

    <cache>/images/<config digest hex>/      the root filesystem ch-run runs (unpack.py)
    <cache>/pulled/<name>.json               which of those a registry name means

`hpcshim pull --runtime ch-run nvcr.io/nvidia/pytorch:22.03-py3` writes
`nvcr.io%nvidia%pytorch+22.03-py3.json` ('/' -> '%', ':' -> '+', as
Charliecloud names its own image directories), holding the unpacked tree, the
digests and the image's run config (Cmd, Env, WorkingDir), so that
`hpcshim exec --runtime ch-run nvcr.io/nvidia/pytorch:22.03-py3 CMD` runs it
without asking the registry again. The record is written last, temp file +
rename, after the tree is complete: a record always names a whole image.

Names are compared in docker's full form (`busybox` = `docker.io/library/busybox:latest`),
the form minict stores them under, so `busybox` at pull and `busybox:latest` at exec match.
This module is on `hpcshim exec`'s path: json is imported only when a record exists.
"""

import os

DOCKER_HUB = "docker.io"


def full_name(ref: str) -> str:
    """docker's normalized form of an image reference (distribution/reference):
    `alpine` -> `docker.io/library/alpine:latest`. Not a validator: minict's
    pull checks the grammar; this only has to agree with it on valid names."""
    ref = ref.removeprefix("docker://")
    rest, at, digest = ref.partition("@")
    first, slash, path = rest.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        first, path = DOCKER_HUB, rest
    if first in ("index.docker.io", "registry-1.docker.io"):
        first = DOCKER_HUB
    if first == DOCKER_HUB and "/" not in path:
        path = "library/" + path
    if ":" not in path.rpartition("/")[2] and not at:
        path += ":latest"
    return f"{first}/{path}" + (f"@{digest}" if at else "")


def registry_of(ref: str) -> str:
    """The registry part of a reference (`docker.io` when it names none)."""
    return full_name(ref).split("/", 1)[0]


def is_loopback(registry: str) -> bool:
    """localhost or a 127.x / ::1 address, as written (minict's rule: plain HTTP allowed)."""
    host = registry.rpartition("]")[0].lstrip("[") if registry.startswith("[") else registry.partition(":")[0]
    return host.lower() == "localhost" or host.startswith("127.") or host == "::1"


def record_path(cache: str, ref: str) -> str:
    return os.path.join(cache, "pulled", full_name(ref).replace("/", "%").replace(":", "+") + ".json")


def write_record(cache: str, ref: str, record: dict) -> str:
    import json  # pull only
    from baselib.files import atomic_write  # pull only (tempfile)
    path = record_path(cache, ref)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    atomic_write(path, json.dumps(dict(record, name=full_name(ref)), indent=1).encode() + b"\n",
                 mode=0o600)
    return path


def find(cache: str | None, ref: str) -> dict | None:
    """The record of a pull of `ref` whose tree is still there, or None.
    `ref` may be anything IMAGE can be (this is asked only for names that are
    not files): a text no pull could have written simply has no record."""
    if cache is None or not ref or ref.startswith("/") or ("://" in ref and not ref.startswith("docker://")):
        return None
    try:
        with open(record_path(cache, ref), encoding="utf-8") as f:
            import json  # only when a record exists
            record = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not os.path.isdir(str(record.get("rootfs"))):
        return None      # removed from the cache since: pull again
    return record
