"""Runs: list (filtered, paged), one run, its task runs and attempts, cancel, resume."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lockgate.errors import NodeNotFoundError
from lockgate.model.states import RunState, Trigger
from lockgate.server.problems import ERRORS
from lockgate.server.routes import State, Who
from lockgate.server.schemas import MAX_INT, MAX_PAGE, Attempt, Run, RunDetail, RunPage, TaskRun
from lockgate.service.lifecycle import cancel_run, queue_resume
from lockgate.service.runs import attempts_by_task_run
from lockgate.service.views import attempt_view, run_details, run_view, task_run_view

router = APIRouter(prefix="/runs", tags=["runs"], responses=ERRORS)

#: Deepest page: past it, narrow the filters instead (an offset scans what it skips).
MAX_OFFSET = 100_000


@router.get("", response_model=RunPage)
def list_runs(
    state: State,
    pipeline: Annotated[str | None, Query(max_length=200)] = None,
    status: RunState | None = None,
    trigger: Trigger | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> Any:
    """Runs, newest first, filtered by pipeline, status and trigger, one page at a time."""
    found = state.workspace.metadata.list_runs(
        limit=limit + 1,
        pipeline=pipeline,
        status=status,
        trigger=trigger.value if trigger else None,
        offset=offset,
    )
    timeout = state.workspace.settings.heartbeat_timeout
    return {
        "runs": [run_view(r, timeout) for r in found[:limit]],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(found) > limit else None,
    }


@router.get("/{run_id}", response_model=RunDetail)
def get_run(run_id: str, state: State) -> Any:
    """A run: status, timing (queue time included), params and every node with its attempts."""
    return run_details(state.workspace, run_id)


@router.get("/{run_id}/tasks", response_model=list[TaskRun])
def task_runs(run_id: str, state: State) -> Any:
    """The run's task runs (nodes and map items) with their attempts."""
    store = state.workspace.metadata
    run = store.get_run(run_id)
    grouped = attempts_by_task_run(state.workspace, run.id)
    return [task_run_view(r, grouped.get(r.id, [])) for r in store.task_runs(run.id)]


@router.get("/{run_id}/tasks/{node}/attempts", response_model=list[Attempt])
def attempts(
    run_id: str,
    node: str,
    state: State,
    map_index: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
) -> Any:
    """The attempts of one node (or of one map item with `map_index`), oldest first."""
    store = state.workspace.metadata
    run = store.get_run(run_id)
    found = [
        a
        for a in store.attempts(run.id)
        if a.node_id == node and (map_index is None or a.map_index == map_index)
    ]
    if not found and not any(
        t.node_id == node and (map_index is None or t.map_index == map_index)
        for t in store.task_runs(run.id)
    ):
        raise NodeNotFoundError(f"run {run.id} has no node {node!r}; GET its /tasks to list them")
    return [attempt_view(a) for a in found]


@router.post("/{run_id}/cancel", response_model=Run)
def cancel(run_id: str, state: State, who: Who) -> Any:
    """Cancel a run: a queued or orphaned one at once, a running one between its steps."""
    record = cancel_run(state.workspace, run_id, by=Trigger.API, actor=who.actor)
    return run_view(record, state.workspace.settings.heartbeat_timeout)


@router.post("/{run_id}/resume", response_model=Run)
def resume(run_id: str, state: State, who: Who) -> Any:
    """Queue a failed, cancelled or orphaned run again; a server drives what did not commit."""
    record = queue_resume(state.workspace, run_id, by=Trigger.API, actor=who.actor)
    state.wake.set()
    return run_view(record, state.workspace.settings.heartbeat_timeout)
