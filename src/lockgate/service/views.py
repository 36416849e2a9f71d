"""JSON-ready views of stored runs and artifacts, shared by the CLI and later the API.

Timestamps are ISO 8601 in UTC; durations are seconds.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from lockgate.model.states import EventKind
from lockgate.ports.metadata import ArtifactRecord, AttemptRecord, RunRecord, TaskRunRecord
from lockgate.service.compose import Workspace
from lockgate.service.runs import attempts_by_task_run


def iso(ts: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC string (None stays None)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="milliseconds")


def duration(start: float | None, end: float | None) -> float | None:
    """Seconds between two timestamps, if both exist."""
    if start is None or end is None:
        return None
    return round(max(0.0, end - start), 6)


def run_view(run: RunRecord, stale_after: float | None = None) -> dict[str, Any]:
    """A run's summary; with `stale_after`, flags a run whose coordinator stopped beating."""
    return {
        "run_id": run.id,
        "pipeline": run.pipeline,
        "pipeline_version": run.pipeline_version,
        "status": run.status.value,
        "trigger": run.trigger,
        "trigger_key": run.trigger_key,
        "logical_date": iso(run.logical_date),
        "params": dict(run.params),
        "git_sha": run.git_sha,
        "git_dirty": run.git_dirty,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "queue_time_s": duration(run.created_at, run.started_at),
        "duration_s": duration(run.created_at, run.finished_at),
        "claimed_by": run.claimed_by,
        "heartbeat_at": iso(run.heartbeat_at),
        "stale": stale_after is not None and run.stale(time.time(), stale_after),
        "error": run.error,
    }


def attempt_view(attempt: AttemptRecord) -> dict[str, Any]:
    """One attempt with its timestamps, queue time and error."""
    return {
        "number": attempt.number,
        "state": attempt.state.value,
        "queued_at": iso(attempt.queued_at),
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "queue_time_s": attempt.queue_time,
        "duration_s": duration(attempt.started_at, attempt.finished_at),
        "error": attempt.error.summary() if attempt.error else None,
        "error_type": attempt.error.type if attempt.error else None,
    }


def task_run_view(record: TaskRunRecord, attempts: list[AttemptRecord]) -> dict[str, Any]:
    """One node (or map item) with its attempts."""
    return {
        "id": record.node_id,
        "map_index": record.map_index,
        "task": record.task_name,
        "state": record.state.value,
        "attempt_count": record.attempts,
        "attempts": [attempt_view(a) for a in attempts],
        "output": record.output.uri if record.output else None,
        "error": record.error,
    }


def run_details(workspace: Workspace, run_id: str) -> dict[str, Any]:
    """A run with every node, map item and attempt."""
    run = workspace.metadata.get_run(run_id)
    grouped = attempts_by_task_run(workspace, run.id)
    nodes = [
        task_run_view(record, grouped.get(record.id, []))
        for record in workspace.metadata.task_runs(run.id)
    ]
    view = run_view(run, workspace.settings.heartbeat_timeout)
    view["warnings"] = [
        e.payload.get("message")
        for e in workspace.metadata.events(run.id)
        if e.kind is EventKind.RUN_WARNING
    ]
    return {"run": view, "nodes": nodes}


def artifact_view(record: ArtifactRecord) -> dict[str, Any]:
    """An artifact's metadata (never its bytes)."""
    ref = record.ref
    return {
        "uri": ref.uri,
        "sha256": ref.sha256,
        "serializer": ref.serializer,
        "type": ref.type_name,
        "size": ref.size,
        "length": ref.length,
        "stored": record.stored,
        "origin": record.origin,
        "created_at": iso(record.created_at),
    }
