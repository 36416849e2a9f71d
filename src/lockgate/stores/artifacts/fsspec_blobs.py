"""Blobs on any fsspec filesystem (S3, GCS, memory://...), in the local layout.

Same layout and contract as `blobs.LocalBlobs`: `<prefix>/sha256/<2 hex>/<64 hex>`.
fsspec is imported only when a backend is constructed.

Invariants:
- A blob appears under its name only when complete: on object stores
  (whose puts are atomic) through one put, elsewhere through a temp key
  `.tmp-<random>` that is moved into place once written and hashed.
- Keys derive only from digests; nothing here joins user text into a key.
- A name already holding the right bytes is not written again; one holding
  wrong bytes is overwritten, so re-running the producer heals it.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from lockgate.stores.artifacts.blobs import (
    TEMP_PREFIX,
    HashingSink,
    hash_file,
    is_space_error,
    older_than_cutoff,
    store_full,
)

__all__ = ["FsspecBlobs"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
# Object stores publish a put whole or not at all; no temp key is needed.
_ATOMIC_PUT_PROTOCOLS = frozenset({"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


class FsspecBlobs:
    """Blobs on any fsspec filesystem, in the same layout as `LocalBlobs`."""

    def __init__(self, url: str) -> None:
        """Use the filesystem and prefix named by `url` (imports fsspec now)."""
        import fsspec

        self._url = url
        self._fs: Any
        self._fs, path = fsspec.core.url_to_fs(url)
        self._base = path.rstrip("/")
        protocols = self._fs.protocol
        names = {protocols} if isinstance(protocols, str) else set(protocols)
        self._atomic_put = bool(names & _ATOMIC_PUT_PROTOCOLS)

    @property
    def location(self) -> str:
        """The URL this backend was opened with."""
        return self._url

    def _path(self, sha256: str) -> str:
        return f"{self._base}/sha256/{sha256[:2]}/{sha256}"

    def describe(self, sha256: str) -> str:
        """The blob's URL."""
        return str(self._fs.unstrip_protocol(self._path(sha256)))

    def _intact(self, path: str, digest: str, size: int) -> bool:
        try:
            info = self._fs.info(path)
        except FileNotFoundError:
            return False
        if info.get("size") != size:
            return False
        with self._fs.open(path, "rb") as file:
            return hash_file(file) == digest

    def write_bytes(self, sha256: str, data: bytes, *, what: str) -> None:
        """Store `data` under `sha256`: one put where puts are atomic, else temp + move."""
        path = self._path(sha256)
        try:
            if self._intact(path, sha256, len(data)):
                return
            if self._atomic_put:
                self._fs.pipe_file(path, data)
            else:
                self._write_stream(lambda sink: sink.write(data), what=what)
        except OSError as exc:
            if is_space_error(exc):
                raise store_full(what, len(data), self._url, exc) from exc
            raise

    def write_stream(
        self, produce: Callable[[HashingSink], object], *, what: str, size_hint: int
    ) -> tuple[str, int]:
        """Store what `produce` writes through a temp key, then move it into place."""
        try:
            return self._write_stream(produce, what=what)
        except OSError as exc:
            if is_space_error(exc):
                raise store_full(what, size_hint, self._url, exc) from exc
            raise

    def _write_stream(
        self, produce: Callable[[HashingSink], object], *, what: str
    ) -> tuple[str, int]:
        temp = f"{self._base}/sha256/{TEMP_PREFIX}{secrets.token_hex(8)}"
        moved = False
        try:
            if not self._atomic_put:
                self._fs.makedirs(f"{self._base}/sha256", exist_ok=True)
            with self._fs.open(temp, "wb") as file:
                sink = HashingSink(file.write)
                produce(sink)
            digest = sink.hexdigest()
            path = self._path(digest)
            if not self._intact(path, digest, sink.size):
                if not self._atomic_put:
                    self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                self._fs.mv(temp, path)
                moved = True
        finally:
            if not moved:
                with contextlib.suppress(OSError):
                    self._fs.rm_file(temp)
        return digest, sink.size

    def open(self, sha256: str) -> tuple[BinaryIO, int]:
        """Open a blob for reading; FileNotFoundError if absent."""
        path = self._path(sha256)
        file = self._fs.open(path, "rb")
        size = getattr(file, "size", None)
        return file, int(size if size is not None else self._fs.size(path))

    def exists(self, sha256: str) -> bool:
        """True if an object holds the blob's name."""
        return bool(self._fs.exists(self._path(sha256)))

    def _find(self) -> list[str]:
        try:
            return sorted(self._fs.find(f"{self._base}/sha256"))
        except FileNotFoundError:
            return []

    def hashes(self) -> Iterator[str]:
        """Every key in the layout that looks like a blob."""
        for path in self._find():
            parts = path.rsplit("/", 2)
            if len(parts) == 3 and _HEX64.fullmatch(parts[2]) and parts[1] == parts[2][:2]:
                yield parts[2]

    def delete(self, sha256: str) -> None:
        """Remove a blob; a missing one is not an error."""
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path(sha256))

    def sweep_temp(self, older_than: float) -> int:
        """Remove temp keys last written more than `older_than` seconds ago.

        Keys whose age the filesystem cannot report are kept.

        Returns:
            How many keys were removed.
        """
        cutoff = older_than_cutoff(older_than)
        removed = 0
        for path in self._find():
            if not path.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
                continue
            try:
                modified = self._fs.modified(path).timestamp()
            except (NotImplementedError, FileNotFoundError):
                continue
            if modified < cutoff:
                with contextlib.suppress(FileNotFoundError):
                    self._fs.rm_file(path)
                    removed += 1
        return removed
