"""Reads skip re-hashing a local blob this process already verified, and only that.

The memory is tied to the file's identity (`stores/artifacts/verified.py`),
so every way of damaging a blob behind the store's back, done at once after
writing it, is still caught by the next read in the same process.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lockgate.errors import ArtifactCorrupted
from lockgate.ports.artifacts import ArtifactRef
from lockgate.stores.artifacts import ContentAddressedStore, content, serializers, verified
from lockgate.stores.artifacts.blobs import HashingSink, LocalBlobs

BIG = 1 << 21  # above the inline limit, and above the size hashed on a helper thread


@pytest.fixture(autouse=True)
def empty_memory() -> Iterator[None]:
    verified._known.clear()
    yield
    verified._known.clear()


@pytest.fixture
def store(tmp_path: Path) -> ContentAddressedStore:
    return ContentAddressedStore(LocalBlobs(tmp_path / "artifacts"))


@pytest.fixture
def hashed_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every read that hashes a blob (the others trust the memory)."""
    reads: list[str] = []

    class Counting(content._HashingReader):
        def __init__(self, file: Any) -> None:
            reads.append("hashed")
            super().__init__(file)

    monkeypatch.setattr(content, "_HashingReader", Counting)
    return reads


def blob_path(store: ContentAddressedStore, ref: ArtifactRef) -> Path:
    return Path(store.root) / "sha256" / ref.sha256[:2] / ref.sha256


def flip_in_place(path: Path) -> None:
    """One byte changed through an ordinary write: same file, same size."""
    path.chmod(0o644)
    with path.open("r+b") as file:
        file.seek(path.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))


def flip_and_restore_mtime(path: Path) -> None:
    before = path.stat()
    flip_in_place(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def truncate(path: Path) -> None:
    path.chmod(0o644)
    os.truncate(path, path.stat().st_size - 1)


def replace_by_rename(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    other = path.with_name("replacement")
    other.write_bytes(data)
    other.replace(path)


def delete_and_recreate(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.unlink()
    path.write_bytes(data)


DAMAGE: dict[str, Callable[[Path], None]] = {
    "flip": flip_in_place,
    "flip, mtime restored": flip_and_restore_mtime,
    "truncate": truncate,
    "replace": replace_by_rename,
    "recreate": delete_and_recreate,
}
VALUES: dict[str, Callable[[], Any]] = {
    "npy": lambda: np.arange(BIG // 8, dtype=np.float64),
    "bytes": lambda: os.urandom(BIG),
}


def test_reads_of_a_blob_this_process_wrote_are_not_hashed_again(
    store: ContentAddressedStore, hashed_reads: list[str]
) -> None:
    array = np.arange(BIG // 8, dtype=np.float64)
    data = os.urandom(BIG)
    array_ref, bytes_ref = store.put(array), store.put(data)
    for _ in range(2):
        np.testing.assert_array_equal(store.get(array_ref), array)
        assert store.get(bytes_ref) == data
        assert store.read_bytes(bytes_ref) == data
    assert hashed_reads == []


@pytest.mark.parametrize("kind", VALUES)
@pytest.mark.parametrize("damage", DAMAGE)
def test_damage_right_after_writing_is_caught_by_the_same_process(
    store: ContentAddressedStore, hashed_reads: list[str], kind: str, damage: str
) -> None:
    value = VALUES[kind]()
    ref = store.put(value)
    store.get(ref)  # remembered, and read once from the memory
    assert hashed_reads == []
    DAMAGE[damage](blob_path(store, ref))  # no pause: within one clock tick of the write
    with pytest.raises(ArtifactCorrupted, match="sha256 mismatch"):
        store.get(ref)
    with pytest.raises(ArtifactCorrupted):  # and it stays caught
        store.get(ref)
    assert store.put(value) == ref  # putting it again heals it
    back = store.get(ref)
    assert back.tobytes() == value.tobytes() if kind == "npy" else back == value


def test_a_change_while_reading_from_memory_is_caught(
    store: ContentAddressedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = store.put(np.ones(BIG // 8))
    path = blob_path(store, ref)
    original = serializers.read_npy
    damaged: list[bool] = []

    def read_then_damage(reader: Any, size: int) -> Any:
        value = original(reader, size)
        if not damaged:  # behind the reader's back, after it read the bytes
            damaged.append(True)
            flip_in_place(path)
        return value

    monkeypatch.setattr(serializers, "read_npy", read_then_damage)
    with pytest.raises(ArtifactCorrupted):
        store.get(ref)


def test_a_new_process_hashes_what_this_one_remembers(
    store: ContentAddressedStore, tmp_path: Path
) -> None:
    ref = store.put(os.urandom(BIG))
    store.get(ref)
    path = blob_path(store, ref)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    with path.open("r+b") as file:  # same size, and the old mtime put back
        before = path.stat()
        file.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    reader = textwrap.dedent(
        """
        import sys
        from lockgate.errors import ArtifactCorrupted
        from lockgate.ports.artifacts import ArtifactRef
        from lockgate.stores.artifacts import open_artifact_store
        ref = ArtifactRef(sys.argv[2], "bytes", int(sys.argv[3]), "builtins.bytes")
        try:
            open_artifact_store(sys.argv[1]).get(ref)
        except ArtifactCorrupted:
            print("corrupted")
        """
    )
    found = subprocess.run(
        [sys.executable, "-c", reader, store.root, ref.sha256, str(ref.size)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout == "corrupted\n", found.stderr
    with pytest.raises(ArtifactCorrupted):
        store.get(ref)


def test_blobs_another_process_wrote_are_remembered_after_one_hashed_read(
    store: ContentAddressedStore, hashed_reads: list[str]
) -> None:
    ref = store.put(np.ones(BIG // 8))
    verified._known.clear()  # as if another process had written it
    for _ in range(3):
        store.get(ref)
    assert hashed_reads == ["hashed"]  # its mtime was settled when it was written


def test_recently_changed_files_are_hashed_on_every_read(
    store: ContentAddressedStore, hashed_reads: list[str]
) -> None:
    ref = store.put(os.urandom(BIG))
    verified._known.clear()
    path = blob_path(store, ref)
    os.utime(path)  # now: a change in the same clock tick could keep this mtime
    for _ in range(3):
        store.get(ref)
    assert hashed_reads == ["hashed"] * 3
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, time.time_ns() - 4 * 10**9))
    for _ in range(3):
        store.get(ref)
    assert hashed_reads == ["hashed"] * 4


def test_written_blobs_carry_a_settled_mtime(store: ContentAddressedStore) -> None:
    before = time.time_ns()
    ref = store.put(os.urandom(BIG))
    assert blob_path(store, ref).stat().st_mtime_ns <= before - verified._SETTLED_NS + 10**9


def test_verify_always_hashes(
    store: ContentAddressedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = store.put(os.urandom(BIG))
    calls: list[str] = []
    original = content.hash_file

    def counting(file: Any) -> str:
        calls.append("hash")
        return original(file)

    monkeypatch.setattr(content, "hash_file", counting)
    store.verify(ref.sha256)
    store.verify(ref.sha256)
    assert calls == ["hash", "hash"]


def test_putting_remembered_bytes_again_keeps_the_blob(store: ContentAddressedStore) -> None:
    data = os.urandom(BIG)
    ref = store.put(data)
    before = blob_path(store, ref).stat()
    assert store.put(data) == ref
    after = blob_path(store, ref).stat()
    assert (after.st_ino, after.st_ctime_ns) == (before.st_ino, before.st_ctime_ns)


def test_the_memory_is_bounded(
    store: ContentAddressedStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verified, "_MAX_ENTRIES", 3)
    refs = [store.put(os.urandom(20000)) for _ in range(5)]
    assert list(verified._known) == [ref.sha256 for ref in refs[2:]]


@pytest.mark.parametrize("sizes", [[10, 3], [BIG, 5, BIG + 1], [3 * BIG]])
def test_the_hashing_sink_hashes_and_writes_every_byte_in_order(sizes: list[int]) -> None:
    written = bytearray()
    sink = HashingSink(lambda view: written.extend(view))
    chunks = [os.urandom(size) for size in sizes]
    for chunk in chunks:
        assert sink.write(chunk) == len(chunk)
    assert bytes(written) == b"".join(chunks)
    assert sink.hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert sink.size == sum(sizes)


def test_a_failed_write_is_raised_after_the_hash_finishes() -> None:
    def failing(view: memoryview) -> None:
        raise OSError(28, "No space left on device")

    sink = HashingSink(failing)
    with pytest.raises(OSError, match="No space"):
        sink.write(os.urandom(BIG))
