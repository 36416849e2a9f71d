"""Applying a `WriteBatch`: the coordinator's state changes, in one transaction.

Starts and finishes are fenced by (task run, attempt) with conditional
UPDATEs; a cache hit is fenced on the task run still being pending. If any
fence fails the caller rolls the whole transaction back: a coordinator whose
write is fenced has lost the run to another one and must stop.

This is the per-task hot path, so rows of one kind are written with one
executemany, and an attempt that starts and finishes within one batch is
written once, not twice.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from lockgate.model.states import AttemptState, EventKind
from lockgate.ports.metadata import (
    ArtifactRecord,
    AttemptResult,
    CachedItem,
    StartItem,
    WriteBatch,
)
from lockgate.stores.metadata import eventlog, records, registry
from lockgate.stores.metadata.schema import gate_decisions, pool_leases
from lockgate.stores.metadata.statements import Statements


class Fenced(Exception):
    """A fenced write matched no row; the message says which."""


def transitions_only(batch: WriteBatch) -> bool:
    """True when `batch` holds only task transitions: nothing a user is told was recorded.

    Such a batch may wait for the group fsync (see `walsync`); gate decisions,
    registrations, alias moves and the named versions an output creates may not.
    """
    return not (
        batch.gate_decisions
        or batch.registrations
        or batch.alias_moves
        or any(r.named is not None for r in batch.finishes)
    )


def apply(conn: sa.Connection, st: Statements, run_id: str, batch: WriteBatch) -> None:
    """Apply `batch` on `conn` (inside a transaction).

    Raises:
        Fenced: a start, finish or cache hit is not current; roll back.
    """
    if st.locks_rows:
        # Run row first, then registry names in sorted order: every writer of a run
        # takes its locks in this order, so they wait for each other, never deadlock.
        st.lock_run.first(conn, {"run": run_id})
        names = [(r.named.kind, r.named.name) for r in batch.finishes if r.named is not None]
        names += [("model", item.name) for item in batch.registrations]
        names += [(move.kind, move.name) for move in batch.alias_moves]
        registry.lock_names(conn, names)
    events: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    finishing = {(r.task_run_id, r.attempt) for r in batch.finishes}
    # Attempts that also finish in this batch are written once, by the finish.
    starts = [s for s in batch.starts if (s.task_run_id, s.attempt) not in finishing]
    started = {(s.task_run_id, s.attempt): s for s in batch.starts}
    if starts:
        _starts(conn, st, starts)
    for start in batch.starts:
        events.append(
            records.event_row(
                run_id, EventKind.TASK_STARTED, start.at, start.task_run_id, start.attempt
            )
        )
    if batch.finishes:
        _finishes(conn, st, run_id, batch.finishes, started, events, edges)
    for item in batch.cached:
        _cached(conn, st, run_id, item, batch.at, events, edges)
    _system(conn, run_id, batch, events)
    if batch.releases:
        conn.execute(pool_leases.delete().where(pool_leases.c.task_run_id.in_(batch.releases)))
    if edges:
        st.insert_edge.executemany(conn, edges)
    if batch.queues:
        _queues(conn, st, run_id, batch, events)
    if events:
        eventlog.append(conn, st, run_id, events)


def _starts(conn: sa.Connection, st: Statements, starts: list[StartItem]) -> None:
    params = [
        {
            "tr": s.task_run_id,
            "n": s.attempt,
            "at": s.at,
            "log_path": s.log.path if s.log else None,
            "log_start": s.log.start if s.log else None,
        }
        for s in starts
    ]
    for item in params:
        if st.start_task_run.execute(conn, item) != 1:
            raise Fenced(f"task run {item['tr']} attempt {item['n']} is no longer queued")
    st.start_attempt.executemany(conn, params)


def _finishes(
    conn: sa.Connection,
    st: Statements,
    run_id: str,
    results: list[AttemptResult],
    started: dict[tuple[int, int], StartItem],
    events: list[dict[str, Any]],
    edges: list[dict[str, Any]],
) -> None:
    artifacts = [
        records.artifact_row(ArtifactRecord(r.output, r.finished_at))
        for r in results
        if r.output is not None
    ]
    if artifacts:
        st.insert_artifact.executemany(conn, artifacts)
    attempt_rows = []
    for result in results:
        error, output = result.error, result.output
        begun = started.get((result.task_run_id, result.attempt))
        start = begun.at if begun is not None else result.started_at
        log = result.log or (begun.log if begun is not None else None)
        keys = {"tr": result.task_run_id, "n": result.attempt}
        changed = st.finish_task_run.execute(
            conn,
            {
                **keys,
                "state": result.task_state.value,
                "retry_at": result.retry_at,
                "error": error.summary() if error else None,
                "started_at": start,
                "finished_at": result.finished_at if result.task_state.terminal else None,
                "output": output.sha256 if output is not None else None,
            },
        )
        if changed != 1:
            raise Fenced(f"task run {result.task_run_id} attempt {result.attempt} is not current")
        attempt_rows.append(
            {
                **keys,
                "state": result.attempt_state.value,
                "started_at": start,
                "finished_at": result.finished_at,
                "error_type": error.type if error else None,
                "error_message": error.message if error else None,
                "error_traceback": error.traceback if error else None,
                "error_user": error.user if error else None,
                "log_path": log.path if log else None,
                "log_start": log.start if log else None,
                "log_end": log.end if log else None,
            }
        )
        for sha in dict.fromkeys(result.consumed):
            edges.append(_edge(run_id, result.task_run_id, sha, "consumed"))
        payload: dict[str, Any] = {}
        if error is not None:
            payload["error"] = error.summary()
            payload["retryable"] = error.retryable
        if result.retry_at is not None:
            payload["retry_at"] = result.retry_at
        if output is not None:
            # A node that passes an input on unchanged (a gate, register, an
            # identity task) did not produce it: lineage keeps the real producer.
            if output.sha256 not in result.consumed:
                edges.append(_edge(run_id, result.task_run_id, output.sha256, "produced"))
            payload["output"] = output.uri
            if result.named is not None:
                named = result.named
                version, created = registry.create_version(
                    conn,
                    kind=named.kind,
                    name=named.name,
                    sha256=output.sha256,
                    run_id=run_id,
                    task_run_id=result.task_run_id,
                    metadata=named.metadata,
                    gated=None,
                    at=result.finished_at,
                )
                payload["version"] = f"{named.kind}:{named.name}@{version}"
                version_event = {
                    "kind": named.kind,
                    "name": named.name,
                    "version": version,
                    "created": created,
                    "output": output.uri,
                }
                events.append(
                    records.event_row(
                        run_id,
                        EventKind.VERSION_CREATED,
                        result.finished_at,
                        result.task_run_id,
                        result.attempt,
                        version_event,
                    )
                )
        kind = EventKind.for_task(result.task_state)
        events.append(
            records.event_row(
                run_id, kind, result.finished_at, result.task_run_id, result.attempt, payload
            )
        )
    st.finish_attempt.executemany(conn, attempt_rows)


def _cached(
    conn: sa.Connection,
    st: Statements,
    run_id: str,
    item: CachedItem,
    at: float,
    events: list[dict[str, Any]],
    edges: list[dict[str, Any]],
) -> None:
    hit = item.hit
    changed = st.cache_task_run.execute(
        conn,
        {
            "tr": item.task_run_id,
            "at": at,
            "output": hit.output.sha256,
            "cache_key": item.cache_key,
            "cache_inputs": dict(item.cache_inputs),
            "source": hit.task_run_id,
        },
    )
    if changed != 1:
        raise Fenced(f"task run {item.task_run_id} is no longer pending")
    edges.extend(
        _edge(run_id, item.task_run_id, sha, "consumed") for sha in dict.fromkeys(item.consumed)
    )
    edges.append(_edge(run_id, item.task_run_id, hit.output.sha256, "produced"))
    payload = {
        "output": hit.output.uri,
        "cache_key": item.cache_key,
        "source_run": hit.run_id,
        "source_node": hit.node_id + (f"[{hit.map_index}]" if hit.map_index is not None else ""),
    }
    events.append(
        records.event_row(run_id, EventKind.TASK_CACHED, at, item.task_run_id, None, payload)
    )


def _queues(
    conn: sa.Connection,
    st: Statements,
    run_id: str,
    batch: WriteBatch,
    events: list[dict[str, Any]],
) -> None:
    at = batch.at
    st.queue_task_run.executemany(
        conn,
        [
            {
                "tr": q.task_run_id,
                "n": q.attempt,
                "at": at,
                "cache_key": q.cache_key,
                "cache_inputs": dict(q.cache_inputs) if q.cache_inputs is not None else None,
            }
            for q in batch.queues
        ],
    )
    st.insert_attempt.executemany(
        conn,
        [
            {
                "task_run_id": q.task_run_id,
                "number": q.attempt,
                "state": AttemptState.QUEUED.value,
                "queued_at": at,
            }
            for q in batch.queues
        ],
    )
    events.extend(
        records.event_row(run_id, EventKind.TASK_QUEUED, at, q.task_run_id, q.attempt)
        for q in batch.queues
    )


def _system(
    conn: sa.Connection, run_id: str, batch: WriteBatch, events: list[dict[str, Any]]
) -> None:
    """Gate verdicts, model registrations and alias moves decided by system nodes."""
    at = batch.at
    if batch.gate_decisions:
        conn.execute(
            gate_decisions.insert(), registry.decision_rows(run_id, batch.gate_decisions, at)
        )
        by_node: dict[int, list[Any]] = {}
        for decision in batch.gate_decisions:
            by_node.setdefault(decision.task_run_id, []).append(decision)
        for task_run_id, decisions in by_node.items():
            passed = all(d.passed for d in decisions)
            payload = {
                "checks": [
                    {
                        "metric": d.metric,
                        "expression": d.expression,
                        "value": d.value,
                        "threshold": d.threshold,
                        "passed": d.passed,
                        "reason": d.reason,
                    }
                    for d in decisions
                ]
            }
            kind = EventKind.GATE_PASSED if passed else EventKind.GATE_FAILED
            events.append(records.event_row(run_id, kind, at, task_run_id, None, payload))
    for item in batch.registrations:
        payload, _ = registry.register(conn, run_id, item, at)
        events.append(
            records.event_row(
                run_id, EventKind.MODEL_REGISTERED, at, item.task_run_id, None, payload
            )
        )
    for move in batch.alias_moves:
        version, previous = registry.move_alias(conn, move, at)
        moved: dict[str, Any] = {
            "name": move.name,
            "alias": move.alias,
            "version": version,
            "previous_version": previous,
            "action": move.action,
            "forced": move.forced,
        }
        events.append(records.event_row(run_id, EventKind.ALIAS_MOVED, at, None, None, moved))


def _edge(run_id: str, task_run_id: int, sha256: str, direction: str) -> dict[str, Any]:
    return {"run_id": run_id, "task_run_id": task_run_id, "sha256": sha256, "direction": direction}
