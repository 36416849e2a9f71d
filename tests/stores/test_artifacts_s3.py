"""Artifacts on S3: the store contract and what users of an S3 root rely on, against a
real S3 HTTP server (moto, on loopback) configured only through the standard AWS
environment.

Besides the contract: a value stored twice is uploaded once (checked with bucket
versioning, where every upload adds a version); a blob damaged on S3 is caught on
read and healed by one re-upload; racing writers leave one good object and no temp
keys; a listing never hides a later deletion; a process-executor run keeps its
outputs on S3 and `lockgate artifacts get` serves them verified; and a missing
bucket, refused credentials or an unreachable endpoint raise
`ArtifactStoreUnavailable` naming the root and the fix.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lockgate as lg
from lockgate.errors import (
    ArtifactCorrupted,
    ArtifactNotFoundError,
    ArtifactStoreUnavailable,
)
from lockgate.ports.artifacts import ArtifactRef
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.stores.artifacts import ContentAddressedStore, open_artifact_store
from lockgate.testing.artifact_contract import LARGE, ArtifactStoreContract
from s3_fixture import forget_s3_clients, s3_client, set_s3_env, split_s3_url

# --- helpers -----------------------------------------------------------------------


class S3Tamper:
    """Damages blobs through boto3, the way another client of the bucket could."""

    def __init__(self, root: str) -> None:
        self._bucket, self._prefix = split_s3_url(root)
        self._client = s3_client()

    def key(self, sha256: str) -> str:
        """The object key of a blob."""
        return f"{self._prefix}/sha256/{sha256[:2]}/{sha256}"

    def _read(self, sha256: str) -> bytes:
        response = self._client.get_object(Bucket=self._bucket, Key=self.key(sha256))
        return bytes(response["Body"].read())

    def _write(self, sha256: str, data: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=self.key(sha256), Body=data)

    def flip_byte(self, sha256: str) -> None:
        """Invert the middle byte of the object."""
        data = bytearray(self._read(sha256))
        data[len(data) // 2] ^= 0xFF
        self._write(sha256, bytes(data))

    def truncate(self, sha256: str) -> None:
        """Replace the object with its first half."""
        data = self._read(sha256)
        self._write(sha256, data[: len(data) // 2])

    def delete(self, sha256: str) -> None:
        """Delete the object."""
        self._client.delete_object(Bucket=self._bucket, Key=self.key(sha256))

    def keys(self) -> list[str]:
        """Every object key under the root's prefix."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=f"{self._prefix}/"
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def uploads(self, sha256: str) -> int:
        """How many versions (one per upload) the blob's key has; needs versioning on."""
        key = self.key(sha256)
        listed = self._client.list_object_versions(Bucket=self._bucket, Prefix=key)
        return sum(1 for version in listed.get("Versions", []) if version["Key"] == key)

    def enable_versioning(self) -> None:
        """Keep every upload of a key as a version, so re-uploads can be counted."""
        self._client.put_bucket_versioning(
            Bucket=self._bucket, VersioningConfiguration={"Status": "Enabled"}
        )


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sha256_hex(data: bytes) -> str:
    """The hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


# --- the contract ------------------------------------------------------------------


class TestS3Contract(ArtifactStoreContract):
    @pytest.fixture
    def store(self, s3_root: str) -> ContentAddressedStore:
        return open_artifact_store(s3_root)

    @pytest.fixture
    def tamper(self, s3_root: str) -> S3Tamper:
        return S3Tamper(s3_root)


@pytest.fixture
def store(s3_root: str) -> ContentAddressedStore:
    return open_artifact_store(s3_root)


@pytest.fixture
def tamper(s3_root: str) -> S3Tamper:
    return S3Tamper(s3_root)


# --- written once, verified on read --------------------------------------------------


def test_the_root_url_alone_reaches_the_bucket(
    store: ContentAddressedStore, tamper: S3Tamper
) -> None:
    ref = store.put(b"a" * LARGE)
    assert tamper.keys() == [tamper.key(ref.sha256)]
    assert tamper._read(ref.sha256) == b"a" * LARGE


def test_storing_a_value_again_uploads_nothing(
    s3_root: str, store: ContentAddressedStore, tamper: S3Tamper
) -> None:
    tamper.enable_versioning()
    value = b"v" * LARGE
    ref = store.put(value)
    assert tamper.uploads(ref.sha256) == 1
    assert store.put(value) == ref
    # Another process (a fresh store on the same root) finds it there too.
    forget_s3_clients()
    assert open_artifact_store(s3_root).put(bytes(bytearray(value))) == ref
    assert tamper.uploads(ref.sha256) == 1
    # Control: an upload does add a version, so the count above would have caught one.
    tamper.flip_byte(ref.sha256)
    assert tamper.uploads(ref.sha256) == 2


@pytest.mark.parametrize("damage", ["flip_byte", "truncate"])
def test_a_blob_damaged_on_s3_is_refused_and_one_reupload_heals_it(
    store: ContentAddressedStore, tamper: S3Tamper, damage: str
) -> None:
    tamper.enable_versioning()
    value = bytes(range(256)) * (LARGE // 256)
    ref = store.put(value)
    getattr(tamper, damage)(ref.sha256)
    with pytest.raises(ArtifactCorrupted) as caught:
        store.get(ref, what="output of node 'train' (run r-1)")
    message = str(caught.value)
    assert f"sha256 mismatch for artifact {ref.uri}" in message
    assert f"{store.root}/sha256/{ref.sha256[:2]}/{ref.sha256}" in message
    with pytest.raises(ArtifactCorrupted):
        store.verify(ref.sha256)
    assert store.put(value) == ref  # what re-running the producing task does
    assert tamper.uploads(ref.sha256) == 3  # original, damage, exactly one repair
    store.verify(ref.sha256)
    assert store.get(ref) == value


def test_a_deletion_after_a_listing_is_seen(store: ContentAddressedStore, tamper: S3Tamper) -> None:
    kept, dropped = store.put(b"k" * LARGE), store.put(b"d" * LARGE)
    assert sorted(store.blobs()) == sorted([kept.sha256, dropped.sha256])
    tamper.delete(dropped.sha256)  # another process's garbage collection
    assert not store.exists(dropped.sha256)
    assert list(store.blobs()) == [kept.sha256]
    with pytest.raises(ArtifactNotFoundError):
        store.get(dropped)
    assert store.put(b"d" * LARGE) == dropped
    assert store.get(dropped) == b"d" * LARGE


@pytest.mark.parametrize("kind", ["bytes", "npy"])
def test_racing_writers_of_one_value_leave_one_good_object(
    s3_root: str, tamper: S3Tamper, kind: str
) -> None:
    if kind == "npy":
        np = pytest.importorskip("numpy")
        value: Any = np.arange(LARGE // 8, dtype=np.float64)  # streamed: temp key, then move
    else:
        value = b"w" * LARGE  # one atomic put
    writers = 6
    start = threading.Barrier(writers)
    refs: list[ArtifactRef] = []
    failures: list[BaseException] = []

    def write() -> None:
        store = open_artifact_store(s3_root)
        start.wait()
        try:
            refs.append(store.put(value))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(refs) == writers and len(set(refs)) == 1
    ref = refs[0]
    assert tamper.keys() == [tamper.key(ref.sha256)]  # no temp keys, no second name
    assert sha256_hex(tamper._read(ref.sha256)) == ref.sha256
    store = open_artifact_store(s3_root)
    store.verify(ref.sha256)
    back = store.get(ref)
    if kind == "npy":
        assert (back == value).all()
    else:
        assert back == value


# --- a whole run, and the CLI ------------------------------------------------------------

PAYLOAD_SIZE = 200_000  # well over the inline limit: a blob on S3


@lg.task
def make_payload(seed: int) -> bytes:
    """Bytes that must live as a blob."""
    return bytes((seed + i) % 251 for i in range(PAYLOAD_SIZE))


@lg.task
def digest(data: bytes) -> str:
    """Runs in another worker process, so it reads the payload back from S3."""
    return hashlib.sha256(data).hexdigest()


@lg.pipeline
def payload_pipeline(seed: int = 7) -> Any:
    return digest(make_payload(seed))


def _lockgate(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    exe = Path(sys.executable).parent / "lockgate"
    return subprocess.run(
        [str(exe), *args], env=env, cwd=cwd, capture_output=True, timeout=120, check=False
    )


def test_a_process_run_keeps_outputs_on_s3_and_the_cli_serves_them_verified(
    s3_root: str, tamper: S3Tamper, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    workspace = Workspace(Settings.from_env({"LOCKGATE_ARTIFACT_ROOT": s3_root}, home=home))
    try:
        result = lg.run(payload_pipeline, workspace=workspace, executor="process", workers=2)
        assert result.ok
        records = workspace.metadata.list_artifacts(limit=10)
    finally:
        workspace.close()
    blobs = [record for record in records if record.stored == "blob"]
    assert len(blobs) == 1
    ref = blobs[0].ref
    assert ref.size == PAYLOAD_SIZE
    assert ref.sha256 == sha256_hex(bytes((7 + i) % 251 for i in range(PAYLOAD_SIZE)))
    assert result.output() == ref.sha256  # the consumer hashed what the producer stored
    assert tamper.keys() == [tamper.key(ref.sha256)]
    assert not (home / "artifacts").exists() or not any((home / "artifacts").rglob("*"))

    env = {**os.environ, "LOCKGATE_HOME": str(home), "LOCKGATE_ARTIFACT_ROOT": s3_root}
    env.pop("LOCKGATE_DB_URL", None)
    done = _lockgate(["artifacts", "get", ref.uri], env, tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert sha256_hex(done.stdout) == ref.sha256
    assert len(done.stdout) == PAYLOAD_SIZE

    tamper.flip_byte(ref.sha256)
    done = _lockgate(["artifacts", "get", ref.uri], env, tmp_path)
    assert done.returncode != 0
    assert done.stdout == b""
    assert f"sha256 mismatch for artifact {ref.uri}" in done.stderr.decode()

    missing = f"s3://lockgate-missing-{uuid.uuid4().hex[:12]}/artifacts"
    done = _lockgate(
        ["artifacts", "get", ref.uri], {**env, "LOCKGATE_ARTIFACT_ROOT": missing}, tmp_path
    )
    stderr = done.stderr.decode()
    assert done.returncode != 0
    assert "does not exist" in stderr and missing in stderr
    assert "Traceback" not in stderr


# --- a root that cannot be used ---------------------------------------------------------


def _attempts(store: ContentAddressedStore, ref: ArtifactRef) -> Iterator[tuple[str, Any]]:
    yield "put", lambda: store.put(b"n" * LARGE)
    yield "get", lambda: store.get(ref)
    yield "verify", lambda: store.verify(ref.sha256)
    yield "exists", lambda: store.exists(ref.sha256)
    yield "blobs", lambda: list(store.blobs())


def test_a_missing_bucket_is_named_never_an_empty_store(s3_root: str) -> None:
    ref = open_artifact_store(s3_root).put(b"n" * LARGE)
    bucket = f"lockgate-missing-{uuid.uuid4().hex[:12]}"
    root = f"s3://{bucket}/artifacts"
    store = open_artifact_store(root)
    for operation, call in _attempts(store, ref):
        with pytest.raises(ArtifactStoreUnavailable) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(f"artifact store at {root} cannot be used"), operation
        assert f"bucket {bucket!r} does not exist" in message, operation
        assert f"aws s3 mb s3://{bucket}" in message and "LOCKGATE_ARTIFACT_ROOT" in message


def test_refused_credentials_name_the_root_and_the_variables(
    s3_root: str, s3_server: str, s3_auth: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id, secret = s3_auth
    set_s3_env(monkeypatch, s3_server, access_key=key_id, secret_key=secret)
    ref = open_artifact_store(s3_root).put(b"n" * LARGE)  # control: the right key works
    for access_key, secret_key in ((key_id, "not-the-secret"), ("AKIAUNKNOWNKEY000000", secret)):
        set_s3_env(monkeypatch, s3_server, access_key=access_key, secret_key=secret_key)
        store = open_artifact_store(s3_root)
        for operation, call in _attempts(store, ref):
            with pytest.raises(ArtifactStoreUnavailable) as caught:
                call()
            message = str(caught.value)
            assert message.startswith(f"artifact store at {s3_root} cannot be used"), operation
            assert "access denied" in message, operation
            assert "AWS_ACCESS_KEY_ID" in message and "AWS_SECRET_ACCESS_KEY" in message


def test_no_credentials_at_all_is_named(s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    forget_s3_clients()
    with pytest.raises(ArtifactStoreUnavailable, match="Unable to locate credentials") as caught:
        open_artifact_store(s3_root).put(b"n" * LARGE)
    assert s3_root in str(caught.value) and "AWS_ACCESS_KEY_ID" in str(caught.value)


def test_an_unreachable_endpoint_is_named(s3_root: str, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    forget_s3_clients()
    with pytest.raises(ArtifactStoreUnavailable) as caught:
        open_artifact_store(s3_root).put(b"n" * LARGE)
    message = str(caught.value)
    assert s3_root in message and endpoint in message and "Check AWS_ENDPOINT_URL" in message
