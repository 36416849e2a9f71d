"""pandas DataFrames as parquet, only where parquet gives them back exactly.

Parquet is the safe way to store a frame (decoding never unpickles), but it
silently changes some of them: object columns come back as `str` on pandas
3, a DatetimeIndex loses its `freq`, an empty frame's columns lose their
RangeIndex, complex columns do not write at all. `encode_frame` accepts
only frames whose every column, label and index survive (checked on pandas
3.1 / pyarrow 26); the rest go to pickle, which keeps them exactly.

Invariants:
- pandas is imported only when a frame is stored; pyarrow is checked for,
  not imported, until pandas writes with it.
"""

from __future__ import annotations

import io
from typing import Any

__all__ = ["encode_frame"]

_FRAME_DTYPES = {
    "StringDtype",
    "CategoricalDtype",
    "DatetimeTZDtype",
    "BooleanDtype",
    "Int8Dtype",
    "Int16Dtype",
    "Int32Dtype",
    "Int64Dtype",
    "UInt8Dtype",
    "UInt16Dtype",
    "UInt32Dtype",
    "UInt64Dtype",
    "Float32Dtype",
    "Float64Dtype",
}


def _parquet_keeps(dtype: Any) -> bool:
    import numpy as np

    if isinstance(dtype, np.dtype):
        # No object (see _keeps_values), complex (unsupported), bytes or void.
        return dtype.kind in "biufmM"
    if type(dtype).__name__ == "CategoricalDtype":
        return _parquet_keeps(dtype.categories.dtype)
    return type(dtype).__name__ in _FRAME_DTYPES


def _keeps_values(values: Any, pd: Any) -> bool:
    """True if parquet gives back this column (or index) with its dtype."""
    if _parquet_keeps(values.dtype):
        return True
    # pandas 3 reads strings back as its `str` dtype, so an object column of
    # str only survives on pandas 2 without `future.infer_string`; and only
    # without missing values, which could come back as None instead of NaN.
    return (
        values.dtype == object
        and _object_strings_survive(pd)
        and pd.api.types.infer_dtype(values, skipna=False) == "string"
    )


def _object_strings_survive(pd: Any) -> bool:
    if int(pd.__version__.split(".")[0]) >= 3:
        return False
    try:
        return not pd.get_option("future.infer_string")
    except Exception:  # pandas 2.0 has no such option: strings stay objects
        return True


def encode_frame(frame: Any) -> bytes | None:
    """Write a DataFrame as parquet if that gives it back exactly.

    Args:
        frame: a value whose type is named DataFrame and lives in pandas.

    Returns:
        The parquet bytes, or None when the frame is not a plain DataFrame,
        pyarrow is missing, or parquet would change it (it is then pickled).
    """
    import importlib.util

    import pandas as pd

    if type(frame) is not pd.DataFrame or importlib.util.find_spec("pyarrow") is None:
        return None
    columns, index = frame.columns, frame.index
    # Parquet changes the type of what this rules out (checked on pandas 3 /
    # pyarrow 26): object columns become str, an empty frame's columns lose
    # RangeIndex, a DatetimeIndex loses its freq, complex does not write.
    if (
        len(columns) == 0
        or type(columns) is not pd.Index
        or not columns.is_unique
        or not all(type(label) is str for label in columns)
        or not (
            type(index) in (pd.RangeIndex, pd.Index)
            or (type(index) is pd.DatetimeIndex and index.freq is None)
        )
        or not _keeps_values(index, pd)
        or not all(_keeps_values(column, pd) for _, column in frame.items())
    ):
        return None
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, engine="pyarrow")
    except Exception:  # anything pyarrow refuses still pickles
        return None
    return buffer.getvalue()
