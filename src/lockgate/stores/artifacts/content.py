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
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
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
            return self._get_array(digest, what, label)
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
        """Re-hash a stored blob.

        Raises:
            InvalidArtifactKey: `sha256` is not an artifact id.
            ArtifactNotFoundError: no such blob.
            ArtifactCorrupted: its content does not match its name.
        """
        digest = parse_artifact_id(sha256)
        file, _ = self._open(digest, "artifact")
        with file:
            found = hash_file(file)
        if found != digest:
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
        if ref.inline is not None:
            data = bytes(ref.inline)
            where = "the inline bytes in the ref"
        else:
            file, _ = self._open(digest, what)
            with file:
                data = file.read()
            where = "the stored bytes"
        found = hashlib.sha256(data).hexdigest()
        if found != digest:
            detail = f" ({len(data)} bytes, expected {ref.size})" if len(data) != ref.size else ""
            raise self._corrupted(digest, what, f"{where} hash to {found}{detail}")
        return data

    def _get_array(self, digest: str, what: str, label: str) -> Any:
        file, size = self._open(digest, what)
        failure: Exception | None = None
        with file:
            reader = _HashingReader(file)
            try:
                value = serializers.read_npy(reader, size)
            except Exception as exc:  # judged after the hash: corruption explains most
                failure, value = exc, None
            found = reader.hexdigest_after_draining()
        if found != digest:
            raise self._corrupted(digest, what, f"the stored bytes hash to {found}")
        if failure is not None:
            raise ArtifactError(
                f"artifact {label} does not decode as npy: {type(failure).__name__}: {failure}"
            ) from failure
        return value

    def _corrupted(self, digest: str, what: str, found: str) -> ArtifactCorrupted:
        return ArtifactCorrupted(
            f"sha256 mismatch for artifact {URI_PREFIX}{digest} ({what}): {found}. "
            f"Re-run the producing task or restore the blob at {self._blobs.describe(digest)}"
        )
