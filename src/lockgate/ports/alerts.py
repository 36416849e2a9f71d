"""Records of the alert outbox, shared by the metadata store port and the alert service.

An alert delivery is one (rule, subject, event): a run that failed, a gate
that failed in a run, an alias rolled back. Its `key` is unique, so however
many passes (or servers) find the same fact, one delivery exists. A delivery
is `pending` until a notifier accepts it (`sent`), it runs out of attempts
(`failed`), or its rule's rate limit held it back when it was found
(`suppressed`: recorded, never sent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class DeliveryStatus(StrEnum):
    """Where one alert delivery stands (`alert_deliveries.status`)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """An alert to enqueue.

    Attributes:
        key: unique per (rule, subject, event): `rule|run-id|event`.
        payload: the notifier-independent facts (summary, details); no secrets.
        next_at: when it is first due (usually now).
    """

    key: str
    rule: str
    event: str
    run_id: str | None
    pipeline: str | None
    payload: Mapping[str, Any]
    created_at: float
    next_at: float


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """One row of the alert outbox and its outcome so far.

    Attributes:
        attempts: sends tried so far.
        next_at: when the next send is due (pending), or None.
        last_error: why the last send failed (secrets redacted), or None.
        finished_at: when it was sent, given up or suppressed.
    """

    id: int
    key: str
    rule: str
    event: str
    run_id: str | None
    pipeline: str | None
    status: DeliveryStatus
    attempts: int
    payload: Mapping[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    next_at: float | None = None
    last_error: str | None = None
    finished_at: float | None = None
