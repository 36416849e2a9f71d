"""The event hash chain that makes a run's trace tamper-evident.

Each event's hash covers the previous event's hash and the event's own
content, in a canonical JSON form; the run row keeps the newest hash and the
number of events. Editing, inserting or deleting any event, or truncating the
trace, changes what a verifier recomputes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

GENESIS = "0" * 64

# One encoder for every event: json.dumps builds a new one per call when given options.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def event_hash(
    previous: str,
    run_id: str,
    task_run_id: int | None,
    attempt: int | None,
    kind: str,
    at: float,
    payload: Mapping[str, Any],
) -> str:
    """sha256 hex of the previous hash and this event's canonical content."""
    body = _CANONICAL.encode([previous, run_id, task_run_id, attempt, kind, at, payload])
    return hashlib.sha256(body.encode()).hexdigest()
