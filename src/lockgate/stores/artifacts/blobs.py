"""Blob backends: where serialized bytes live, each file named by its sha256.

Layout under a root: `sha256/<first 2 hex>/<64 hex>`. `LocalBlobs` keeps it
on a local disk; `fsspec_blobs.FsspecBlobs` on any fsspec filesystem.
Both hash while writing, so a caller streams bytes in and learns the name
at the end.

Invariants:
- A blob is visible under its name only when complete. Bytes go to a temp
  file `.tmp-<random>` first; locally it is fsynced, renamed into place,
  and the directory fsynced (the F12 order). A crash leaves at most a temp
  file, which `sweep_temp` removes.
- Blob names derive only from digests the caller validated or this module
  computed; nothing here joins user text into a path.
- Local reads never follow a symlink below the root (`O_NOFOLLOW` on every
  component), so a link planted in the store cannot redirect a read.
- A name this process knows holds the right bytes (`verified`) is left
  alone; otherwise publishing renames the new blob over whatever holds the
  name: the same bytes, wrong bytes or a symlink. Re-running the producer so
  heals a corrupt blob, without hashing what was there first.
- `LocalBlobs` tells the store which blobs this process already verified
  (`known_intact`), tied to the file's identity, so a read of a blob it
  wrote or hashed need not hash it again; `verified` says why that is sound.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from lockgate import failpoints
from lockgate.errors import ArtifactError, ArtifactStoreFull
from lockgate.stores.artifacts import verified

__all__ = [
    "TEMP_PREFIX",
    "BlobBackend",
    "HashingSink",
    "LocalBlobs",
    "UnsafeBlob",
    "hash_file",
    "is_space_error",
    "older_than_cutoff",
    "store_full",
]

TEMP_PREFIX = ".tmp-"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")
_CHUNK = 1 << 20
# Below this, starting a thread costs more than hashing beside the write saves.
_PARALLEL_HASH_MIN = 1 << 20
# EFBIG is what a file-size cap (RLIMIT_FSIZE, a filesystem's maximum) gives:
# to the user it is the same "no room for this blob" as a full disk.
_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeBlob(Exception):  # internal signal, reported as ArtifactCorrupted
    """A blob's name is held by a symlink or something else that is not a regular file."""


class HashingSink:
    """Passes bytes to `write` while hashing and counting them.

    A large chunk is hashed on a helper thread while `write` runs: sha256
    and file writes both release the GIL, so on two cores a big blob costs
    about the longer of the two instead of their sum. Every chunk is hashed
    and written before `write` returns, as if done one after the other.
    """

    def __init__(self, write: Callable[[memoryview], object]) -> None:
        self._write = write
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        """Hash and forward all of `data`; return its length."""
        view = memoryview(data).cast("B")
        if view.nbytes < _PARALLEL_HASH_MIN:
            self._hash.update(view)
            self._write(view)
        else:
            hasher = _Hasher(self._hash, view)
            try:
                self._write(view)
            finally:
                hasher.finish()
        self.size += view.nbytes
        return view.nbytes

    def hexdigest(self) -> str:
        """The sha256 of everything written so far."""
        return self._hash.hexdigest()


class _Hasher(threading.Thread):
    """Hashes one chunk on its own thread; `finish` waits and re-raises its error."""

    def __init__(self, digest: Any, view: memoryview) -> None:
        super().__init__(name="lockgate-blob-hash", daemon=True)
        self._digest, self._view = digest, view
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._digest.update(self._view)
        except BaseException as exc:  # handed to the writing thread by finish()
            self._error = exc

    def finish(self) -> None:
        self.join()
        if self._error is not None:
            raise self._error


class BlobBackend(Protocol):
    """The small interface `ContentAddressedStore` needs from where bytes live."""

    @property
    def location(self) -> str:
        """The root, as a path or URL, for messages."""
        ...

    def write_bytes(self, sha256: str, data: bytes, *, what: str) -> None:
        """Store `data`, whose digest the caller computed, under `sha256`."""
        ...

    def write_stream(
        self, produce: Callable[[HashingSink], object], *, what: str, size_hint: int
    ) -> tuple[str, int]:
        """Store what `produce` writes; return its digest and size."""
        ...

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        """Open a blob for reading; return the file and its size.

        Raises FileNotFoundError if absent and UnsafeBlob if not a regular file.
        """
        ...

    def known_intact(self, sha256: str, file: BinaryIO) -> bool:
        """True if this process already saw `file`, as `open` gave it, hold `sha256`'s bytes.

        A backend that cannot tell returns False, and every read is hashed.
        """
        ...

    def remember_intact(self, sha256: str, file: BinaryIO, since_ns: int) -> None:
        """Note that `file`'s bytes, read from `since_ns` (`time.time_ns()`) on, match `sha256`."""
        ...

    def forget(self, sha256: str) -> None:
        """Stop trusting any earlier verification of `sha256` (it was found corrupt)."""
        ...

    def exists(self, sha256: str) -> bool:
        """True if something holds the blob's name (verify says whether it is good)."""
        ...

    def hashes(self) -> Iterator[str]:
        """Names of all blobs, sorted."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove a blob; a missing one is not an error."""
        ...

    def describe(self, sha256: str) -> str:
        """Where the blob lives, for messages."""
        ...

    def sweep_temp(self, older_than: float) -> int:
        """Remove temp files older than `older_than` seconds; return how many."""
        ...


def store_full(what: str, size: int, root: str, exc: OSError) -> ArtifactStoreFull:
    """Build the message for a write that ran out of room."""
    reason = "" if exc.errno == errno.ENOSPC else f" ({os.strerror(exc.errno or 0)})"
    return ArtifactStoreFull(
        f"no space left writing {what} (~{size} bytes) at {root}{reason}; free space or "
        "move LOCKGATE_ARTIFACT_ROOT, then resume the run"
    )


def is_space_error(exc: OSError) -> bool:
    """True if `exc` means there is no room for the blob."""
    return exc.errno in _SPACE_ERRNOS


def hash_file(file: BinaryIO) -> str:
    """The sha256 of everything left in `file`, read in chunks."""
    digest = hashlib.sha256()
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def older_than_cutoff(older_than: float) -> float:
    """The wall-clock time before which a temp file counts as a crash leftover."""
    if older_than < 0:
        raise ValueError(f"older_than must be >= 0 seconds, got {older_than!r}")
    return time.time() - older_than


def _make_directory(parent: int, name: str) -> None:
    """Ensure `name` is a real directory in `parent`, durably.

    Something else planted under a layout directory's name (a symlink, a
    file) is removed: the layout belongs to the store, and writing must not
    follow a link out of it nor fail forever because of one.
    """
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(info.st_mode):
            return
        os.unlink(name, dir_fd=parent)
    with contextlib.suppress(FileExistsError):  # a concurrent writer made it first
        os.mkdir(name, 0o755, dir_fd=parent)
    os.fsync(parent)  # the new directory's entry must survive a crash too


class LocalBlobs:
    """Blobs on a local filesystem, published atomically and read without following links."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Keep blobs under `root`, which is created on first write.

        Args:
            root: a directory; a relative path is made absolute now, so a
                worker that changes directory still writes to the same place.
        """
        # absolute(), not resolve(): a root that is a symlink the user chose stays one.
        self._root = Path(root).absolute()

    @property
    def location(self) -> str:
        """The root directory."""
        return str(self._root)

    def describe(self, sha256: str) -> str:
        """The blob's path."""
        return str(self._root / "sha256" / sha256[:2] / sha256)

    @contextlib.contextmanager
    def _directory(self, *parts: str, create: bool) -> Iterator[int]:
        """Yield an fd for root/parts..., refusing symlinks below the root."""
        with contextlib.ExitStack() as stack:
            if create:
                self._root.mkdir(parents=True, exist_ok=True)
            # The root itself may be a link the user chose (e.g. to a bigger disk).
            fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            stack.callback(os.close, fd)
            for part in parts:
                if create:
                    _make_directory(fd, part)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                stack.callback(os.close, child)
                fd = child
            yield fd

    def write_bytes(self, sha256: str, data: bytes, *, what: str) -> None:
        """Store `data` under `sha256`, with the temp file beside its final name."""
        # Anything odd (no shard, a link in the way) means write: publishing sorts it out.
        with (
            contextlib.suppress(OSError),
            self._directory("sha256", sha256[:2], create=False) as shard_dir,
        ):
            if verified.known(sha256, os.stat(sha256, dir_fd=shard_dir, follow_symlinks=False)):
                return  # this process wrote or hashed exactly these bytes there
        self._write(lambda sink: sink.write(data), what=what, size_hint=len(data), sha256=sha256)

    def write_stream(
        self, produce: Callable[[HashingSink], object], *, what: str, size_hint: int
    ) -> tuple[str, int]:
        """Store what `produce` writes; return its digest and size.

        The temp file sits in `sha256/`, since the shard is unknown until the
        last byte; it is the same filesystem, so the rename stays atomic.
        """
        return self._write(produce, what=what, size_hint=size_hint, sha256=None)

    def _write(
        self,
        produce: Callable[[HashingSink], object],
        *,
        what: str,
        size_hint: int,
        sha256: str | None,
    ) -> tuple[str, int]:
        temp_parts = ("sha256", sha256[:2]) if sha256 else ("sha256",)
        name = TEMP_PREFIX + secrets.token_hex(8)
        try:
            with self._directory(*temp_parts, create=True) as temp_dir:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(name, flags, 0o600, dir_fd=temp_dir)
                try:
                    digest, size, settled = self._fill(fd, produce, what)
                    failpoints.hit("artifact.after_fsync_before_rename", what)
                    if sha256 is not None and digest != sha256:
                        raise ArtifactError(f"the bytes of {what} changed while being written")
                    with self._directory("sha256", digest[:2], create=True) as shard_dir:
                        if self._publish(temp_dir, name, shard_dir, digest):
                            verified.remember_written(digest, fd, settled)
                    failpoints.hit("artifact.after_rename_before_db", what)
                finally:
                    os.close(fd)
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=temp_dir)
        except OSError as exc:
            if is_space_error(exc):
                raise store_full(what, size_hint, str(self._root), exc) from exc
            raise
        return digest, size

    @staticmethod
    def _fill(
        fd: int, produce: Callable[[HashingSink], object], what: str
    ) -> tuple[str, int, int | None]:
        """Write, hash and fsync the temp file; return digest, size and settled mtime."""

        def write_all(view: memoryview) -> None:
            while view:
                view = view[os.write(fd, view) :]

        sink = HashingSink(write_all)
        produce(sink)
        failpoints.hit("artifact.after_tmp_write", what)
        os.fchmod(fd, 0o444)  # blobs are immutable; make accidents loud
        settled = verified.settle_mtime(fd)  # before the fsync, so it is durable with the bytes
        os.fsync(fd)
        return sink.hexdigest(), sink.size, settled

    @staticmethod
    def _publish(temp_dir: int, name: str, shard_dir: int, digest: str) -> bool:
        """Rename the temp file into place; False if the name already holds its bytes."""
        try:
            info = os.stat(digest, dir_fd=shard_dir, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if verified.known(digest, info):
                return False  # the caller drops the temp file
        # Whatever else holds the name (the same bytes from another process, a
        # corrupt blob, a planted symlink) is replaced: renaming costs less than
        # hashing it to find out, and rename never follows a link.
        os.rename(name, digest, src_dir_fd=temp_dir, dst_dir_fd=shard_dir)
        os.fsync(shard_dir)
        return True

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        """Open a blob without following links; see `BlobBackend.open`."""
        try:
            with self._directory("sha256", sha256[:2], create=False) as shard_dir:
                # O_NONBLOCK: a FIFO planted under a blob's name must not hang the read.
                flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
                fd = os.open(sha256, flags, dir_fd=shard_dir)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeBlob(self.describe(sha256)) from exc
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise UnsafeBlob(self.describe(sha256))
        return os.fdopen(fd, "rb", buffering=0), info.st_size

    def known_intact(self, sha256: str, file: BinaryIO) -> bool:
        """True if `file` is, by its identity, a file this process saw hold `sha256`'s bytes.

        Ask again after reading: a change to the file while it was read
        changes its identity too.
        """
        return verified.known(sha256, os.fstat(file.fileno()))

    def remember_intact(self, sha256: str, file: BinaryIO, since_ns: int) -> None:
        """Let later reads skip hashing `file`, if it had settled before `since_ns`."""
        verified.remember_hashed(sha256, file.fileno(), since_ns)

    def forget(self, sha256: str) -> None:
        """Hash the blob again on its next read."""
        verified.forget(sha256)

    def exists(self, sha256: str) -> bool:
        """True if anything holds the name, even a symlink (verify reports it)."""
        try:
            with self._directory("sha256", sha256[:2], create=False) as shard_dir:
                os.stat(sha256, dir_fd=shard_dir, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                return True  # a link or file in place of a directory: not a good blob
            raise
        return True

    def _shard_paths(self) -> list[Path]:
        base = self._root / "sha256"
        if base.is_symlink() or not base.is_dir():
            return []
        with os.scandir(base) as entries:
            return sorted(
                Path(entry.path)
                for entry in entries
                if _SHARD.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
            )

    def hashes(self) -> Iterator[str]:
        """Every name in a shard that looks like a blob, sorted.

        Symlinks and other non-files under a blob's name are listed too, so
        that verifying everything `hashes()` yields reports them.
        """
        for shard in self._shard_paths():
            prefix = shard.name
            with os.scandir(shard) as entries:
                names = sorted(entry.name for entry in entries)
            yield from (n for n in names if _HEX64.fullmatch(n) and n.startswith(prefix))

    def delete(self, sha256: str) -> None:
        """Remove a blob (and durably forget its name)."""
        with (
            contextlib.suppress(FileNotFoundError),
            self._directory("sha256", sha256[:2], create=False) as shard_dir,
        ):
            verified.forget(sha256)
            os.unlink(sha256, dir_fd=shard_dir)
            os.fsync(shard_dir)

    def sweep_temp(self, older_than: float) -> int:
        """Remove `.tmp-*` files last written more than `older_than` seconds ago.

        A write in progress keeps touching its temp file, so choose an age
        longer than the slowest single blob write, plus a few seconds: a
        finished temp file, while it is fsynced and renamed into place,
        carries an mtime 3 s in the past (see `verified.settle_mtime`).

        Returns:
            How many files were removed.
        """
        cutoff = older_than_cutoff(older_than)
        base = self._root / "sha256"
        if base.is_symlink() or not base.is_dir():
            return 0
        removed = 0
        for directory in [base, *self._shard_paths()]:
            with os.scandir(directory) as entries:
                stale = [
                    Path(entry.path)
                    for entry in entries
                    if entry.name.startswith(TEMP_PREFIX)
                    and entry.stat(follow_symlinks=False).st_mtime < cutoff
                ]
            for path in stale:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed
