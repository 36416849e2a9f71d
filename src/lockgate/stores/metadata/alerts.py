"""The alert outbox and the alert pass's reads, as a base class of `SqlMetadataStore`.

Deliveries are unique by key, inserted with ON CONFLICT DO NOTHING: two
passes (or two servers) that find the same fact create one row. The rate
limit counts a rule's recent deliveries and inserts over-limit ones as
`suppressed`, under the rule's advisory lock on PostgreSQL (SQLite's
`BEGIN IMMEDIATE` already serialises writers), so racing servers cannot both
slip under the limit. Sends are claimed by a conditional UPDATE fenced on
the attempt count, so one delivery is sent by one pass at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lockgate.model.states import EventKind
from lockgate.ports.alerts import AlertDelivery, DeliveryStatus, NewDelivery
from lockgate.ports.metadata import AliasEvent, EventRecord
from lockgate.stores.metadata.schema import (
    alert_cursors,
    alert_deliveries,
    alias_events,
    events,
    pipelines,
    runs,
    task_runs,
)
from lockgate.stores.metadata.statements import advisory_lock, insert_ignore

_PENDING = DeliveryStatus.PENDING.value


class AlertMethods:
    """Writes and reads of the alert outbox (see the port for each method's contract)."""

    _dialect: str

    def _tx(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _read(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    # --- finding alertable facts ----------------------------------------------------

    def alert_events(
        self, after: int, kinds: Sequence[EventKind], *, limit: int = 500
    ) -> tuple[list[tuple[EventRecord, str]], int]:
        """Events of `kinds` with id > `after` and their pipelines; and how far was read."""
        with self._read() as conn:
            top = conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0
            rows = conn.execute(
                sa.select(events, task_runs.c.node_id, task_runs.c.map_index, pipelines.c.name)
                .join(runs, events.c.run_id == runs.c.id)
                .join(pipelines, runs.c.pipeline_id == pipelines.c.id)
                .join(task_runs, events.c.task_run_id == task_runs.c.id, isouter=True)
                .where(
                    events.c.id > after,
                    events.c.id <= top,
                    events.c.kind.in_([k.value for k in kinds]),
                )
                .order_by(events.c.id)
                .limit(limit)
            ).all()
        found = [
            (
                EventRecord(
                    id=row.id,
                    run_id=row.run_id,
                    kind=EventKind(row.kind),
                    at=row.at,
                    node_id=row.node_id,
                    map_index=None if row.map_index is None or row.map_index < 0 else row.map_index,
                    attempt=row.attempt,
                    payload=row.payload or {},
                    task_run_id=row.task_run_id,
                ),
                row.name,
            )
            for row in rows
        ]
        # A full page may stop short of `top`: the next call goes on from its last row.
        return found, (found[-1][0].id if len(found) == limit else max(top, after))

    def alias_rollbacks(self, after: int, *, limit: int = 500) -> tuple[list[AliasEvent], int]:
        """Alias moves with action `rollback` and id > `after`; and how far was read."""
        with self._read() as conn:
            top = conn.execute(sa.select(sa.func.max(alias_events.c.id))).scalar() or 0
            rows = conn.execute(
                sa.select(alias_events)
                .where(
                    alias_events.c.id > after,
                    alias_events.c.id <= top,
                    alias_events.c.action == "rollback",
                )
                .order_by(alias_events.c.id)
                .limit(limit)
            ).all()
        found = [
            AliasEvent(
                id=row.id,
                kind=row.kind,
                name=row.name,
                alias=row.alias,
                version=row.version,
                previous_version=row.previous_version,
                action=row.action,
                actor=row.actor,
                reason=row.reason,
                forced=row.forced,
                at=row.at,
                run_id=row.run_id,
            )
            for row in rows
        ]
        return found, (found[-1].id if len(found) == limit else max(top, after))

    def alert_start(self, before: float) -> dict[str, int]:
        """Where a first alert pass starts: the newest event and alias move before `before`."""
        with self._read() as conn:
            first = conn.execute(
                sa.select(sa.func.max(events.c.id)).where(events.c.at < before)
            ).scalar()
            moves = conn.execute(
                sa.select(sa.func.max(alias_events.c.id)).where(alias_events.c.at < before)
            ).scalar()
        return {"events": first or 0, "alias_events": moves or 0}

    def alert_cursor(self, name: str) -> int | None:
        """How far the alert pass has read source `name`, or None before its first pass."""
        with self._read() as conn:
            position: int | None = conn.execute(
                sa.select(alert_cursors.c.position).where(alert_cursors.c.name == name)
            ).scalar()
        return position

    def advance_alert_cursor(self, name: str, position: int) -> None:
        """Move the cursor forward to `position` (never back: a slower pass cannot rewind it)."""
        with self._tx() as conn:
            conn.execute(
                insert_ignore(self._dialect, alert_cursors).values(name=name, position=position)
            )
            conn.execute(
                alert_cursors.update()
                .where(alert_cursors.c.name == name, alert_cursors.c.position < position)
                .values(position=position)
            )

    # --- the outbox -------------------------------------------------------------------

    def enqueue_alert(
        self, new: NewDelivery, *, rate_limit: int | None, window: float
    ) -> AlertDelivery | None:
        """Record a delivery once per key; over the rule's rate limit it is `suppressed`."""
        with self._tx() as conn:
            advisory_lock(conn, f"lockgate.alert:{new.rule}")
            status = DeliveryStatus.PENDING
            if rate_limit is not None:
                recent = conn.execute(
                    sa.select(sa.func.count()).where(
                        alert_deliveries.c.rule == new.rule,
                        alert_deliveries.c.created_at > new.created_at - window,
                        alert_deliveries.c.status != DeliveryStatus.SUPPRESSED.value,
                    )
                ).scalar_one()
                if recent >= rate_limit:
                    status = DeliveryStatus.SUPPRESSED
            suppressed = status is DeliveryStatus.SUPPRESSED
            inserted = conn.execute(
                insert_ignore(self._dialect, alert_deliveries)
                .values(
                    key=new.key,
                    rule=new.rule,
                    event=new.event,
                    run_id=new.run_id,
                    pipeline=new.pipeline,
                    status=status.value,
                    attempts=0,
                    payload=dict(new.payload),
                    created_at=new.created_at,
                    next_at=None if suppressed else new.next_at,
                    last_error=(
                        f"over the rule's rate limit ({rate_limit} per {window:g} s)"
                        if suppressed
                        else None
                    ),
                    finished_at=new.created_at if suppressed else None,
                )
                .returning(alert_deliveries.c.id)
            ).first()
            if inserted is None:
                return None
            row = conn.execute(
                sa.select(alert_deliveries).where(alert_deliveries.c.key == new.key)
            ).one()
        return _delivery(row)

    def due_alerts(self, at: float, *, limit: int = 50) -> list[AlertDelivery]:
        """Pending deliveries due at `at`, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(alert_deliveries)
                .where(alert_deliveries.c.status == _PENDING, alert_deliveries.c.next_at <= at)
                .order_by(alert_deliveries.c.next_at, alert_deliveries.c.id)
                .limit(limit)
            ).all()
        return [_delivery(row) for row in rows]

    def claim_alert(self, delivery: AlertDelivery, *, at: float, lease_until: float) -> bool:
        """Take a due delivery to send it (False: another pass took it or it changed)."""
        with self._tx() as conn:
            changed: int = conn.execute(
                alert_deliveries.update()
                .where(
                    alert_deliveries.c.id == delivery.id,
                    alert_deliveries.c.status == _PENDING,
                    alert_deliveries.c.attempts == delivery.attempts,
                    alert_deliveries.c.next_at <= at,
                )
                .values(next_at=lease_until)
            ).rowcount
        return changed == 1

    def finish_alert(
        self,
        delivery_id: int,
        *,
        attempt: int,
        at: float,
        sent: bool,
        error: str | None = None,
        next_at: float | None = None,
    ) -> None:
        """Record the outcome of send number `attempt`: sent, retry at `next_at`, or failed."""
        if sent:
            values: dict[str, Any] = {"status": DeliveryStatus.SENT.value, "finished_at": at}
        elif next_at is not None:
            values = {"status": _PENDING, "next_at": next_at}
        else:
            values = {"status": DeliveryStatus.FAILED.value, "finished_at": at, "next_at": None}
        with self._tx() as conn:
            conn.execute(
                alert_deliveries.update()
                .where(
                    alert_deliveries.c.id == delivery_id,
                    alert_deliveries.c.attempts == attempt - 1,
                    alert_deliveries.c.status == _PENDING,
                )
                .values(attempts=attempt, last_error=error, **values)
            )

    def run_alerts(self, run_id: str) -> list[AlertDelivery]:
        """The alert deliveries about one run, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(alert_deliveries)
                .where(alert_deliveries.c.run_id == run_id)
                .order_by(alert_deliveries.c.id)
            ).all()
        return [_delivery(row) for row in rows]

    def list_alerts(self, *, limit: int = 100, rule: str | None = None) -> list[AlertDelivery]:
        """Alert deliveries, newest first (of one rule, or all)."""
        query = sa.select(alert_deliveries).order_by(alert_deliveries.c.id.desc()).limit(limit)
        if rule is not None:
            query = query.where(alert_deliveries.c.rule == rule)
        with self._read() as conn:
            return [_delivery(row) for row in conn.execute(query).all()]


def _delivery(row: Any) -> AlertDelivery:
    return AlertDelivery(
        id=row.id,
        key=row.key,
        rule=row.rule,
        event=row.event,
        run_id=row.run_id,
        pipeline=row.pipeline,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        payload=row.payload or {},
        created_at=row.created_at,
        next_at=row.next_at,
        last_error=row.last_error,
        finished_at=row.finished_at,
    )
