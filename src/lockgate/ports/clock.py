"""The clock port: wall time for records, monotonic time for waiting."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Where the engine gets time from; tests inject their own."""

    def now(self) -> float:
        """Wall-clock seconds since the epoch (UTC), for stored timestamps."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary point that never goes backwards, for waits."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """`time.time()`."""
        return time.time()

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()
