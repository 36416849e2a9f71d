"""The artifact store port: immutable, content-addressed values.

An artifact is identified by the sha256 of its serialized bytes. Writing the
same bytes twice stores them once; reading verifies the hash. Small payloads
travel inline in the ref (and are kept by the metadata store) so that the
common case of a small result costs no file write.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

URI_PREFIX = "lockgate://artifacts/sha256/"


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """Everything needed to find, verify and decode one artifact.

    Attributes:
        sha256: hex digest of the serialized bytes; the artifact's identity.
        serializer: how the bytes decode ("json", "npy", "parquet", "bytes", "pickle").
        size: number of serialized bytes.
        type_name: qualified type of the original value, for display.
        length: len() of the value when it is a list or tuple (map nodes need it).
        inline: the bytes themselves when small enough to keep in the metadata
            store; None when they live in the blob store.
    """

    sha256: str
    serializer: str
    size: int
    type_name: str
    length: int | None = None
    inline: bytes | None = None

    @property
    def uri(self) -> str:
        """The versioned URI: `lockgate://artifacts/sha256/<hex>`."""
        return URI_PREFIX + self.sha256

    def without_inline(self) -> ArtifactRef:
        """The same ref minus its inline bytes (for display and comparisons)."""
        return ArtifactRef(self.sha256, self.serializer, self.size, self.type_name, self.length)


class ArtifactStore(Protocol):
    """Stores values as immutable content-addressed artifacts."""

    @property
    def root(self) -> str:
        """Where blobs live, as a URL or path, for messages."""
        ...

    def put(self, value: Any, *, what: str = "artifact") -> ArtifactRef:
        """Serialize and store `value`; idempotent for equal bytes.

        Args:
            value: any value a serializer accepts.
            what: describes the value in error messages ("output of task 'train'").

        Raises:
            UnserializableOutputError: no serializer can store the value.
            ArtifactStoreFull: the store ran out of space; nothing partial is visible.
        """
        ...

    def get(self, ref: ArtifactRef, *, trusted: bool = False, what: str = "artifact") -> Any:
        """Read, verify and decode an artifact.

        Args:
            ref: the artifact.
            trusted: allow pickle decoding (only for artifacts this installation produced).
            what: describes the artifact in error messages.

        Raises:
            ArtifactNotFoundError: no blob with that hash.
            ArtifactCorrupted: the bytes do not match the hash.
            UntrustedArtifactError: decoding needs unpickling and `trusted` is False.
        """
        ...

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        """The verified serialized bytes of an artifact."""
        ...

    def exists(self, sha256: str) -> bool:
        """True if a blob with this hash is stored (inline artifacts have none)."""
        ...

    def verify(self, sha256: str) -> None:
        """Re-hash a stored blob.

        Raises:
            ArtifactNotFoundError: no such blob.
            ArtifactCorrupted: its content does not match its name.
        """
        ...

    def blobs(self) -> Iterator[str]:
        """Hashes of every stored blob."""
        ...
