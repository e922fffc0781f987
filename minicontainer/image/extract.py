"""Extract one image layer (an untrusted tar blob) into its own directory.

extract_layer() is the front: it streams the blob through blob_reader.py
(decompression, both digests, the size cap) into LayerExtractor, which
writes each tar member itself, safely.

Why not tarfile.extractall? Its filters are wrong for a root filesystem:
`data` rejects absolute symlinks and device nodes (both normal in images),
`tar` strips setuid bits, and both resolve symlinks on the *host* while
checking. So we parse with tarfile (headers, pax, GNU long names) and do every
write ourselves, relative to directory file descriptors:

- Every entry's directory is opened by the kernel from a descriptor of the
  layer directory with no symlink allowed anywhere on the way (openat2
  RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, baselib.inroot), and the entry is
  made relative to that descriptor. An entry that would be written through
  a symlink is rejected. This is the defence against the classic "symlink
  then write through it" escape (CVE-2018-15664 and the docker cp /
  tar-split family); doing it with descriptors leaves no window between
  check and use.
- `..` components are rejected; absolute names are taken relative to the
  layer (contained), as every image tool does.
- A hardlink may only point at an entry already unpacked in this layer.
- Nothing may replace the layer's root with a non-directory.
- A pax record may not set trusted.* xattrs: those are overlayfs' own
  controls (trusted.overlay.redirect, .metacopy) and a layer must not forge
  them. We keep security.capability (file capabilities, e.g. ping's
  cap_net_raw) and user.* xattrs.

Whiteouts (OCI image-spec, layer.md "Whiteouts") become overlayfs
whiteouts here, once (whiteouts.py says how, with root and without), so
that running a container is a plain overlay mount.

Without root (runtime/rootless.py) device nodes are skipped, the layer's
own user.overlay.* xattrs are dropped (they would forge overlayfs'
controls), and directories keep u+rwx so the user can remove the layer
again. Owners cannot be set here: every file is the caller's (root inside
the user namespace). UnpackStats.owners records the image's other owners,
which the store then sets in a user namespace with subordinate ids
(keep_owners, idmap.py), or leaves squashed. UnpackStats lists what was
skipped or changed.

Metadata is applied in the order the kernel requires: chown before chmod
(chown clears setuid/setgid bits), xattrs after chown (chown clears
security.capability), times last; directory times at the very end, since
creating children changes a directory's mtime.
"""

import base64
import errno
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from baselib.inroot import open_in_root

from ..errors import DigestMismatch, UnsafeLayer
from ..fsutil import CHUNK
from .. import syscalls as sc
from .whiteouts import OPAQUE_MARKER, WHITEOUT_PREFIX, make_whiteout, mark_opaque
from .blob_reader import (DECOMPRESS_ERRORS, DecompressThread, HashingReader, TarStream, corrupt,
                          open_decompressed, sniff_compression, zstd_errors)


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

DEFAULT_MAX_ENTRIES = 2_000_000


def _allowed_xattr(name: str) -> bool:
    return name == "security.capability" or name.startswith("user.")


def xattrs_of(member: tarfile.TarInfo) -> dict[str, bytes]:
    """Extended attributes recorded in a member's pax headers.

    GNU tar and Go's archive/tar (docker, skopeo, umoci) write
    `SCHILY.xattr.NAME` with the raw value; libarchive (bsdtar) writes
    `LIBARCHIVE.xattr.URLENCODED-NAME` with a base64 value.
    """
    found = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            # tarfile decoded the value as UTF-8 with surrogateescape; undo it.
            raw = value.encode("utf-8", "surrogateescape")
        elif key.startswith("LIBARCHIVE.xattr."):
            name = unquote(key[len("LIBARCHIVE.xattr."):])
            raw = base64.b64decode(value + "=" * (-len(value) % 4))
        else:
            continue
        if _allowed_xattr(name):
            found[name] = raw
    return found


def safe_parts(name: str, what: str = "entry") -> list[str]:
    """Split a tar name into components, refusing ones that could escape."""
    if "\x00" in name:
        raise UnsafeLayer(f"layer {what} {name!r} contains a NUL byte", _UNSAFE_HINT)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayer(f"layer {what} {name!r} climbs out of the layer with '..'", _UNSAFE_HINT)
    return parts


_UNSAFE_HINT = "the image is malformed or hostile; do not use it"


@dataclass
class UnpackStats:
    entries: int = 0
    bytes_written: int = 0
    skipped: list[str] = field(default_factory=list)  # e.g. device nodes when not root
    # Without root: the entries the image gives another owner than root,
    # {path parts: (uid, gid, mode)}, for idmap-mapped stores (keep_owners)
    owners: dict[tuple[str, ...], tuple[int, int, int]] = field(default_factory=dict)


class LayerExtractor:
    """Writes the members of one tar into `dest`, safely. Use as a context manager."""

    def __init__(self, dest: str, max_entries: int = DEFAULT_MAX_ENTRIES,
                 dest_fd: int | None = None, kernel: sc.KernelApi | None = None):
        """`dest_fd`: the directory as an fd already opened (then `dest` only names it).
        `kernel`: makes the device nodes and whiteouts (mknod); a silent one by default."""
        self.dest = dest
        self.kernel = kernel or sc.Kernel()
        self.root_fd = os.open(dest if dest_fd is None else ".", DIR_FLAGS, dir_fd=dest_fd)
        self.max_entries = max_entries
        self.privileged = os.geteuid() == 0
        self.stats = UnpackStats()
        self._dir_times: list[tuple[tuple[str, ...], int]] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    # ---- walking ----------------------------------------------------------------

    def _open_dir(self, parts: list[str], create: bool, entry: str) -> int:
        """A new fd (the caller closes it) on the directory `parts` of the
        layer, opened without following any symlink on the way (the kernel
        checks every component: baselib.inroot, RESOLVE_NO_SYMLINKS) and,
        with `create`, made first (0755, as docker does) with any missing
        parents."""
        try:
            return open_in_root(self.root_fd, "/".join(parts), DIR_FLAGS, follow_symlinks=False)
        except FileNotFoundError:
            if not create or not parts:
                raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._no_directory_at(parts, entry) from None
            raise
        parent = self._open_dir(parts[:-1], True, entry)
        try:
            try:
                os.mkdir(parts[-1], 0o755, dir_fd=parent)
            except FileExistsError:
                pass   # another entry's parent, or something that is no directory (below)
            return os.open(parts[-1], DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._no_directory_at(parts, entry) from None
            raise
        finally:
            os.close(parent)

    def _no_directory_at(self, parts: list[str], entry: str) -> UnsafeLayer:
        """The error for a path of the layer that is not all directories: name
        the first component that is a symlink or a file."""
        for depth in range(1, len(parts) + 1):
            where = "/".join(parts[:depth])
            try:
                # Every component before this one is a real directory (the
                # loop got here), so the lookup follows no symlink.
                mode = os.lstat(where, dir_fd=self.root_fd).st_mode
            except FileNotFoundError:
                break
            if stat.S_ISLNK(mode):
                return UnsafeLayer(f"layer entry {entry!r} would be written through the "
                                   f"symlink {where!r}", _UNSAFE_HINT)
            if not stat.S_ISDIR(mode):
                return UnsafeLayer(f"layer entry {entry!r} needs {where!r} to be a directory, "
                                   f"but it is a file", _UNSAFE_HINT)
        return UnsafeLayer(f"layer entry {entry!r}: {'/'.join(parts)!r} changed while it was "
                           f"being unpacked", _UNSAFE_HINT)

    def _clear(self, parent_fd: int, name: str) -> None:
        """Remove whatever is at name, so a new entry can take its place.
        Tar archives may repeat a name; the last entry wins."""
        try:
            st = os.lstat(name, dir_fd=parent_fd)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=parent_fd)
        else:
            os.unlink(name, dir_fd=parent_fd)

    def _create(self, parent_fd: int, name: str, make):
        """Run make() to create name; if something is there already, clear
        it and try once more. (Creating first and clearing only on EEXIST
        saves an lstat per entry: most names are new.)"""
        try:
            return make()
        except FileExistsError:
            self._clear(parent_fd, name)
            return make()

    # ---- entries -------------------------------------------------------------

    def extract_all(self, tar: tarfile.TarFile) -> UnpackStats:
        while True:
            member = tar.next()
            if member is None:
                break
            tar.members = []  # tarfile keeps every member otherwise: O(n) memory
            self.stats.entries += 1
            if self.stats.entries > self.max_entries:
                raise UnsafeLayer(f"layer has more than {self.max_entries} entries",
                                  "a likely inode-exhaustion attack; do not use this image")
            self.extract(tar, member)
        self._apply_dir_times()
        return self.stats

    def extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = member.name
        parts = safe_parts(name)
        if not parts:
            if not member.isdir():
                raise UnsafeLayer(f"layer entry {name!r} would replace the layer's root "
                                  f"directory with a non-directory", _UNSAFE_HINT)
            self._set_dir_meta(self.root_fd, member, ())
            self._note_owner(member, ())
            return

        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts, name)
            return

        parent = self._open_dir(parts[:-1], True, name)
        try:
            self._extract_into(tar, member, parts, parent)
        finally:
            os.close(parent)
        self._note_owner(member, tuple(parts))

    def _note_owner(self, member, parts: tuple[str, ...]) -> None:
        """Without root the owner cannot be set now: remember it (the last
        entry of a path wins, as its file does)."""
        if self.privileged:
            return
        if member.uid or member.gid:
            self.stats.owners[parts] = (member.uid, member.gid, member.mode & 0o7777)
        else:
            self.stats.owners.pop(parts, None)

    def _extract_into(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parts: list[str],
                      parent: int) -> None:
        """Make one entry, `parts[-1]`, in the directory `parent` holds."""
        name, base = member.name, parts[-1]
        if member.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=parent)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(base, dir_fd=parent).st_mode):
                    self._clear(parent, base)
                    os.mkdir(base, 0o700, dir_fd=parent)
            fd = os.open(base, DIR_FLAGS, dir_fd=parent)
            try:
                self._set_dir_meta(fd, member, tuple(parts))
            finally:
                os.close(fd)
        elif member.isreg():
            self._write_file(tar, member, parent, base)
        elif member.issym():
            if "\x00" in member.linkname:
                raise UnsafeLayer(f"symlink {name!r} has a NUL byte in its target", _UNSAFE_HINT)
            # The target is stored as is, absolute or not: it is resolved
            # inside the container's root at run time, never here.
            self._create(parent, base, lambda: os.symlink(member.linkname, base, dir_fd=parent))
            self._set_link_meta(parent, base, member)
        elif member.islnk():
            self._hardlink(parts, parent, base, member)
        elif member.ischr() or member.isblk():
            if not self.privileged:
                self.stats.skipped.append(f"device node {name} (needs root)")
                return
            kind = "c" if member.ischr() else "b"
            self._create(parent, base, lambda: self.kernel.mknod_at(
                parent, base, kind, member.devmajor, member.devminor, 0o600,
                f"The layer's device node {name}"))
            self._set_node_meta(parent, base, member)
        elif member.isfifo():
            self._create(parent, base, lambda: os.mkfifo(base, 0o600, dir_fd=parent))
            self._set_node_meta(parent, base, member)
        else:
            self.stats.skipped.append(f"{name} (unsupported tar type {member.type!r})")

    def _write_file(self, tar, member, parent: int, base: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = self._create(parent, base, lambda: os.open(base, flags, 0o600, dir_fd=parent))
        try:
            source = tar.extractfile(member)
            remaining = member.size
            while remaining > 0:
                chunk = source.read(min(CHUNK, remaining))
                if not chunk:
                    raise EOFError(f"unexpected end of data in {member.name!r}")
                _write_all(fd, chunk)
                remaining -= len(chunk)
            self.stats.bytes_written += member.size
            if self.privileged:
                os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)
            for key, value in self._xattrs(member).items():
                _set_xattr(fd, key, value, member.name, self.stats)
            os.utime(fd, ns=(_ns(member.mtime), _ns(member.mtime)))
        finally:
            os.close(fd)

    def _set_dir_meta(self, fd: int, member, parts: tuple[str, ...]) -> None:
        if self.privileged:
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, member.mode & 0o7777)
        else:
            # u+rwx: else a user could neither fill nor remove a 0555 directory.
            os.fchmod(fd, (member.mode & 0o7777) | 0o700)
        for key, value in self._xattrs(member).items():
            _set_xattr(fd, key, value, member.name, self.stats)
        self._dir_times.append((parts, _ns(member.mtime)))

    def _xattrs(self, member) -> dict[str, bytes]:
        found = xattrs_of(member)
        if not self.privileged:
            for key in [k for k in found if k.startswith("user.overlay.")]:
                # In a user namespace these are overlayfs' own controls.
                del found[key]
                self.stats.skipped.append(f"xattr {key} on {member.name} (overlayfs' own "
                                          f"control without root)")
        return found

    def _set_link_meta(self, parent: int, base: str, member) -> None:
        if self.privileged:
            os.chown(base, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.utime(base, ns=(_ns(member.mtime), _ns(member.mtime)), dir_fd=parent,
                 follow_symlinks=False)

    def _set_node_meta(self, parent: int, base: str, member) -> None:
        # We created base a moment ago in a directory only we write to, so it
        # is the node itself, not a symlink planted by the archive.
        if self.privileged:
            os.chown(base, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        os.chmod(base, member.mode & 0o7777, dir_fd=parent)
        os.utime(base, ns=(_ns(member.mtime), _ns(member.mtime)), dir_fd=parent,
                 follow_symlinks=False)

    def _hardlink(self, parts, parent: int, base: str, member) -> None:
        target = safe_parts(member.linkname, what="hardlink target")
        if not target:
            raise UnsafeLayer(f"hardlink {member.name!r} points at the layer root", _UNSAFE_HINT)
        if target == parts:
            return  # a link to itself: nothing to do
        try:
            tparent = self._open_dir(target[:-1], create=False, entry=member.name)
        except FileNotFoundError:
            raise UnsafeLayer(f"hardlink {member.name!r} points at {member.linkname!r}, "
                              f"which is not in this layer", _UNSAFE_HINT) from None
        try:
            try:
                st = os.lstat(target[-1], dir_fd=tparent)
            except FileNotFoundError:
                raise UnsafeLayer(f"hardlink {member.name!r} points at {member.linkname!r}, "
                                  f"which is not in this layer", _UNSAFE_HINT) from None
            if stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"hardlink {member.name!r} points at a directory", _UNSAFE_HINT)
            self._create(parent, base, lambda: os.link(target[-1], base, src_dir_fd=tparent,
                                                       dst_dir_fd=parent, follow_symlinks=False))
        finally:
            os.close(tparent)

    def _whiteout(self, parts: list[str], entry: str) -> None:
        base = parts[-1]
        if base == OPAQUE_MARKER:
            # Opaque: set on the directory itself (created now if its own
            # entry comes later; that entry then keeps the xattr).
            fd = self._open_dir(parts[:-1], create=True, entry=entry)
            try:
                mark_opaque(fd, self.privileged)
            finally:
                os.close(fd)
            return
        if base.startswith(WHITEOUT_PREFIX * 2):
            return  # other .wh..wh. names are aufs bookkeeping (e.g. .wh..wh.plnk): ignore
        hidden = base[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", ".."):
            raise UnsafeLayer(f"layer entry {entry!r} is a whiteout with an invalid name",
                              _UNSAFE_HINT)
        parent = self._open_dir(parts[:-1], True, entry)
        try:
            try:
                os.lstat(hidden, dir_fd=parent)
                return  # the layer itself has NAME: a whiteout hides only lower layers
            except FileNotFoundError:
                pass
            make_whiteout(self.kernel, parent, hidden, entry, self.privileged)
        finally:
            os.close(parent)

    def _apply_dir_times(self) -> None:
        # Deepest first, so setting a parent's time is the last change to it.
        for parts, mtime in sorted(self._dir_times, key=lambda item: -len(item[0])):
            try:
                fd = self._open_dir(list(parts), create=False, entry="/".join(parts))
            except (FileNotFoundError, UnsafeLayer):
                continue  # replaced later in the archive; nothing to time
            try:
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)


def _ns(mtime) -> int:
    return int(mtime * 1_000_000_000)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _set_xattr(fd: int, key: str, value: bytes, name: str, stats: UnpackStats) -> None:
    try:
        os.setxattr(fd, key, value)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            stats.skipped.append(f"xattr {key} on {name} ({exc.strerror})")
        else:
            raise


# ---- a whole layer blob: stream it, extract it, check its digests ----------------

@dataclass
class ExtractedLayer:
    """What extract_layer found out about a layer while extracting it."""
    size: int            # bytes of the uncompressed tar
    blob_digest: str     # sha256 of the blob as read (compressed)
    blob_size: int
    diff_id: str         # sha256 of the uncompressed tar
    compression: str | None  # "gzip", "zstd" or None
    owners: dict = field(default_factory=dict)   # UnpackStats.owners (without root)
    skipped: list = field(default_factory=list)  # UnpackStats.skipped


def extract_layer(source, dest: Path, *, blob_digest: str | None, diff_id: str | None,
                 what: str, max_bytes: int, tee_path: Path | None = None) -> ExtractedLayer:
    """Extract the layer blob read from `source` into `dest` (created here).

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
                stats = extractor.extract_all(tar)
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
    return ExtractedLayer(size=producer.size, blob_digest=blob.digest(), blob_size=blob.size,
                         diff_id=tar_stream.diff_id(), compression=compression,
                         owners=stats.owners, skipped=stats.skipped)


def keep_owners(dest: str, owners: dict[tuple[str, ...], tuple[int, int, int]]) -> None:
    """Give each entry of an unpacked layer the owner the image gave it.

    Without root, and only inside a user namespace whose map has the
    owners' ids (idmap.run_in_user_namespace; the caller leaves out the
    ids the map lacks). Nothing follows a symlink on the way: each parent
    is opened with RESOLVE_NO_SYMLINKS, and a symlink entry is chowned
    itself. chown clears setuid/setgid bits, so the image's mode is set
    again afterwards, as the root extractor does (chown before chmod).
    """
    root_fd = os.open(dest, DIR_FLAGS)
    try:
        for parts, (uid, gid, mode) in owners.items():
            if not parts:
                os.fchown(root_fd, uid, gid)
                os.fchmod(root_fd, mode)
                continue
            try:
                parent = open_in_root(root_fd, "/".join(parts[:-1]),
                                      os.O_PATH | os.O_DIRECTORY, follow_symlinks=False)
            except FileNotFoundError:
                continue    # e.g. a device node, skipped without root
            try:
                kind = os.lstat(parts[-1], dir_fd=parent).st_mode
                os.chown(parts[-1], uid, gid, dir_fd=parent, follow_symlinks=False)
                if not stat.S_ISLNK(kind):
                    os.chmod(parts[-1], mode, dir_fd=parent)
            except FileNotFoundError:
                continue
            finally:
                os.close(parent)
    finally:
        os.close(root_fd)
