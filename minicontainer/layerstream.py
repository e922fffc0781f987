"""Reading a layer blob: detect its compression, decompress as a stream,
and hash both sides on the way through.

A layer is checked twice (OCI image-spec, config.md "rootfs"):
- the blob's own sha256 (over the compressed bytes) must match the digest the
  manifest names: that proves we got the bytes the publisher meant;
- the sha256 of the *uncompressed* tar must match the config's diff_id for
  that layer: that proves the tar we unpack is the one the config describes.

Both hashes are computed while the bytes stream past, so a layer is read from
disk or network exactly once. The uncompressed size is capped on the way
through, which stops a decompression bomb before it fills the disk.
"""

import gzip
import hashlib
import zlib

from .errors import ArchiveError, LayerTooLarge, UnsupportedMediaType
from .fsutil import CHUNK

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


class HashingReader:
    """Wrap a binary file: hash every byte read, optionally copy it to `tee`."""

    def __init__(self, raw, tee=None):
        self.raw = raw
        self.tee = tee
        self.hasher = hashlib.sha256()
        self.size = 0
        self._peeked = b""

    def peek_magic(self, n: int = 8) -> bytes:
        if len(self._peeked) < n:
            self._peeked += self.raw.read(n - len(self._peeked))
        return self._peeked[:n]

    def read(self, n: int = -1) -> bytes:
        # May return fewer bytes than asked (like a raw file); TarStream
        # loops until it has what it needs.
        if self._peeked:
            if n is None or n < 0:
                data, self._peeked = self._peeked + self.raw.read(), b""
            else:
                data, self._peeked = self._peeked[:n], self._peeked[n:]
        else:
            data = self.raw.read(n)
        if data:
            self.hasher.update(data)
            self.size += len(data)
            if self.tee is not None:
                self.tee.write(data)
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to the end, so the digest covers the whole blob."""
        while self.read(CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


class TarStream:
    """The uncompressed tar as a forward-only file for tarfile.TarFile.

    tarfile in random-access mode ("r") only ever seeks forward when members
    are read in order, which is all an extractor does; so a forward seek is
    a read-and-discard, and a backward seek is a bug worth a loud error.
    """

    def __init__(self, source, max_bytes: int, what: str):
        self.source = source
        self.max_bytes = max_bytes
        self.what = what
        self.hasher = hashlib.sha256()
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        data = self.source.read(n)
        while data and len(data) < n:  # tarfile treats a short read as truncation
            more = self.source.read(n - len(data))
            if not more:
                break
            data += more
        if data:
            self.pos += len(data)
            if self.pos > self.max_bytes:
                raise LayerTooLarge(
                    f"{self.what} unpacks to more than {self.max_bytes} bytes",
                    "a decompression bomb, or a real layer over the cap: raise it with "
                    "--max-size or MINICT_MAX_UNPACK if you trust the image")
            self.hasher.update(data)
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 1:
            offset += self.pos
        elif whence != 0:
            raise OSError("TarStream supports only forward seeks")
        if offset < self.pos:
            raise OSError(f"TarStream cannot seek backwards ({offset} < {self.pos})")
        while self.pos < offset:
            if not self.read(min(CHUNK, offset - self.pos)):
                break
        return self.pos

    def drain(self) -> None:
        """Read what tarfile left unread (end-of-archive padding), for the diff id."""
        while self.read(CHUNK):
            pass

    def diff_id(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def sniff_compression(blob: HashingReader, what: str) -> str | None:
    """"gzip", "zstd" or None (a plain tar), from the first bytes."""
    magic = blob.peek_magic(6)
    if magic.startswith(GZIP_MAGIC):
        return "gzip"
    if magic.startswith(ZSTD_MAGIC):
        return "zstd"
    if magic.startswith(BZIP2_MAGIC) or magic.startswith(XZ_MAGIC):
        raise UnsupportedMediaType(
            f"{what} is compressed with bzip2/xz, which OCI layers do not allow",
            "recompress it with gzip or zstd")
    return None


def open_decompressed(blob: HashingReader, what: str):
    """Return a reader of the uncompressed tar, choosing by the magic bytes.

    We sniff instead of trusting the media type alone: `docker save` writes
    plain tars under names that say nothing, and some registries serve gzip
    under a plain-tar media type. The media type is still checked by the
    caller against the list we support.
    """
    compression = sniff_compression(blob, what)
    if compression == "gzip":
        # GzipFile handles multi-member gzip (pigz -i, concatenated streams).
        return gzip.GzipFile(fileobj=blob, mode="rb")
    if compression == "zstd":
        import zstandard  # lazy: only zstd layers pay for it
        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    return blob


DECOMPRESS_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def zstd_errors():
    try:
        import zstandard
        return (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover - zstandard is a declared dependency
        return ()


def corrupt(what: str, exc: BaseException) -> ArchiveError:
    return ArchiveError(f"{what} is truncated or corrupt ({exc.__class__.__name__}: {exc})",
                        "download or export the image again")
