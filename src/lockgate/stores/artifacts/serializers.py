"""Values to bytes and back: which serializer a value gets, and how each decodes.

Serializers, tried in this order:
  json     plain data that round-trips exactly (dict with str keys, list, str,
           int, finite float, bool, None); dict order is kept
  bytes    bytes and bytearray (decoded as bytes)
  npy      numpy arrays without Python objects, `allow_pickle=False` both ways
  parquet  pandas DataFrames whose columns and index parquet keeps exactly
  pickle   everything else, through cloudpickle, refusing OS resources

The parquet rules live in `frames.py`, the guarded pickler in `pickling.py`.

Invariants:
- A value decodes to one equal to it and of the same type; anything a
  serializer would change (a tuple in JSON, an object column in parquet)
  goes to the next serializer instead.
- Only "pickle" ever unpickles, and only when the caller says the bytes are
  trusted; "npy" and "parquet" decode with pickling disabled.
- numpy, pandas, pyarrow and cloudpickle are imported only when a value or
  payload needs them, so importing lockgate stays fast.
"""

from __future__ import annotations

import io
import json
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lockgate.errors import ArtifactError, UntrustedArtifactError
from lockgate.stores.artifacts.frames import encode_frame
from lockgate.stores.artifacts.pickling import pickle_guarded, type_name_of

__all__ = ["SERIALIZERS", "Encoded", "Sink", "decode", "encode", "read_npy", "type_name_of"]

SERIALIZERS = ("json", "bytes", "npy", "parquet", "pickle")

# Deeper JSON would hit the recursion limit of json.loads on the way back.
_MAX_JSON_DEPTH = 200
_CHUNK = 8 << 20
# numpy's default `max_header_size`: longer npy headers do not load safely.
_NPY_MAX_HEADER = 10000


class Sink(Protocol):
    """Where a streaming serializer writes: a hashing blob writer."""

    def write(self, data: bytes | memoryview, /) -> int:
        """Write all of `data`; return its length."""
        ...


@dataclass(frozen=True, slots=True)
class Encoded:
    """A serialized value: either its bytes, or a function that streams them.

    Attributes:
        serializer: one of `SERIALIZERS`.
        type_name: `module.qualname` of the value's type.
        length: len() of a list or tuple value, else None.
        data: the bytes, when they were built in memory.
        stream: writes the bytes to a sink, when they are too big to copy.
        size_hint: the expected number of bytes (exact for `data`).
    """

    serializer: str
    type_name: str
    length: int | None
    data: bytes | None = None
    stream: Callable[[Sink], None] | None = None
    size_hint: int = 0


def encode(value: Any, *, what: str = "artifact", stream_above: int | None = None) -> Encoded:
    """Serialize `value` with the first serializer that keeps it exactly.

    Args:
        value: what a task returned.
        what: describes the value in error messages ("output of node 'train' (run r-1)").
        stream_above: numpy arrays with more data bytes than this are not
            copied into memory; the result carries `stream` instead of `data`.

    Returns:
        The encoded value.

    Raises:
        UnserializableOutputError: the value holds an OS resource (file,
            socket, lock), a generator or coroutine, or does not pickle.
    """
    name = type_name_of(value)
    length = len(value) if type(value) in (list, tuple) else None

    def done(serializer: str, data: bytes) -> Encoded:
        return Encoded(serializer, name, length, data=data, size_hint=len(data))

    if _is_plain_json(value):
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
            return done("json", text.encode("utf-8"))
        except (ValueError, RecursionError):
            pass  # huge ints, lone surrogates: pickle keeps them exactly
    if type(value) is bytes:
        return done("bytes", value)
    if type(value) is bytearray:
        return done("bytes", bytes(value))
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        encoded = _encode_array(value, name, stream_above)
        if encoded is not None:
            return encoded
    is_pandas = module == "pandas" or module.startswith("pandas.")
    if is_pandas and type(value).__name__ == "DataFrame":
        data = encode_frame(value)
        if data is not None:
            return done("parquet", data)
    return done("pickle", pickle_guarded(value, what))


def decode(serializer: str, data: bytes, *, trusted: bool, label: str) -> Any:
    """Turn verified bytes back into a value.

    Args:
        serializer: the name recorded in the artifact's ref.
        data: the bytes, already checked against the artifact's hash.
        trusted: allow unpickling (the bytes were produced by this installation).
        label: names the artifact in messages: "sha256:<hex> (<what>)".

    Returns:
        The value.

    Raises:
        UntrustedArtifactError: the serializer is "pickle" and `trusted` is False.
        ArtifactError: the serializer is unknown or the bytes do not decode.
    """
    if serializer == "pickle" and not trusted:
        raise untrusted_error(label)
    try:
        if serializer == "json":
            return json.loads(data)
        if serializer == "bytes":
            return bytes(data)
        if serializer == "npy":
            import numpy as np

            return np.load(io.BytesIO(data), allow_pickle=False)
        if serializer == "parquet":
            import pandas as pd

            return pd.read_parquet(io.BytesIO(data), engine="pyarrow")
        if serializer == "pickle":
            return pickle.loads(data)  # noqa: S301 - only reached with trusted=True
    except ImportError as exc:
        raise ArtifactError(
            f"artifact {label} is stored as {serializer}, which needs {exc.name!r} to "
            f"decode; install it (pip install 'lockgate[dataframes]' for parquet)"
        ) from exc
    except Exception as exc:
        raise ArtifactError(
            f"artifact {label} does not decode as {serializer}: {type(exc).__name__}: {exc}"
        ) from exc
    raise ArtifactError(
        f"artifact {label} uses serializer {serializer!r}, which this lockgate does not "
        f"know (known: {', '.join(SERIALIZERS)}); upgrade lockgate to read it"
    )


def untrusted_error(label: str) -> UntrustedArtifactError:
    """Build the refusal for unpickling bytes of unknown origin."""
    return UntrustedArtifactError(
        f"artifact {label} was not produced by this installation; refusing to unpickle it "
        "(pass trusted=True only if you trust its source)"
    )


# --- json ------------------------------------------------------------------


def _is_plain_json(value: Any) -> bool:
    """True if JSON gives back exactly this value (same types, same order)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen: set[int] = set()
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is float:
            if not math.isfinite(item):
                return False
            continue
        if kind is not list and kind is not dict:
            return False  # tuples, subclasses, sets...: JSON would change the type
        # A container met twice is shared or cyclic: JSON would copy it or loop.
        if id(item) in seen or depth >= _MAX_JSON_DEPTH:
            return False
        seen.add(id(item))
        if kind is list:
            stack.extend((child, depth + 1) for child in item)
            continue
        for key, child in item.items():
            if type(key) is not str:
                return False
            stack.append((child, depth + 1))
    return True


# --- numpy -----------------------------------------------------------------


def _encode_array(value: Any, name: str, stream_above: int | None) -> Encoded | None:
    import numpy as np

    # Subclasses (masked arrays, matrix) would come back as plain ndarrays;
    # object and user-defined dtypes need pickling, which npy must not do.
    if type(value) is not np.ndarray or value.dtype.hasobject:
        return None
    if not getattr(type(value.dtype), "_legacy", True):
        return None
    fields = np.lib.format.header_data_from_array_1_0(value)
    header = _npy_header(fields)
    # np.load refuses headers this long without allow_pickle (thousands of fields).
    if len(header if header is not None else repr(fields)) > _NPY_MAX_HEADER:
        return None

    def stream(sink: Sink) -> None:
        _write_npy(sink, value, header)

    if stream_above is not None and value.nbytes > stream_above:
        size_hint = value.nbytes + (len(header) if header else 128)
        return Encoded("npy", name, None, stream=stream, size_hint=size_hint)
    buffer = io.BytesIO()
    stream(buffer)
    data = buffer.getvalue()
    return Encoded("npy", name, None, data=data, size_hint=len(data))


def _npy_header(fields: dict[str, Any]) -> bytes | None:
    """The header `np.save` writes (version 1.0 or 2.0); None for version 3.0,
    which only numpy's own writer produces."""
    import numpy as np

    fmt = np.lib.format
    for write in (fmt.write_array_header_1_0, fmt.write_array_header_2_0):
        buffer = io.BytesIO()
        try:
            write(buffer, fields)
        except ValueError:  # too long for 1.0, or field names that are not latin-1
            continue
        return buffer.getvalue()
    return None


def _write_npy(sink: Sink, array: Any, header: bytes | None) -> None:
    """Write the bytes `np.save` writes, streaming the array's own memory: no
    chunk copies, where numpy's writer copies every 16 MiB."""
    import numpy as np

    if array.flags.c_contiguous:
        memory_order = array
    elif array.flags.f_contiguous:
        memory_order = array.T  # npy keeps a Fortran array as its transpose's C bytes
    else:
        header = None
    if header is None:
        np.lib.format.write_array(sink, array, allow_pickle=False)
        return
    sink.write(header)
    data = memory_order.reshape(-1).view(np.uint8)
    for start in range(0, data.size, _CHUNK):
        sink.write(data[start : start + _CHUNK].data)


def read_npy(reader: Any, total_size: int) -> Any:
    """Read an npy payload into one freshly allocated array, with no extra copy.

    Reads through `reader.readinto` so a caller's hashing reader sees every
    byte once and the data lands directly in the array's memory.

    Args:
        reader: a binary file object positioned at the start of the payload,
            with `read`, `readinto` and `tell`.
        total_size: the payload's size in bytes, checked against the header
            before anything is allocated.

    Returns:
        The array.

    Raises:
        ValueError: the header is malformed, holds Python objects, or does
            not match `total_size`.
    """
    import numpy as np

    fmt = np.lib.format
    version = fmt.read_magic(reader)
    if version == (1, 0):
        shape, fortran_order, dtype = fmt.read_array_header_1_0(reader)
    elif version == (2, 0):
        shape, fortran_order, dtype = fmt.read_array_header_2_0(reader)
    else:
        # Version 3 (non-latin-1 field names) is rare; let numpy parse it.
        rest = reader.read()
        return np.load(io.BytesIO(fmt.magic(*version) + rest), allow_pickle=False)
    if dtype.hasobject:
        raise ValueError("the npy payload holds Python objects, which lockgate never unpickles")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    if nbytes != total_size - reader.tell():
        raise ValueError(
            f"the npy header announces {nbytes} data bytes but "
            f"{total_size - reader.tell()} follow it"
        )
    if dtype.itemsize == 0:
        return np.ndarray(shape, dtype=dtype)
    raw = np.empty(nbytes, dtype=np.uint8)
    view = raw.data
    filled = 0
    while filled < nbytes:
        got = reader.readinto(view[filled : filled + _CHUNK])
        if not got:
            raise ValueError(f"the npy payload ended after {filled} of {nbytes} data bytes")
        filled += got
    return raw.view(dtype).reshape(shape, order="F" if fortran_order else "C")
