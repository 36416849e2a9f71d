"""Appending events: every row is chained to the previous event of its run.

All event writes go through `append`, inside the caller's transaction: it
reads the run's head hash and count, hashes each new event onto the chain
(`lockgate.model.chain.event_hash`), inserts the rows, and stores the new
head and count on the run. Two writers must never read the same head, or the
chain forks: on SQLite the transaction's write lock (BEGIN IMMEDIATE) keeps
them apart; on PostgreSQL the head is read `FOR NO KEY UPDATE`, so a second
writer of the run waits for the first to commit and then reads its head.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from lockgate.model.chain import GENESIS, event_hash
from lockgate.stores.metadata.records import finite
from lockgate.stores.metadata.statements import Statements


def append(conn: sa.Connection, st: Statements, run_id: str, rows: list[dict[str, Any]]) -> None:
    """Insert event `rows` of run `run_id` (dicts as `records.event_row` builds) with hashes."""
    if not rows:
        return
    found = st.run_head.first(conn, {"run": run_id})
    head = found[0] if found and found[0] else GENESIS
    count = found[1] if found and found[1] else 0
    for row in rows:
        if st.strict_json:
            # Hash what PostgreSQL will store (NaN as null), or the chain would not verify.
            row["payload"] = finite(row["payload"])
        head = event_hash(
            head,
            run_id,
            row["task_run_id"],
            row["attempt"],
            row["kind"],
            row["at"],
            row["payload"],
        )
        row["hash"] = head
    st.insert_event.executemany(conn, rows)
    st.set_run_head.execute(conn, {"run": run_id, "head": head, "count": count + len(rows)})
