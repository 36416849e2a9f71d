"""Which results share a commit, and which are committed before the next task runs.

The driver may hold a result that releases no node while other attempts are
in flight, so a fan-out's branches share commits; it never holds one that
would cost more than HOLD_DELAY to redo, and never holds queueing.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

import lockgate as lg
from lockgate.engine.driver import HOLD_DELAY
from lockgate.model.states import TaskState

WIDTH = 200


@lg.task
def source() -> int:
    return 1


@lg.task
def branch(value: int, index: int) -> int:
    return value + index


@lg.task
def count(values: list) -> int:
    return len(values)


@lg.pipeline
def fan_out():
    start = source()
    return count([branch(start, i) for i in range(WIDTH)])


@contextmanager
def commits() -> Iterator[list[str]]:
    """Every COMMIT any new SQLite connection of this process runs while the block runs."""
    seen: list[str] = []

    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.set_trace_callback(
            lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None
        )

    sa.event.listen(sa.engine.Engine, "connect", on_connect)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "connect", on_connect)


def test_a_fan_outs_results_share_commits(workspace):
    with commits() as seen:
        result = lg.run(fan_out, workspace=workspace, executor="inline").raise_for_status()
    assert result.output() == WIDTH
    # One commit per branch without sharing (each result, plus the queueing of the
    # sink with the last); shared, a handful.
    assert len(seen) < WIDTH / 4, f"{len(seen)} commits for {WIDTH} branches"
    branches = [
        tr for tr in workspace.metadata.task_runs(result.run_id) if tr.task_name == "branch"
    ]
    assert len(branches) == WIDTH and all(tr.state is TaskState.SUCCEEDED for tr in branches)
    assert all(tr.attempts == 1 for tr in branches)


@lg.task
def slow(seconds: float) -> str:
    time.sleep(seconds)
    return "slow"


@lg.task
def peek(db: str) -> str:
    """The state the slow node had on record when this one started."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT state FROM task_runs WHERE node_id = 'slow'").fetchone()
    return row[0]


@lg.pipeline
def slow_then_peek(db: str):
    # Two roots, queued together; the inline executor runs them in this order, so
    # `peek` runs while `slow`'s result could still be waiting for a shared commit.
    done = slow(HOLD_DELAY * 3)
    return {"slow": done, "peek": peek(db)}


def test_a_result_that_is_costly_to_redo_is_committed_before_the_next_task_runs(workspace):
    db = str(workspace.settings.home / "lockgate.db")  # absolute: the task opens it
    result = lg.run(
        slow_then_peek, params={"db": db}, workspace=workspace, executor="inline"
    ).raise_for_status()
    assert result.output() == {"slow": "slow", "peek": "succeeded"}
