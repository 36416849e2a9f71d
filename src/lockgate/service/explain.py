"""Why a node was a cache hit or a miss (`lockgate explain RUN NODE`).

A hit names the task run whose result was reused. A miss compares the node's
cache inputs with the nearest earlier result of the same task (fewest
differences, then most recent) and lists what differed: the code version, an
input artifact, or a parameter/literal argument.
"""

from __future__ import annotations

import re
from typing import Any

from lockgate.engine.cache import differences
from lockgate.errors import NodeNotFoundError
from lockgate.model.states import TaskState
from lockgate.ports.metadata import TaskRunRecord
from lockgate.service.compose import Workspace
from lockgate.service.views import iso

_LABEL = re.compile(r"(?P<node>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<index>\d+)\])?")


def _find(records: list[TaskRunRecord], run_id: str, label: str) -> TaskRunRecord:
    match = _LABEL.fullmatch(label)
    if match:
        index = int(match["index"]) if match["index"] is not None else None
        for record in records:
            if record.node_id == match["node"] and record.map_index == index:
                return record
    known = ", ".join(sorted({r.label for r in records if r.map_index is None}))
    raise NodeNotFoundError(
        f"run {run_id} has no node {label!r}; its nodes: {known} (a map item is NODE[i])"
    )


def _where(record: TaskRunRecord) -> dict[str, Any]:
    return {"run_id": record.run_id, "node": record.label, "finished_at": iso(record.finished_at)}


def explain(workspace: Workspace, run_id: str, label: str) -> dict[str, Any]:
    """Explain the cache outcome of node `label` (`node` or `node[i]`) in run `run_id`.

    Returns:
        A dict with `verdict` (hit, miss, off, not_run), a one-line `message`,
        and for a hit the `source`, for a miss the `nearest` earlier result and
        the list of `differences`.
    """
    store = workspace.metadata
    run = store.get_run(run_id)
    records = store.task_runs(run.id)
    record = _find(records, run.id, label)
    base: dict[str, Any] = {
        "run_id": run.id,
        "node": record.label,
        "state": record.state.value,
        "cache_key": record.cache_key,
    }
    if record.state is TaskState.CACHED:
        source = store.get_task_run(record.cached_from) if record.cached_from else None
        where = _where(source) if source else {}
        return {
            **base,
            "verdict": "hit",
            "source": where,
            "message": f"hit: reused the result of node {where.get('node')!r} in run "
            f"{where.get('run_id')} (finished {where.get('finished_at')}), cache key "
            f"{(record.cache_key or '')[:12]}",
        }
    if record.cache_key is None or record.cache_inputs is None:
        if record.attempts == 0:
            return {
                **base,
                "verdict": "not_run",
                "message": f"node {record.label!r} never ran in this run ({record.state.value})",
            }
        return {
            **base,
            "verdict": "off",
            "message": f"caching is off for task {record.task_name!r}: every run executes "
            "it; @lg.task(cache=True) reuses results whose code, inputs and parameters match",
        }
    before = record.queued_at if record.queued_at is not None else run.created_at
    history = [
        r
        for r in store.cache_history(record.task_name, before=before, limit=50)
        if r.id != record.id
    ]
    same = [r for r in history if r.cache_key == record.cache_key]
    if same:
        return {
            **base,
            "verdict": "miss",
            "nearest": _where(same[0]),
            "differences": [],
            "message": f"miss although run {same[0].run_id} had a result with the same key: "
            "this run bypassed the cache (--no-cache) or that result had expired "
            "(CachePolicy(expire=...))",
        }
    if not history:
        return {
            **base,
            "verdict": "miss",
            "differences": [],
            "message": f"miss: no earlier result of task {record.task_name!r} to reuse",
        }
    scored = [
        (len(differences(record.cache_inputs, r.cache_inputs or {})), i, r)
        for i, r in enumerate(history)
    ]
    _, _, nearest = min(scored)
    found = differences(record.cache_inputs, nearest.cache_inputs or {})
    return {
        **base,
        "verdict": "miss",
        "nearest": _where(nearest),
        "differences": found,
        "message": f"miss: the nearest earlier result (node {nearest.label!r} of run "
        f"{nearest.run_id}) differs in: " + "; ".join(found),
    }
