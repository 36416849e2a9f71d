"""Statements on the per-task hot path, built once per store.

Building a SQLAlchemy statement (`.where(...)`, `.values(...)`) and computing
its cache key costs far more than executing it on SQLite; statements built
once with bind parameters are executed with plain dicts instead.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from lockgate.model.states import AttemptState, TaskState
from lockgate.stores.metadata.schema import artifacts, attempts, events, lineage_edges, task_runs

_tr = task_runs.c
_at = attempts.c


def insert_ignore(dialect: str, table: sa.Table) -> Any:
    """`INSERT ... ON CONFLICT DO NOTHING` for `table` in `dialect`."""
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


class Statements:
    """Prebuilt statements for one database dialect."""

    def __init__(self, dialect: str) -> None:
        """Build every statement for `dialect` ("sqlite" or "postgresql")."""
        self.insert_event = events.insert()
        self.insert_attempt = attempts.insert()
        self.insert_artifact = insert_ignore(dialect, artifacts)
        self.insert_edge = insert_ignore(dialect, lineage_edges)
        # IN (...) cannot be used with executemany, so the states are spelled out.
        self.queue_task_run = (
            task_runs.update()
            .where(
                _tr.id == sa.bindparam("tr"),
                sa.or_(_tr.state == TaskState.PENDING.value, _tr.state == TaskState.RETRYING.value),
            )
            .values(
                state=TaskState.QUEUED.value,
                attempts=sa.bindparam("n"),
                queued_at=sa.bindparam("at"),
                started_at=None,
                retry_at=None,
            )
        )
        self.start_task_run = (
            task_runs.update()
            .where(
                _tr.id == sa.bindparam("tr"),
                _tr.attempts == sa.bindparam("n"),
                _tr.state == TaskState.QUEUED.value,
            )
            .values(state=TaskState.RUNNING.value, started_at=sa.bindparam("at"))
        )
        self.start_attempt = (
            attempts.update()
            .where(_at.task_run_id == sa.bindparam("tr"), _at.number == sa.bindparam("n"))
            .values(state=AttemptState.RUNNING.value, started_at=sa.bindparam("at"))
        )
        self.finish_task_run = (
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
                finished_at=sa.bindparam("finished_at"),
                output_sha256=sa.bindparam("output"),
            )
        )
        self.finish_attempt = (
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
            )
        )
