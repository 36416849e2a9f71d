"""Statements on the per-task hot path, compiled once per store.

Building a SQLAlchemy statement and executing it through the Core costs
around 80 µs per call on this kind of machine, several times what SQLite
needs to run it. The per-task statements are therefore built once, compiled
to their dialect's SQL string once, and run straight on the DBAPI cursor of
the transaction's connection (`Raw`), with JSON parameters serialized here.
Everything else keeps using the Core.

On PostgreSQL the run row is read `FOR NO KEY UPDATE` (`lock_run`, `run_head`):
that lock is what serialises writers of one run there, as `BEGIN IMMEDIATE`
does for the whole database on SQLite. NO KEY UPDATE, unlike FOR UPDATE, does
not block inserts of rows that reference the run (their foreign key check
takes KEY SHARE).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lockgate.model.states import AttemptState, TaskState
from lockgate.stores.metadata.records import strict_json
from lockgate.stores.metadata.schema import (
    artifacts,
    attempts,
    events,
    lineage_edges,
    runs,
    task_runs,
)

_tr = task_runs.c
_at = attempts.c


def insert_ignore(dialect: str, table: sa.Table) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` for `table` in `dialect`."""
    # Imported here: the PostgreSQL dialect costs ~20 ms to import, and a SQLite
    # user (or a quick `lockgate stats`) never needs it.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()


def advisory_lock(conn: sa.Connection, label: str) -> None:
    """On PostgreSQL, hold a lock named `label` until the transaction ends (no-op elsewhere).

    For what has no row to lock yet: a model's version numbers, a new database's schema.
    """
    if conn.dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), signed=True)
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


class Raw:
    """A statement compiled once, executed on the DBAPI cursor of a Core connection."""

    def __init__(
        self,
        statement: Any,
        dialect: sa.Dialect,
        *,
        keys: Sequence[str] | None = None,
        json_params: Sequence[str] = (),
    ) -> None:
        """Compile `statement` for `dialect`.

        Args:
            statement: a Core statement with bind parameters.
            dialect: the engine's dialect.
            keys: for an INSERT, the columns it sets (others take their defaults).
            json_params: parameters to serialize as JSON.
        """
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys else None)
        self.sql: str = compiled.string
        self.names: Sequence[str] | None = compiled.positiontup
        self.defaults: dict[str, Any] = dict(compiled.params)
        self.json_params = frozenset(json_params)
        # PostgreSQL's JSON type refuses NaN; SQLite stores Python's tokens as they are.
        self._dumps = json.dumps if dialect.name == "sqlite" else strict_json
        # For positional paramstyles (SQLite's qmark): each slot's name, default and
        # whether it is JSON, so a row becomes a tuple without building a dict.
        self._slots = [
            (name, self.defaults.get(name), name in self.json_params) for name in self.names or ()
        ]

    def _prepare(self, params: Mapping[str, Any]) -> Any:
        if self.names is None:
            values = {**self.defaults, **params}
            for name in self.json_params:
                if values.get(name) is not None:
                    values[name] = self._dumps(values[name])
            return values
        row = []
        for name, default, is_json in self._slots:
            value = params.get(name, default)
            if is_json and value is not None:
                value = self._dumps(value)
            row.append(value)
        return row

    @staticmethod
    def _cursor(conn: sa.Connection) -> Any:
        return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def execute(self, conn: sa.Connection, params: Mapping[str, Any]) -> int:
        """Run once; return the number of rows it changed."""
        cursor = self._cursor(conn)
        cursor.execute(self.sql, self._prepare(params))
        return int(cursor.rowcount)

    def first(self, conn: sa.Connection, params: Mapping[str, Any]) -> Any:
        """Run a query once; return its first row (a tuple) or None."""
        cursor = self._cursor(conn)
        cursor.execute(self.sql, self._prepare(params))
        return cursor.fetchone()

    def rows(self, conn: sa.Connection, params: Mapping[str, Any]) -> Iterator[tuple[Any, ...]]:
        """Run a query once; iterate over its rows as plain tuples (for large reads)."""
        cursor = self._cursor(conn)
        cursor.execute(self.sql, self._prepare(params))
        return iter(cursor)

    def executemany(self, conn: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        """Run once per row in one call."""
        prepared = [self._prepare(row) for row in rows]
        if not prepared:
            return
        cursor = self._cursor(conn)
        if len(prepared) == 1:
            cursor.execute(self.sql, prepared[0])
        else:
            cursor.executemany(self.sql, prepared)


_EVENT_KEYS = ("run_id", "task_run_id", "attempt", "kind", "at", "payload", "hash")
_ATTEMPT_KEYS = ("task_run_id", "number", "state", "queued_at")
_ARTIFACT_KEYS = (
    "sha256",
    "serializer",
    "size",
    "type_name",
    "length",
    "inline",
    "origin",
    "created_at",
)
_EDGE_KEYS = ("run_id", "task_run_id", "sha256", "direction")


class Statements:
    """Hot-path statements for one engine's dialect, compiled once."""

    def __init__(self, dialect: sa.Dialect) -> None:
        """Build and compile every statement for `dialect`."""
        name = dialect.name
        # Only PostgreSQL needs row locks: SQLite's writers hold the database lock.
        self.locks_rows = name == "postgresql"
        # JSON columns take standard JSON only (no NaN) everywhere but SQLite.
        self.strict_json = name != "sqlite"
        self.insert_event = Raw(events.insert(), dialect, keys=_EVENT_KEYS, json_params=["payload"])
        self.insert_attempt = Raw(attempts.insert(), dialect, keys=_ATTEMPT_KEYS)
        self.insert_artifact = Raw(insert_ignore(name, artifacts), dialect, keys=_ARTIFACT_KEYS)
        self.insert_edge = Raw(insert_ignore(name, lineage_edges), dialect, keys=_EDGE_KEYS)
        run_head = sa.select(runs.c.events_head, runs.c.event_count).where(
            runs.c.id == sa.bindparam("run")
        )
        lock_run = sa.select(runs.c.status).where(runs.c.id == sa.bindparam("run"))
        if self.locks_rows:
            run_head = run_head.with_for_update(key_share=True)
            lock_run = lock_run.with_for_update(key_share=True)
        self.run_head = Raw(run_head, dialect)
        self.lock_run = Raw(lock_run, dialect)
        self.set_run_head = Raw(
            runs.update()
            .where(runs.c.id == sa.bindparam("run"))
            .values(events_head=sa.bindparam("head"), event_count=sa.bindparam("count")),
            dialect,
        )
        # IN (...) cannot be used with executemany, so the states are spelled out.
        self.queue_task_run = Raw(
            task_runs.update()
            .where(
                _tr.id == sa.bindparam("tr"),
                sa.or_(
                    _tr.state == TaskState.PENDING.value,
                    _tr.state == TaskState.RETRYING.value,
                    _tr.state == TaskState.WAITING.value,
                ),
            )
            .values(
                state=TaskState.QUEUED.value,
                attempts=sa.bindparam("n"),
                queued_at=sa.bindparam("at"),
                started_at=None,
                retry_at=None,
                cache_key=sa.bindparam("cache_key"),
                cache_inputs=sa.bindparam("cache_inputs", type_=sa.JSON),
            ),
            dialect,
            json_params=["cache_inputs"],
        )
        self.cache_task_run = Raw(
            task_runs.update()
            .where(_tr.id == sa.bindparam("tr"), _tr.state == TaskState.PENDING.value)
            .values(
                state=TaskState.CACHED.value,
                queued_at=sa.bindparam("at"),
                started_at=sa.bindparam("at"),
                finished_at=sa.bindparam("at"),
                output_sha256=sa.bindparam("output"),
                cache_key=sa.bindparam("cache_key"),
                cache_inputs=sa.bindparam("cache_inputs", type_=sa.JSON),
                cached_from=sa.bindparam("source"),
            ),
            dialect,
            json_params=["cache_inputs"],
        )
        self.start_task_run = Raw(
            task_runs.update()
            .where(
                _tr.id == sa.bindparam("tr"),
                _tr.attempts == sa.bindparam("n"),
                _tr.state == TaskState.QUEUED.value,
            )
            .values(state=TaskState.RUNNING.value, started_at=sa.bindparam("at")),
            dialect,
        )
        self.start_attempt = Raw(
            attempts.update()
            .where(_at.task_run_id == sa.bindparam("tr"), _at.number == sa.bindparam("n"))
            .values(
                state=AttemptState.RUNNING.value,
                started_at=sa.bindparam("at"),
                log_path=sa.bindparam("log_path"),
                log_start=sa.bindparam("log_start"),
            ),
            dialect,
        )
        self.finish_task_run = Raw(
            task_runs.update()
            .where(
                _tr.id == sa.bindparam("tr"),
                _tr.attempts == sa.bindparam("n"),
                sa.or_(_tr.state == TaskState.QUEUED.value, _tr.state == TaskState.RUNNING.value),
            )
            .values(
                state=sa.bindparam("state"),
                retry_at=sa.bindparam("retry_at"),
                error=sa.bindparam("error"),
                started_at=sa.func.coalesce(_tr.started_at, sa.bindparam("started_at")),
                finished_at=sa.bindparam("finished_at"),
                output_sha256=sa.bindparam("output"),
            ),
            dialect,
        )
        self.finish_attempt = Raw(
            attempts.update()
            .where(_at.task_run_id == sa.bindparam("tr"), _at.number == sa.bindparam("n"))
            .values(
                state=sa.bindparam("state"),
                started_at=sa.func.coalesce(_at.started_at, sa.bindparam("started_at")),
                finished_at=sa.bindparam("finished_at"),
                error_type=sa.bindparam("error_type"),
                error_message=sa.bindparam("error_message"),
                error_traceback=sa.bindparam("error_traceback"),
                error_user=sa.bindparam("error_user"),
                log_path=sa.func.coalesce(_at.log_path, sa.bindparam("log_path")),
                log_start=sa.func.coalesce(_at.log_start, sa.bindparam("log_start")),
                log_end=sa.bindparam("log_end"),
            ),
            dialect,
        )
