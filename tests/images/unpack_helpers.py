"""Helpers for the extractor tests: unpack a tar, make a stand-in host."""

import io
from pathlib import Path

from minicontainer.image.extract import extract_layer
from tests.helpers.images import compress, sha256


def unpack(tar_bytes: bytes, dest: Path, compression=None, max_bytes=1 << 30, diff_id="auto"):
    """Unpack a layer tar (optionally compressed) into dest; return the result."""
    blob = compress(tar_bytes, compression)
    return extract_layer(io.BytesIO(blob), dest, blob_digest=sha256(blob),
                        diff_id=sha256(tar_bytes) if diff_id == "auto" else diff_id,
                        what="test layer", max_bytes=max_bytes)


def make_host(tmp_path: Path) -> Path:
    """A stand-in for 'the host outside the layer dir', with bait in it."""
    host = tmp_path / "host"
    (host / "etc").mkdir(parents=True)
    (host / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (host / "victim").mkdir()
    (host / "victim/file").write_text("precious")
    return host
