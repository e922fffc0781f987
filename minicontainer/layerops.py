"""Unpack one layer blob into a directory, verifying both of its digests.

Kept apart from store.py so that read-only commands (`minict images`,
`minict run`) never import tarfile, gzip or zstandard.
"""

import tarfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DigestMismatch
from .layerstream import (DECOMPRESS_ERRORS, DecompressThread, HashingReader, TarStream,
                          corrupt, open_decompressed, sniff_compression, zstd_errors)
from .unpack import LayerExtractor


@dataclass
class UnpackedLayer:
    size: int            # bytes of the uncompressed tar
    blob_digest: str     # sha256 of the blob as read (compressed)
    blob_size: int
    diff_id: str         # sha256 of the uncompressed tar
    compression: str | None  # "gzip", "zstd" or None


def unpack_layer(source, dest: Path, *, blob_digest: str | None, diff_id: str | None,
                 what: str, max_bytes: int, tee_path: Path | None = None) -> UnpackedLayer:
    """Unpack the layer blob read from `source` into `dest` (created here).

    The digests are checked after the bytes have streamed through. That is
    safe because the extractor never writes outside `dest` whatever the tar
    holds, and the caller throws `dest` away when a check fails.
    A digest given as None is computed, not checked (docker save archives
    name no layer digests).
    """
    dest.mkdir(mode=0o755)
    tee = open(tee_path, "wb") if tee_path else None
    producer = None
    try:
        blob = HashingReader(source, tee)
        try:
            compression = sniff_compression(blob, what)
            producer = DecompressThread(open_decompressed(blob, what), max_bytes, what)
            producer.start()
            tar_stream = TarStream(producer)
            tar = tarfile.TarFile(fileobj=tar_stream, mode="r")
            with LayerExtractor(str(dest)) as extractor:
                extractor.extract_all(tar)
            tar_stream.drain()  # the end-of-archive blocks count in the diff id
            producer.join()
            blob.drain()
        except (tarfile.TarError, *DECOMPRESS_ERRORS, *zstd_errors()) as exc:
            raise corrupt(what, exc) from exc
    finally:
        if producer is not None:
            producer.stop()
        if tee:
            tee.close()
    if blob_digest and blob.digest() != blob_digest:
        raise DigestMismatch(f"{what} has digest {blob.digest()}, expected {blob_digest}",
                             "the blob is corrupt or was tampered with; fetch it again")
    if diff_id and tar_stream.diff_id() != diff_id:
        raise DigestMismatch(f"{what} unpacks to diff id {tar_stream.diff_id()}, but the image "
                             f"config says {diff_id}",
                             "the image is corrupt or was tampered with; fetch it again")
    return UnpackedLayer(size=producer.size, blob_digest=blob.digest(), blob_size=blob.size,
                         diff_id=tar_stream.diff_id(), compression=compression)
