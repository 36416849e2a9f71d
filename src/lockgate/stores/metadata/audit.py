"""The audit log, as a base class of `SqlMetadataStore`.

Appending is idempotent: the insert ignores a row whose `request_id` is
already stored, so a write retried after an ambiguous failure (the commit
may or may not have landed) never stores an action twice.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa

from lockgate.ports.audit import AuditEntry
from lockgate.stores.metadata.schema import audit_log
from lockgate.stores.metadata.statements import insert_ignore

_al = audit_log.c


class AuditMethods:
    """Writes and reads of the audit log (see the port for each contract)."""

    _dialect: str

    def _tx(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _read(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def record_audit(self, entry: AuditEntry) -> bool:
        """Append `entry`; False if an entry with its request id is already stored."""
        with self._tx() as conn:
            return write_audit(conn, self._dialect, entry)

    def audit_entries(self, *, limit: int = 100, token: str | None = None) -> list[AuditEntry]:
        """The newest `limit` entries, of the token named `token` if given."""
        query = sa.select(audit_log).order_by(_al.id.desc()).limit(limit)
        if token is not None:
            query = query.where(_al.token == token)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [_entry(row) for row in rows]


def write_audit(conn: sa.Connection, dialect: str, entry: AuditEntry) -> bool:
    """Insert `entry` in the caller's transaction; False if its request id exists."""
    values = {
        "request_id": entry.request_id,
        "at": entry.at,
        "channel": entry.channel,
        "actor": _clip(entry.actor, 200),
        "token": _clip(entry.token, 100),
        "scope": _clip(entry.scope, 100),
        "method": _clip(entry.method, 10),
        "action": _clip(entry.action, 500) or "",
        "target": _clip(entry.target, 500),
        "status": entry.status,
        "outcome": entry.outcome,
        "client": _clip(entry.client, 100),
    }
    # RETURNING, not rowcount: psycopg reports -1 rows for an insert that returns the key.
    statement = insert_ignore(dialect, audit_log).values(**values).returning(_al.id)
    return conn.execute(statement).first() is not None


def _clip(text: str | None, size: int) -> str | None:
    # PostgreSQL refuses an over-long value, and a request path is the client's to choose.
    return None if text is None else text[:size]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        request_id=row.request_id,
        at=row.at,
        channel=row.channel,
        actor=row.actor,
        token=row.token,
        scope=row.scope,
        method=row.method,
        action=row.action,
        target=row.target,
        status=row.status,
        outcome=row.outcome,
        client=row.client,
        id=row.id,
    )
