"""Conversions between table rows and the port's frozen records, and JSON for columns.

PostgreSQL's JSON type accepts only standard JSON, so NaN and infinities (a
metric can be either) are stored as null there; SQLite keeps Python's `NaN`
tokens. Event payloads are hashed in the form they are stored in (see
`eventlog`), so the chain verifies on both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from lockgate.model.states import AttemptState, EventKind, RunState, TaskState
from lockgate.ports.artifacts import ArtifactRef
from lockgate.ports.executor import ErrorInfo, LogSpan
from lockgate.ports.metadata import (
    ArtifactRecord,
    AttemptRecord,
    RunRecord,
    TaskRunRecord,
)
from lockgate.stores.metadata.schema import WHOLE_NODE, artifacts

ARTIFACT_REF_COLUMNS = (
    artifacts.c.serializer.label("a_serializer"),
    artifacts.c.size.label("a_size"),
    artifacts.c.type_name.label("a_type_name"),
    artifacts.c.length.label("a_length"),
    artifacts.c.inline.label("a_inline"),
)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float inside dicts and lists replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def strict_json(value: Any) -> str:
    """JSON text any database accepts: non-finite floats become null."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False)


def event_row(
    run_id: str,
    kind: EventKind,
    at: float,
    task_run_id: int | None = None,
    attempt: int | None = None,
    payload: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An `events` row as a dict for insert."""
    return {
        "run_id": run_id,
        "task_run_id": task_run_id,
        "attempt": attempt,
        "kind": kind.value,
        "at": at,
        "payload": dict(payload or {}),
    }


def map_index_of(map_index: int | None) -> int | None:
    """The stored map index as the record's: -1 (whole node) becomes None."""
    return None if map_index is None or map_index == WHOLE_NODE else map_index


def run_record(row: Any) -> RunRecord:
    """A `runs` row joined with its pipeline name and version."""
    return RunRecord(
        id=row.id,
        pipeline=row.pipeline,
        pipeline_version=row.pipeline_version,
        status=RunState(row.status),
        params=row.params,
        trigger=row.trigger,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        git_sha=row.git_sha,
        git_dirty=row.git_dirty,
        error=row.error,
        pipeline_ref=row.pipeline_ref,
        cancel_requested_at=row.cancel_requested_at,
        trigger_key=row.trigger_key,
        logical_date=row.logical_date,
        claimed_by=row.claimed_by,
    )


def ref_from(row: Any, sha256: str) -> ArtifactRef:
    """The artifact ref of `sha256` from a row that selected ARTIFACT_REF_COLUMNS."""
    return ArtifactRef(
        sha256=sha256,
        serializer=row.a_serializer,
        size=row.a_size,
        type_name=row.a_type_name,
        length=row.a_length,
        inline=row.a_inline,
    )


def task_run_record(row: Any) -> TaskRunRecord:
    """A `task_runs` row, with its output ref when the artifact columns were selected."""
    output = None
    if row.output_sha256 is not None and "a_serializer" in row._mapping:
        output = ref_from(row, row.output_sha256)
    return TaskRunRecord(
        id=row.id,
        run_id=row.run_id,
        node_id=row.node_id,
        map_index=map_index_of(row.map_index),
        task_name=row.task_name,
        state=TaskState(row.state),
        attempts=row.attempts,
        queued_at=row.queued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        output=output,
        error=row.error,
        cache_key=row.cache_key,
        cache_inputs=row.cache_inputs,
        cached_from=row.cached_from,
    )


def attempt_record(row: Any) -> AttemptRecord:
    """An `attempts` row joined with its node id and map index."""
    error = None
    if row.error_type is not None:
        error = ErrorInfo(
            type=row.error_type,
            message=row.error_message or "",
            traceback=row.error_traceback or "",
            user=bool(row.error_user),
        )
    log = None
    if row.log_path is not None and row.log_start is not None:
        log = LogSpan(row.log_path, row.log_start, row.log_end)
    return AttemptRecord(
        task_run_id=row.task_run_id,
        node_id=row.node_id,
        map_index=map_index_of(row.map_index),
        number=row.number,
        state=AttemptState(row.state),
        queued_at=row.queued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        error=error,
        log=log,
    )


def artifact_row(record: ArtifactRecord) -> dict[str, Any]:
    """An `artifacts` row as a dict for insert."""
    ref = record.ref
    return {
        "sha256": ref.sha256,
        "serializer": ref.serializer,
        "size": ref.size,
        "type_name": ref.type_name[:300],
        "length": ref.length,
        "inline": ref.inline,
        "origin": record.origin,
        "created_at": record.created_at,
    }


def artifact_record(row: Any) -> ArtifactRecord:
    """An `artifacts` row (inline bytes only if selected)."""
    mapping = row._mapping
    inline = mapping.get("inline")
    is_inline = mapping.get("is_inline", inline is not None)
    return ArtifactRecord(
        ref=ArtifactRef(
            sha256=row.sha256,
            serializer=row.serializer,
            size=row.size,
            type_name=row.type_name,
            length=row.length,
            inline=inline,
        ),
        created_at=row.created_at,
        origin=row.origin,
        stored="inline" if is_inline else "blob",
    )
