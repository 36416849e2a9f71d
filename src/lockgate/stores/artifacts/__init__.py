"""The content-addressed artifact store: `ArtifactStore` over local disk or fsspec.

Values are serialized (json, bytes, npy, parquet, or guarded pickle), named
by the sha256 of their bytes, kept inline in the ref when small and as
`<root>/sha256/<2 hex>/<64 hex>` blobs otherwise, and verified on every
read. Importing this package imports neither numpy, pandas, pyarrow,
cloudpickle nor fsspec; each loads when first needed.
"""

from __future__ import annotations

from lockgate.errors import ConfigError
from lockgate.stores.artifacts.blobs import LocalBlobs
from lockgate.stores.artifacts.content import DEFAULT_INLINE_LIMIT, ContentAddressedStore
from lockgate.stores.artifacts.fsspec_blobs import FsspecBlobs
from lockgate.stores.artifacts.keys import parse_artifact_id, validate_name

__all__ = [
    "DEFAULT_INLINE_LIMIT",
    "ContentAddressedStore",
    "open_artifact_store",
    "parse_artifact_id",
    "validate_name",
]


def open_artifact_store(
    root: str, *, inline_limit: int = DEFAULT_INLINE_LIMIT
) -> ContentAddressedStore:
    """Open the artifact store at `root`.

    Args:
        root: a local path, a `file://` URL, or any fsspec URL
            (`s3://bucket/prefix`, `memory://name`). Local roots are created
            on first write.
        inline_limit: payloads of at most this many bytes are kept inline in
            refs (the metadata store holds them) instead of as blobs.

    Returns:
        The store.

    Raises:
        ConfigError: `inline_limit` is negative or `root` is an unusable URL.
    """
    if not isinstance(root, str) or not root:
        raise ConfigError(f"artifact root must be a path or URL, got {root!r}")
    scheme, separator, _ = root.partition("://")
    if not separator:
        return ContentAddressedStore(LocalBlobs(root), inline_limit=inline_limit)
    if scheme == "file":
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(root)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"artifact root {root!r}: file:// URLs must name a local path")
        return ContentAddressedStore(LocalBlobs(unquote(parts.path)), inline_limit=inline_limit)
    try:
        blobs = FsspecBlobs(root)
    except ImportError as exc:
        extra = "s3" if scheme in ("s3", "s3a") else "fsspec"
        raise ConfigError(
            f"artifact root {root!r} needs fsspec (and the filesystem's package): "
            f"{exc}; pip install 'lockgate[{extra}]'"
        ) from exc
    except ValueError as exc:  # fsspec: unknown protocol
        raise ConfigError(f"artifact root {root!r}: {exc}") from exc
    return ContentAddressedStore(blobs, inline_limit=inline_limit)
