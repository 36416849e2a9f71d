"""Run ids: readable, sortable by creation time, unique without coordination."""

from __future__ import annotations

import secrets
import time


def new_run_id(now: float | None = None) -> str:
    """`r-YYYYMMDD-HHMMSS-xxxxxx` in UTC, with 24 random bits."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"r-{stamp}-{secrets.token_hex(3)}"
