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
import queue
import threading
import zlib

from ..errors import ArchiveError, LayerTooLarge, UnsupportedMediaType
from ..fsutil import CHUNK

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BZIP2_MAGIC = b"BZh"
XZ_MAGIC = b"\xfd7zXZ\x00"


class PeekableReader:
    """A read-only stream that can look at its first bytes and still give
    them to the next read(): for a pipe or stdin, which cannot seek back."""

    def __init__(self, raw):
        self.raw = raw
        self._peeked = b""

    def peek(self, n: int) -> bytes:
        """The next `n` bytes (fewer at the end), left to be read."""
        if len(self._peeked) < n:
            self._peeked += self.raw.read(n - len(self._peeked))
        return self._peeked[:n]

    def read(self, n: int = -1) -> bytes:
        if not self._peeked:
            return self.raw.read(n)
        if n is None or n < 0:
            data, self._peeked = self._peeked + self.raw.read(), b""
        else:
            data, self._peeked = self._peeked[:n], self._peeked[n:]
        return data


class HashingReader:
    """Wrap a binary file: hash every byte read, optionally copy it to `tee`."""

    def __init__(self, raw, tee=None):
        self.raw = PeekableReader(raw)
        self.tee = tee
        self.hasher = hashlib.sha256()
        self.size = 0

    def peek_magic(self, n: int = 8) -> bytes:
        return self.raw.peek(n)

    def read(self, n: int = -1) -> bytes:
        # May return fewer bytes than asked (like a raw file); TarStream
        # loops until it has what it needs.
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


class DecompressThread(threading.Thread):
    """Read the decompressed layer in a helper thread and hand it over in
    chunks, counting them against the size cap on the way.

    Why a thread: zlib's inflate and sha256 release the GIL, so this thread
    decompresses on one core while the extractor creates files (and hashes
    the diff id) on the other, the same split `tar -xzf` gets from its gzip
    child process.
    """

    def __init__(self, source, max_bytes: int, what: str):
        super().__init__(name="layer-decompress", daemon=True)
        self.source = source
        self.max_bytes = max_bytes
        self.what = what
        self.size = 0
        self.chunks: queue.Queue = queue.Queue(maxsize=16)
        self.stopping = threading.Event()

    def run(self):
        try:
            while not self.stopping.is_set():
                data = self.source.read(CHUNK)
                if not data:
                    break
                self.size += len(data)
                if self.size > self.max_bytes:
                    raise LayerTooLarge(
                        f"{self.what} unpacks to more than {self.max_bytes} bytes",
                        "a decompression bomb, or a real layer over the cap: raise it with "
                        "MINICT_MAX_UNPACK if you trust the image")
                self._put(data)
            self._put(b"")  # end of stream
        except BaseException as exc:  # handed to the reading thread, re-raised there
            self._put(exc)

    def _put(self, item) -> None:
        while not self.stopping.is_set():
            try:
                self.chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        """Ask the thread to finish (after an error in the reader) and wait."""
        self.stopping.set()
        self.join()


class TarStream:
    """The uncompressed tar, read from a DecompressThread, as a
    forward-only file for tarfile.TarFile.

    tarfile in random-access mode ("r") only ever seeks forward when members
    are read in order, which is all an extractor does; so a forward seek is
    a read-and-discard, and a backward seek is a bug worth a loud error.
    """

    def __init__(self, producer: DecompressThread):
        self.producer = producer
        self.hasher = hashlib.sha256()  # the diff id: every uncompressed byte
        self.buffer = b""
        self.offset = 0   # into buffer
        self.pos = 0      # into the stream
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        item = self.producer.chunks.get()
        if isinstance(item, BaseException):
            self.eof = True
            raise item
        if not item:
            self.eof = True
            return False
        self.hasher.update(item)
        self.buffer = self.buffer[self.offset:] + item if self.offset < len(self.buffer) else item
        self.offset = 0
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = CHUNK
        while len(self.buffer) - self.offset < n and self._fill():
            pass
        data = self.buffer[self.offset:self.offset + n]
        self.offset += len(data)
        self.pos += len(data)
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
        # The standard library's reader: it checks each member's CRC-32 and
        # length, takes concatenated members (pigz -i) and zero padding, and
        # gives at most n bytes per read, so a bomb meets the size cap first.
        # (A zlib-only reader of ours measured no faster on Python 3.11.)
        return gzip.GzipFile(fileobj=blob, mode="rb")
    if compression == "zstd":
        import zstandard  # one of minict's extra dependencies: only zstd layers need it
        return zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True)
    return blob


DECOMPRESS_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def zstd_errors():
    try:
        import zstandard  # an extra dependency (see open_decompressed)
        return (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover - zstandard is a declared dependency
        return ()


def corrupt(what: str, exc: BaseException) -> ArchiveError:
    return ArchiveError(f"{what} is truncated or corrupt ({exc.__class__.__name__}: {exc})",
                        "download or export the image again")
