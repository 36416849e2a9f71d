"""The content-addressed artifact store: values in, verified values out.

`ContentAddressedStore` implements the `ArtifactStore` port over a blob
backend (`LocalBlobs` or `FsspecBlobs`). It picks a serializer, keeps small
payloads inline in the ref, writes the rest as blobs named by their sha256,
and verifies the hash on every read.

Invariants:
- An artifact's identity is the sha256 of its serialized bytes; equal bytes
  give one blob, written once.
- No value is returned, and nothing is unpickled, before its bytes match
  the hash in the ref.
- Pickles are decoded only with `trusted=True`; the check comes before any
  read, so an untrusted pickle's bytes are never even fetched.
- Ids are validated before any filesystem call (`keys.parse_artifact_id`).
- A big numpy array is streamed to the blob and read back into one buffer:
  never two copies of it in memory.
- A blob is hashed on every read unless the backend says this process
  already saw that very file hold those bytes (`BlobBackend.known_intact`,
  asked before and after reading); a blob that fails its hash is forgotten.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from lockgate.errors import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactNotFoundError,
    ConfigError,
)
from lockgate.ports.artifacts import URI_PREFIX, ArtifactRef
from lockgate.stores.artifacts import serializers
from lockgate.stores.artifacts.blobs import BlobBackend, UnsafeBlob, hash_file
from lockgate.stores.artifacts.keys import parse_artifact_id

__all__ = ["DEFAULT_INLINE_LIMIT", "ContentAddressedStore"]

#: Payloads up to this many bytes travel inside the ref, not as blobs.
DEFAULT_INLINE_LIMIT = 16384


def _read_all(reader: Any, _size: int) -> bytes:
    data: bytes = reader.read()
    return data


class _Undecodable(Exception):  # internal: bytes that match their hash but do not decode
    """Raised from the decode error of a verified blob."""


class _HashingReader:
    """Reads from a file while hashing everything read."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._hash = hashlib.sha256()
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._hash.update(data)
        self._position += len(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        count = self._file.readinto(buffer) or 0  # type: ignore[attr-defined]
        self._hash.update(buffer[:count])
        self._position += count
        return count

    def tell(self) -> int:
        return self._position

    def hexdigest_after_draining(self) -> str:
        """Hash whatever is left too: trailing bytes are corruption as well."""
        while self.read(1 << 20):
            pass
        return self._hash.hexdigest()


class ContentAddressedStore:
    """Stores values as immutable artifacts named by the sha256 of their bytes.

    Use `open_artifact_store` to build one from a path or URL.
    """

    def __init__(self, blobs: BlobBackend, *, inline_limit: int = DEFAULT_INLINE_LIMIT) -> None:
        """Wrap a blob backend.

        Args:
            blobs: where blobs live.
            inline_limit: payloads of at most this many bytes are returned
                inline in the ref and not written as blobs.

        Raises:
            ConfigError: `inline_limit` is negative.
        """
        if isinstance(inline_limit, bool) or not isinstance(inline_limit, int) or inline_limit < 0:
            raise ConfigError(
                f"inline_limit must be a whole number of bytes >= 0, got {inline_limit!r}"
            )
        self._blobs = blobs
        self._inline_limit = inline_limit

    @property
    def root(self) -> str:
        """Where blobs live, as a path or URL."""
        return self._blobs.location

    @property
    def inline_limit(self) -> int:
        """Payloads of at most this many bytes stay inline in refs."""
        return self._inline_limit

    def put(self, value: Any, *, what: str = "artifact") -> ArtifactRef:
        """Serialize and store `value`; see `ArtifactStore.put`.

        Args:
            value: anything a serializer accepts.
            what: describes the value in error messages.

        Returns:
            The ref; `inline` holds the bytes when they are small.

        Raises:
            UnserializableOutputError: no serializer can store the value.
            ArtifactStoreFull: no space; no partial blob is left visible.
        """
        encoded = serializers.encode(value, what=what, stream_above=self._inline_limit)
        if encoded.data is not None:
            data = encoded.data
            digest = hashlib.sha256(data).hexdigest()
            inline: bytes | None = data
            if len(data) > self._inline_limit:
                self._blobs.write_bytes(digest, data, what=what)
                inline = None
            size = len(data)
        else:
            assert encoded.stream is not None  # encode sets one or the other
            digest, size = self._blobs.write_stream(
                encoded.stream, what=what, size_hint=encoded.size_hint
            )
            inline = None
        return ArtifactRef(
            sha256=digest,
            serializer=encoded.serializer,
            size=size,
            type_name=encoded.type_name,
            length=encoded.length,
            inline=inline,
        )

    def get(self, ref: ArtifactRef, *, trusted: bool = False, what: str = "artifact") -> Any:
        """Read, verify and decode an artifact; see `ArtifactStore.get`.

        Args:
            ref: the artifact.
            trusted: allow unpickling; pass True only for refs this
                installation recorded itself.
            what: describes the artifact in error messages.

        Returns:
            The value.

        Raises:
            InvalidArtifactKey: the ref's hash is malformed.
            ArtifactNotFoundError: no blob with that hash.
            ArtifactCorrupted: the bytes do not match the hash.
            UntrustedArtifactError: the artifact is a pickle and `trusted` is False.
        """
        digest = parse_artifact_id(ref.sha256)
        label = f"sha256:{digest} ({what})"
        if ref.serializer == "pickle" and not trusted:
            raise serializers.untrusted_error(label)
        if ref.inline is None and ref.serializer == "npy":
            return self._get_array(digest, what, label, ref.size)
        data = self._verified_bytes(ref, digest, what)
        return serializers.decode(ref.serializer, data, trusted=trusted, label=label)

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        """The verified serialized bytes of an artifact (inline or from its blob).

        Raises:
            InvalidArtifactKey: the ref's hash is malformed.
            ArtifactNotFoundError: no blob with that hash.
            ArtifactCorrupted: the bytes do not match the hash.
        """
        return self._verified_bytes(ref, parse_artifact_id(ref.sha256), "artifact")

    def exists(self, sha256: str) -> bool:
        """True if a blob with this hash (any accepted id form) is stored.

        Inline artifacts have no blob. A name held by a symlink or other
        non-file counts as present, so that `verify` gets to report it.

        Raises:
            InvalidArtifactKey: `sha256` is not an artifact id.
        """
        return self._blobs.exists(parse_artifact_id(sha256))

    def verify(self, sha256: str) -> None:
        """Re-hash a stored blob, even one this process has verified before.

        Raises:
            InvalidArtifactKey: `sha256` is not an artifact id.
            ArtifactNotFoundError: no such blob.
            ArtifactCorrupted: its content does not match its name.
        """
        digest = parse_artifact_id(sha256)
        file, _ = self._open(digest, "artifact")
        with file:
            since = time.time_ns()
            found = hash_file(file)
            if found == digest:
                self._blobs.remember_intact(digest, file, since)
        if found != digest:
            self._blobs.forget(digest)
            raise self._corrupted(digest, "artifact", f"the stored bytes hash to {found}")

    def blobs(self) -> Iterator[str]:
        """Hashes of every stored blob, sorted (inline artifacts have none)."""
        return self._blobs.hashes()

    def sweep_temp(self, older_than: float) -> int:
        """Remove temp files left by crashed writes; return how many.

        Args:
            older_than: only files untouched for this many seconds; choose
                more than the slowest single blob write.
        """
        return self._blobs.sweep_temp(older_than)

    # --- reading ------------------------------------------------------------

    def _open(self, digest: str, what: str) -> tuple[BinaryIO, int]:
        try:
            return self._blobs.open(digest)
        except UnsafeBlob:
            found = "the blob is a symlink or not a regular file, which lockgate never follows"
            raise self._corrupted(digest, what, found) from None
        except FileNotFoundError:
            raise ArtifactNotFoundError(
                f"artifact {URI_PREFIX}{digest} ({what}) is not in the artifact store at "
                f"{self.root}: its blob was deleted or never written. Re-run the producing "
                "task or restore the blob"
            ) from None

    def _verified_bytes(self, ref: ArtifactRef, digest: str, what: str) -> bytes:
        if ref.inline is None:
            data: bytes = self._read_blob(digest, what, _read_all, ref.size)
            return data
        data = bytes(ref.inline)
        found = hashlib.sha256(data).hexdigest()
        if found != digest:
            detail = f" ({len(data)} bytes, expected {ref.size})" if len(data) != ref.size else ""
            raise self._corrupted(
                digest, what, f"the inline bytes in the ref hash to {found}{detail}"
            )
        return data

    def _get_array(self, digest: str, what: str, label: str, size: int) -> Any:
        try:
            return self._read_blob(digest, what, serializers.read_npy, size)
        except _Undecodable as exc:
            failure = exc.__cause__
            raise ArtifactError(
                f"artifact {label} does not decode as npy: {type(failure).__name__}: {failure}"
            ) from failure

    def _read_blob(
        self, digest: str, what: str, decode: Callable[[Any, int], Any], expected_size: int
    ) -> Any:
        """Open a blob and `decode(reader, size)` it, with its hash checked.

        The hash is checked while reading, so a large blob is read once. A
        file this process already verified, unchanged since by its identity,
        is decoded without hashing.

        Raises:
            ArtifactNotFoundError, ArtifactCorrupted: see `get`.
            _Undecodable: the bytes match the hash but `decode` failed.
        """
        file, size = self._open(digest, what)
        with file:
            if self._blobs.known_intact(digest, file):
                with contextlib.suppress(Exception):  # hashing below judges what went wrong
                    value = decode(file, size)
                    # Asked again: a change while reading changes the identity too.
                    if self._blobs.known_intact(digest, file):
                        return value
                file.seek(0)
            since = time.time_ns()
            reader = _HashingReader(file)
            failure: Exception | None = None
            try:
                value = decode(reader, size)
            except Exception as exc:  # judged after the hash: corruption explains most
                failure, value = exc, None
            found = reader.hexdigest_after_draining()
            if found == digest:
                self._blobs.remember_intact(digest, file, since)
        if found != digest:
            self._blobs.forget(digest)
            got = reader.tell()
            detail = f" ({got} bytes, expected {expected_size})" if got != expected_size else ""
            raise self._corrupted(digest, what, f"the stored bytes hash to {found}{detail}")
        if failure is not None:
            raise _Undecodable() from failure
        return value

    def _corrupted(self, digest: str, what: str, found: str) -> ArtifactCorrupted:
        return ArtifactCorrupted(
            f"sha256 mismatch for artifact {URI_PREFIX}{digest} ({what}): {found}. "
            f"Re-run the producing task or restore the blob at {self._blobs.describe(digest)}"
        )
