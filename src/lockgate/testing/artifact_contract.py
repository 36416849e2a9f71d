"""The contract every `ArtifactStore` implementation passes.

Subclass `ArtifactStoreContract` in a test module (name it `Test...`) and
provide two fixtures:

- `store`: a fresh, empty store that keeps payloads of `LARGE` bytes or
  more out of line (as blobs), and small ones (a few dozen bytes) inline;
- `tamper`: a `BlobTamper` that damages that store's blobs behind its back,
  the way a disk, an operator or an attacker would.

The tests use only the port (`lockgate.ports.artifacts`) and the errors in
`lockgate.errors`; numpy and pandas tests skip when those are not installed.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import pytest

from lockgate.errors import (
    ArtifactCorrupted,
    ArtifactError,
    ArtifactNotFoundError,
    InvalidArtifactKey,
    UnserializableOutputError,
    UntrustedArtifactError,
)
from lockgate.ports.artifacts import URI_PREFIX, ArtifactRef, ArtifactStore

__all__ = ["LARGE", "ArtifactStoreContract", "BlobTamper", "MarkerMaker"]

#: Payloads at least this big must be stored as blobs, not inline.
LARGE = 1 << 20

WHAT = "output of node 'train' (run r-123)"


class BlobTamper(Protocol):
    """Damages a store's blobs directly, bypassing the store."""

    def flip_byte(self, sha256: str) -> None:
        """Invert one byte in the middle of the blob."""
        ...

    def truncate(self, sha256: str) -> None:
        """Cut the blob short."""
        ...

    def delete(self, sha256: str) -> None:
        """Remove the blob."""
        ...


class MarkerMaker:
    """A hostile payload: unpickling it creates the directory `marker`.

    This is the shape of payload that executed under `pickle.loads` and
    `joblib.load` in RELIABILITY.md's experiment (B8).
    """

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


class _Unpicklable:
    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("this object refuses to be pickled")


def _generator() -> Iterator[int]:
    yield 1


def _raw_ref(data: bytes, serializer: str, *, inline: bool = True) -> ArtifactRef:
    """A ref as an importer or an HTTP client could hand one in."""
    return ArtifactRef(
        hashlib.sha256(data).hexdigest(),
        serializer,
        len(data),
        "builtins.object",
        inline=data if inline else None,
    )


class ArtifactStoreContract:
    """Behaviour users rely on from any artifact store."""

    # --- round trips ---------------------------------------------------------

    def test_json_keeps_values_types_and_dict_order(self, store: ArtifactStore) -> None:
        value = {"z": 1, "a": [1, 2.5, "é", None, True, {"n": -0.0}], "m": {}}
        ref = store.put(value)
        back = store.get(ref)
        assert ref.serializer == "json"
        assert back == value
        assert list(back) == ["z", "a", "m"]
        assert [type(item) for item in back["a"]] == [int, float, str, type(None), bool, dict]

    def test_tuple_stays_a_tuple_through_pickle(self, store: ArtifactStore) -> None:
        value = (1, "a", (2.0, None))
        ref = store.put(value)
        assert ref.serializer == "pickle"
        assert ref.length == 3
        back = store.get(ref, trusted=True)
        assert back == value
        assert type(back) is tuple
        assert type(back[2]) is tuple

    def test_length_is_recorded_for_lists_only(self, store: ArtifactStore) -> None:
        assert store.put([1, 2, 3]).length == 3
        assert store.put({"a": 1, "b": 2}).length is None
        assert store.put("abc").length is None

    def test_bytes_round_trip_as_bytes(self, store: ArtifactStore) -> None:
        for value in (b"\x00\xff\x10", bytearray(b"\x01\x02"), b"y" * LARGE):
            ref = store.put(value)
            back = store.get(ref)
            assert ref.serializer == "bytes"
            assert back == bytes(value)
            assert type(back) is bytes

    def test_numpy_arrays_keep_dtype_shape_and_layout(self, store: ArtifactStore) -> None:
        np = pytest.importorskip("numpy")
        arrays = [
            np.arange(12, dtype=np.float32).reshape(3, 4),
            np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
            np.array([True, False]),
            np.array(["2024-01-01", "2024-02-29"], dtype="datetime64[D]"),
            np.array(3.5),
            np.zeros((0, 3)),
            np.arange(4, dtype=">f8"),
            np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
            np.arange(LARGE // 8, dtype=np.float64).reshape(-1, 64),
            np.asfortranarray(np.arange(LARGE // 4, dtype=np.int32).reshape(64, -1)),
        ]
        for array in arrays:
            ref = store.put(array)
            back = store.get(ref)  # npy never needs trust
            assert ref.serializer == "npy"
            assert ref.type_name == "numpy.ndarray"
            assert back.dtype == array.dtype
            assert back.shape == array.shape
            assert back.flags.f_contiguous == array.flags.f_contiguous
            assert np.array_equal(back, array)

    def test_object_arrays_go_to_pickle(self, store: ArtifactStore) -> None:
        np = pytest.importorskip("numpy")
        array = np.array([1, "a", None], dtype=object)
        ref = store.put(array)
        assert ref.serializer == "pickle"
        assert list(store.get(ref, trusted=True)) == [1, "a", None]

    def test_dataframes_round_trip_through_parquet(self, store: ArtifactStore) -> None:
        pd = pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
        frame = pd.DataFrame(
            {
                "n": [1, 2, 3],
                "x": [0.5, None, 2.0],
                "s": pd.array(["a", "b", None], dtype="string"),
                "w": ["x", "y", "z"],
                "ok": [True, False, True],
                "t": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]),
                "c": pd.Categorical(["u", "v", "u"]),
            },
            index=pd.Index([10, 20, 30], name="row"),
        )
        ref = store.put(frame)
        assert ref.serializer == "parquet"
        pd.testing.assert_frame_equal(store.get(ref), frame, check_exact=True)

    def test_dataframes_parquet_would_change_are_pickled(self, store: ArtifactStore) -> None:
        pd = pytest.importorskip("pandas")
        frames = [
            pd.DataFrame({"mixed": pd.Series([1, "a"], dtype=object)}),
            pd.DataFrame({"x": [1.0, 2.0]}, index=pd.date_range("2026-01-01", periods=2)),
            pd.DataFrame(),
        ]
        for frame in frames:
            ref = store.put(frame)
            back = store.get(ref, trusted=True)
            assert ref.serializer == "pickle"
            pd.testing.assert_frame_equal(back, frame, check_exact=True, check_freq=True)
            assert type(back.index) is type(frame.index)
            assert getattr(back.index, "freq", None) == getattr(frame.index, "freq", None)

    # --- identity, inline and blobs -----------------------------------------

    def test_same_bytes_give_one_artifact_and_one_blob(self, store: ArtifactStore) -> None:
        first = store.put(b"x" * LARGE)
        second = store.put(bytes(bytearray(b"x" * LARGE)))
        other = store.put(b"y" * LARGE)
        assert first == second
        assert other.sha256 != first.sha256
        assert sorted(store.blobs()) == sorted({first.sha256, other.sha256})

    def test_small_payloads_are_inline_and_write_no_blob(self, store: ArtifactStore) -> None:
        ref = store.put({"accuracy": 0.93})
        assert ref.inline is not None
        assert hashlib.sha256(ref.inline).hexdigest() == ref.sha256
        assert ref.size == len(ref.inline)
        assert not store.exists(ref.sha256)
        assert list(store.blobs()) == []
        assert store.read_bytes(ref) == ref.inline

    def test_large_payloads_are_blobs_named_by_their_hash(self, store: ArtifactStore) -> None:
        ref = store.put(b"z" * LARGE)
        assert ref.inline is None
        assert ref.uri == URI_PREFIX + ref.sha256
        assert store.exists(ref.sha256)
        assert store.exists(ref.uri) and store.exists(f"sha256:{ref.sha256}")
        data = store.read_bytes(ref)
        assert hashlib.sha256(data).hexdigest() == ref.sha256
        assert len(data) == ref.size
        store.verify(ref.sha256)  # intact: no error

    def test_blobs_lists_exactly_what_was_written(self, store: ArtifactStore) -> None:
        refs = [store.put(bytes([n]) * LARGE) for n in range(3)]
        store.put("small, inline")
        assert sorted(store.blobs()) == sorted(ref.sha256 for ref in refs)

    # --- corruption ------------------------------------------------------------

    @pytest.mark.parametrize("kind", ["bytes", "npy"])
    def test_flipped_byte_is_detected(
        self, store: ArtifactStore, tamper: BlobTamper, kind: str
    ) -> None:
        ref = self._large(store, kind)
        tamper.flip_byte(ref.sha256)
        with pytest.raises(ArtifactCorrupted, match=f"sha256 mismatch for artifact {ref.uri}"):
            store.verify(ref.sha256)
        with pytest.raises(ArtifactCorrupted, match=r"\(output of node 'train' \(run r-123\)\)"):
            store.get(ref, what=WHAT)
        with pytest.raises(ArtifactCorrupted):
            store.read_bytes(ref)

    @pytest.mark.parametrize("kind", ["bytes", "npy"])
    def test_truncation_is_detected(
        self, store: ArtifactStore, tamper: BlobTamper, kind: str
    ) -> None:
        ref = self._large(store, kind)
        tamper.truncate(ref.sha256)
        with pytest.raises(ArtifactCorrupted, match="Re-run the producing task"):
            store.verify(ref.sha256)
        with pytest.raises(ArtifactCorrupted):
            store.get(ref)

    def test_deletion_is_reported_as_not_found(
        self, store: ArtifactStore, tamper: BlobTamper
    ) -> None:
        ref = store.put(b"d" * LARGE)
        tamper.delete(ref.sha256)
        assert not store.exists(ref.sha256)
        assert list(store.blobs()) == []
        with pytest.raises(ArtifactNotFoundError) as caught:
            store.get(ref, what=WHAT)
        assert ref.uri in str(caught.value)
        assert store.root in str(caught.value)
        with pytest.raises(ArtifactNotFoundError):
            store.verify(ref.sha256)

    def test_tampered_inline_bytes_are_detected(self, store: ArtifactStore) -> None:
        ref = store.put({"a": 1})
        assert ref.inline is not None
        forged = replace(ref, inline=ref.inline.replace(b"1", b"2"))
        with pytest.raises(ArtifactCorrupted):
            store.get(forged)
        with pytest.raises(ArtifactCorrupted):
            store.read_bytes(forged)

    def test_putting_the_value_again_repairs_a_corrupt_blob(
        self, store: ArtifactStore, tamper: BlobTamper
    ) -> None:
        value = b"r" * LARGE
        ref = store.put(value)
        tamper.flip_byte(ref.sha256)
        assert store.put(value) == ref  # what re-running the producing task does
        store.verify(ref.sha256)
        assert store.get(ref) == value

    def test_malformed_ids_are_rejected(self, store: ArtifactStore) -> None:
        bad = "../../etc/passwd"
        for call in (store.exists, store.verify):
            with pytest.raises(InvalidArtifactKey, match="is not a valid artifact key"):
                call(bad)
        with pytest.raises(InvalidArtifactKey):
            store.get(replace(store.put(b"q" * LARGE), sha256=bad))

    # --- trust -----------------------------------------------------------------

    def test_pickles_need_trust(self, store: ArtifactStore) -> None:
        ref = store.put((1, 2))
        with pytest.raises(UntrustedArtifactError) as caught:
            store.get(ref, what=WHAT)
        message = str(caught.value)
        assert f"sha256:{ref.sha256}" in message
        assert WHAT in message and "trusted=True" in message
        assert store.get(ref, trusted=True) == (1, 2)

    @pytest.mark.parametrize("inline", [True, False])
    def test_hostile_pickle_never_runs_without_trust(
        self, store: ArtifactStore, tmp_path: Path, inline: bool
    ) -> None:
        marker = tmp_path / "marker"
        payload = pickle.dumps((MarkerMaker(marker), b"p" * (0 if inline else LARGE)))
        ref = self._imported(store, payload, "pickle", inline=inline)
        with pytest.raises(UntrustedArtifactError):
            store.get(ref)
        assert not marker.exists()
        # Control: the payload is live, so the refusal above is what saved us.
        store.get(ref, trusted=True)
        assert marker.exists()

    @pytest.mark.parametrize("serializer", ["json", "npy", "parquet", "bytes"])
    @pytest.mark.parametrize("inline", [True, False])
    def test_safe_serializers_never_unpickle(
        self, store: ArtifactStore, tmp_path: Path, serializer: str, inline: bool
    ) -> None:
        marker = tmp_path / "marker"
        if serializer == "npy":
            np = pytest.importorskip("numpy")
            hostile = np.array([MarkerMaker(marker), b"p" * LARGE], dtype=object)
            buffer = io.BytesIO()
            np.save(buffer, hostile, allow_pickle=True)
            payload = buffer.getvalue()
        else:
            payload = pickle.dumps((MarkerMaker(marker), b"p" * LARGE))
        ref = self._imported(store, payload, serializer, inline=inline)
        if serializer == "bytes":
            assert store.get(ref) == payload  # handed back as bytes, never loaded
        else:
            with pytest.raises(ArtifactError) as caught:
                store.get(ref, trusted=True)
            assert not isinstance(caught.value, UntrustedArtifactError)
        assert not marker.exists()

    # --- refusals --------------------------------------------------------------

    @pytest.mark.parametrize(
        ("make", "expected"),
        [
            (lambda tmp: (tmp / "f.txt").open("w"), "is an open file object (_io.TextIOWrapper)"),
            (lambda tmp: (tmp / "f.bin").open("wb"), "is an open file object (_io.BufferedWriter)"),
            (lambda tmp: _generator(), "is a generator, which lockgate cannot store: return a"),
            (lambda tmp: threading.Lock(), "is a lock (_thread.lock)"),
            (lambda tmp: threading.RLock(), "is a lock (_thread.RLock)"),
            (lambda tmp: socket.socket(), "is a socket (socket.socket)"),
            (lambda tmp: {"model": [threading.Lock()]}, "(builtins.dict) contains a lock"),
            (lambda tmp: _Unpicklable(), "this object refuses to be pickled"),
        ],
    )
    def test_unstorable_values_are_refused_with_a_fix(
        self,
        store: ArtifactStore,
        tmp_path: Path,
        make: Callable[[Path], Any],
        expected: str,
    ) -> None:
        value = make(tmp_path)
        try:
            with pytest.raises(UnserializableOutputError) as caught:
                store.put(value, what=WHAT)
        finally:
            close = getattr(value, "close", None)
            if callable(close):
                close()
        message = str(caught.value)
        assert message.startswith(WHAT)
        assert expected in message
        assert list(store.blobs()) == []

    # --- helpers ---------------------------------------------------------------

    @staticmethod
    def _large(store: ArtifactStore, kind: str) -> ArtifactRef:
        if kind == "npy":
            np = pytest.importorskip("numpy")
            ref = store.put(np.arange(LARGE // 8, dtype=np.float64))
        else:
            ref = store.put(b"c" * LARGE)
        assert ref.inline is None
        return ref

    @staticmethod
    def _imported(
        store: ArtifactStore, payload: bytes, serializer: str, *, inline: bool
    ) -> ArtifactRef:
        """A ref to `payload` claiming `serializer`, as if imported from elsewhere."""
        if inline:
            return _raw_ref(payload, serializer)
        # Stored through the identity serializer, so the blob holds exactly `payload`.
        stored = store.put(payload)
        assert stored.inline is None
        return replace(stored, serializer=serializer, type_name="builtins.object")
