"""Durations and sizes as users write them."""

from __future__ import annotations

import pytest

from lockgate.model.units import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (0.5, 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172800.0),
        ("1.5s", 1.5),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "soon", "5 minutes", "-1s", -1, True, None, "1h-2m", "s"])
def test_bad_durations(bad):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (1024, 1024),
        ("512MiB", 512 * 2**20),
        ("4GB", 4 * 10**9),
        ("1.5g", 1_500_000_000),
        ("100", 100),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "", "0", "-5MB", "4 bananas", 0, 1.5, False])
def test_bad_sizes(bad):
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)
