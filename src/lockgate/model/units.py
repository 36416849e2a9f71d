"""Parse durations ("30s", "1h30m") and sizes ("512MiB", "4GB") given by users."""

from __future__ import annotations

import math
import re

_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_TIME_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(value: object) -> float:
    """Return `value` in seconds.

    Args:
        value: a non-negative int or float (seconds), or a string of one or more
            `<number><unit>` parts with units ms, s, m, h, d (`"1h30m"`, `"0.5s"`).

    Raises:
        ValueError: the value is negative, not finite, or not in that format.
    """
    hint = "examples: 30, '30s', '5m', '1h30m'"
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration ({hint})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _TIME_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _TIME_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"{value!r} is not a duration ({hint})")
    else:
        raise ValueError(f"{value!r} is not a duration ({hint})")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{value!r} is not a non-negative finite duration ({hint})")
    return seconds


def parse_size(value: object) -> int:
    """Return `value` in bytes.

    Args:
        value: a positive int (bytes) or a string such as `"512MiB"`, `"4GB"`, `"1.5g"`.

    Raises:
        ValueError: the value is not positive or not in that format.
    """
    hint = "examples: 536870912, '512MiB', '4GB'"
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size ({hint})")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip().lower())
        if not match or match.group(2) not in _SIZE_UNITS:
            raise ValueError(f"{value!r} is not a size ({hint})")
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
    else:
        raise ValueError(f"{value!r} is not a size ({hint})")
    if size <= 0:
        raise ValueError(f"{value!r} is not a positive size ({hint})")
    return size
