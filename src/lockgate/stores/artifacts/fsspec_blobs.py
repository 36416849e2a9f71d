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
- A root that cannot be used (its bucket missing, access denied, the server
  unreachable) raises `ArtifactStoreUnavailable` naming the root and the fix,
  never the backend's own exception, and never looks like an empty store.
- Object-store listings are not cached: another process or host may delete
  or repair a blob at any time, and every answer must reflect the store now.

S3 endpoints and credentials come from the standard AWS environment
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_DEFAULT_REGION,
AWS_ENDPOINT_URL for MinIO and other S3-compatible servers), which botocore
reads itself; nothing here passes them.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from lockgate.errors import ArtifactStoreUnavailable
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
# Object stores whose first path segment is a bucket (or container).
_BUCKET_PROTOCOLS = _ATOMIC_PUT_PROTOCOLS - {"memory"}
_S3_PROTOCOLS = frozenset({"s3", "s3a"})
_S3_CREDENTIALS = (
    "the credentials in the standard AWS environment (AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE) and that they may list, read and write {root}"
)


def _backend_errors(protocols: set[str]) -> tuple[type[BaseException], ...]:
    """The exception base classes of a backend's client library that mean "cannot use it".

    s3fs turns S3's answers into OSErrors but lets botocore's own errors (no
    credentials, endpoint unreachable) through.
    """
    if not protocols & _S3_PROTOCOLS:
        return ()
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # s3fs without botocore cannot happen; nothing to catch then
        return ()
    return (BotoCoreError,)


class FsspecBlobs:
    """Blobs on any fsspec filesystem, in the same layout as `LocalBlobs`."""

    def __init__(self, url: str) -> None:
        """Use the filesystem and prefix named by `url` (imports fsspec now)."""
        import fsspec

        scheme = url.partition("://")[0].split("::")[0]
        options: dict[str, Any] = {}
        if scheme in _BUCKET_PROTOCOLS:
            # Listings cached by an earlier call go stale when another process
            # deletes or repairs a blob; an artifact store must see the store now.
            options["use_listings_cache"] = False
        self._url = url
        self._fs: Any
        self._fs, path = fsspec.core.url_to_fs(url, **options)
        self._base = path.rstrip("/")
        protocols = self._fs.protocol
        names = {protocols} if isinstance(protocols, str) else set(protocols)
        self._atomic_put = bool(names & _ATOMIC_PUT_PROTOCOLS)
        self._bucket = self._base.split("/", 1)[0] if names & _BUCKET_PROTOCOLS else None
        self._s3 = bool(names & _S3_PROTOCOLS)
        self._client_errors = _backend_errors(names)

    @property
    def location(self) -> str:
        """The URL this backend was opened with."""
        return self._url

    def _unavailable(
        self, problem: str, fix: str, exc: BaseException | None
    ) -> ArtifactStoreUnavailable:
        cause = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
        return ArtifactStoreUnavailable(
            f"artifact store at {self._url} cannot be used: {problem}{cause}. {fix}, "
            "or point LOCKGATE_ARTIFACT_ROOT (or [artifacts] root in lockgate.toml) "
            "at a store that can be used"
        )

    def _check_bucket(self, exc: BaseException | None = None) -> None:
        """Raise `ArtifactStoreUnavailable` if the root's bucket does not exist.

        Called only when something was not found, so that a missing bucket
        never reads as a missing blob or an empty store.
        """
        if self._bucket is None:
            return
        try:
            self._fs.info(self._bucket)
            return
        except FileNotFoundError:
            pass
        except PermissionError:
            return  # may not look at the bucket itself: what was not found stays so
        except self._client_errors as error:
            raise self._client_failed(error) from error
        where = " (at the server AWS_ENDPOINT_URL names, if set)" if self._s3 else ""
        create = f" (aws s3 mb s3://{self._bucket})" if self._s3 else ""
        raise self._unavailable(
            f"bucket {self._bucket!r} does not exist{where}", f"Create the bucket{create}", exc
        ) from exc

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn "access denied" and the client library's own errors into ours."""
        try:
            yield
        except PermissionError as exc:
            fix = (
                _S3_CREDENTIALS
                if self._s3
                else "the filesystem's credentials and their rights on {root}"
            )
            raise self._unavailable(
                "access denied", "Check " + fix.format(root=self._url), exc
            ) from exc
        except self._client_errors as exc:
            raise self._client_failed(exc) from exc

    def _client_failed(self, exc: BaseException) -> ArtifactStoreUnavailable:
        fix = (
            "Check AWS_ENDPOINT_URL (unset for AWS itself), the network, and "
            + _S3_CREDENTIALS.format(root=self._url)
        )
        return self._unavailable("the S3 client failed", fix, exc)

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
            with self._guard():
                if self._intact(path, sha256, len(data)):
                    return
                if self._atomic_put:
                    self._fs.pipe_file(path, data)
                else:
                    self._write_stream(lambda sink: sink.write(data), what=what)
        except FileNotFoundError as exc:  # a write finds nothing missing but the bucket
            self._check_bucket(exc)
            raise
        except OSError as exc:
            if is_space_error(exc):
                raise store_full(what, len(data), self._url, exc) from exc
            raise

    def write_stream(
        self, produce: Callable[[HashingSink], object], *, what: str, size_hint: int
    ) -> tuple[str, int]:
        """Store what `produce` writes through a temp key, then move it into place."""
        try:
            with self._guard():
                return self._write_stream(produce, what=what)
        except FileNotFoundError as exc:
            self._check_bucket(exc)
            raise
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
        with self._guard():
            try:
                file = self._fs.open(path, "rb")
            except FileNotFoundError as exc:
                self._check_bucket(exc)
                raise
            size = getattr(file, "size", None)
            return file, int(size if size is not None else self._fs.size(path))

    def known_intact(self, sha256: str, file: BinaryIO) -> bool:
        """Always False: a remote object has no identity to tie a past hash to."""
        return False

    def remember_intact(self, sha256: str, file: BinaryIO, since_ns: int) -> None:
        """Nothing to remember (see `known_intact`)."""

    def forget(self, sha256: str) -> None:
        """Nothing remembered (see `known_intact`)."""

    def exists(self, sha256: str) -> bool:
        """True if an object holds the blob's name."""
        with self._guard():
            found = bool(self._fs.exists(self._path(sha256)))
        if not found:
            self._check_bucket()
        return found

    def _find(self) -> list[str]:
        with self._guard():
            try:
                found = sorted(self._fs.find(f"{self._base}/sha256"))
            except FileNotFoundError as exc:
                self._check_bucket(exc)
                return []
        if not found:
            self._check_bucket()
        return found

    def hashes(self) -> Iterator[str]:
        """Every key in the layout that looks like a blob."""
        for path in self._find():
            parts = path.rsplit("/", 2)
            if len(parts) == 3 and _HEX64.fullmatch(parts[2]) and parts[1] == parts[2][:2]:
                yield parts[2]

    def delete(self, sha256: str) -> None:
        """Remove a blob; a missing one is not an error."""
        with self._guard(), contextlib.suppress(FileNotFoundError):
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
                with self._guard():
                    modified = self._fs.modified(path).timestamp()
            except (NotImplementedError, FileNotFoundError):
                continue
            if modified < cutoff:
                with self._guard(), contextlib.suppress(FileNotFoundError):
                    self._fs.rm_file(path)
                    removed += 1
        return removed
