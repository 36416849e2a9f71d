"""How many intervals were open at once: pool slots, racing servers, concurrent runs."""

from __future__ import annotations


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at one moment."""
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best
