"""The UI's run pages: the runs list, a run with its live DAG and Gantt, a node's logs.

Reads go through the services (views, logs) and the metadata port; every
list is paged and filtered in SQL, so 10,000 runs cost one page of rows.
Live updates poll small endpoints under `/ui/` that send states only, never
the graph again.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lockgate.errors import (
    LockgateError,
    NodeNotFoundError,
    PipelineNotFoundError,
    RunNotFoundError,
)
from lockgate.model.states import EventKind, RunState, Trigger
from lockgate.server.ui import drawing
from lockgate.server.ui.web import UI
from lockgate.service.logs import attempt_logs
from lockgate.service.record import build as build_record
from lockgate.service.views import run_view

PAGE_SIZE = 50
#: The tail of a log a page shows; `lockgate logs` prints all of it.
LOG_TAIL_BYTES = 256 * 1024


def runs_query(request: Request) -> dict[str, Any]:
    """The runs list's filters and page from the query string (bad values are dropped)."""
    params = request.query_params
    status = params.get("status") or None
    if status not in {s.value for s in RunState}:
        status = None
    try:
        page = max(1, min(int(params.get("page", "1")), 100_000))
    except ValueError:
        page = 1
    return {
        "pipeline": (params.get("pipeline") or None),
        "status": status,
        "trigger": (params.get("trigger") or None),
        "page": page,
    }


def runs_page_data(ui: UI, query: dict[str, Any]) -> dict[str, Any]:
    """One page of runs (newest first) and whether an older page exists."""
    try:
        found = ui.state.workspace.metadata.list_runs(
            limit=PAGE_SIZE + 1,
            offset=(query["page"] - 1) * PAGE_SIZE,
            pipeline=query["pipeline"],
            status=RunState(query["status"]) if query["status"] else None,
            trigger=query["trigger"],
        )
    except PipelineNotFoundError:
        found = []  # a pipeline with no run recorded yet
    timeout = ui.state.workspace.settings.heartbeat_timeout
    runs = [run_view(r, timeout) for r in found[:PAGE_SIZE]]
    filters = urlencode({k: query[k] for k in ("pipeline", "status", "trigger") if query[k]})
    return {"runs": runs, "more": len(found) > PAGE_SIZE, "query": query, "filters": filters}


def run_page_data(ui: UI, run_id: str) -> dict[str, Any]:
    """A run with its DAG picture, Gantt chart and warnings."""
    store = ui.state.workspace.metadata
    run = store.get_run(run_id)
    graph = store.run_graph(run.id)
    records = store.task_runs(run.id)
    nodes, edges = drawing.graph_edges(graph)
    tasks = {n["id"]: n["task"] for n in graph["nodes"]}
    labels = {n: n if tasks[n] == n else f"{n} ({tasks[n]})" for n in nodes}
    links = {n: f"/runs/{run.id}/nodes/{n}" for n in nodes}
    picture = drawing.picture(
        nodes, edges, labels=labels, states=drawing.node_states(records), links=links
    )
    chart = drawing.gantt(run, records, store.attempts(run.id))
    view = run_view(run, ui.state.workspace.settings.heartbeat_timeout)
    warnings = [
        e.payload.get("message") for e in store.events(run.id) if e.kind is EventKind.RUN_WARNING
    ]
    return {
        "run": view,
        "picture": picture,
        "gantt": chart,
        "warnings": warnings,
        "terminal": run.status.terminal,
        "resumable": run.status in (RunState.FAILED, RunState.CANCELLED, RunState.GATE_FAILED)
        or view["stale"],
        "node_count": len(nodes),
    }


def node_page_data(ui: UI, run_id: str, node: str) -> dict[str, Any]:
    """A node's attempts, each with the tail of its captured output."""
    store = ui.state.workspace.metadata
    run = store.get_run(run_id)
    records = [r for r in store.task_runs(run.id) if node in (r.label, r.node_id)]
    if not records:
        raise NodeNotFoundError(f"run {run.id} has no node {node!r}")
    by_record = {r.id: r for r in records}
    attempts = [a for a in store.attempts(run.id) if a.task_run_id in by_record]
    try:
        logs = attempt_logs(ui.state.workspace, run.id, node)
    except NodeNotFoundError:
        logs = []
    texts = {}
    for log in logs:
        data = log.read_from(0)
        cut = len(data) > LOG_TAIL_BYTES
        texts[(log.label, log.attempt)] = (
            data[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace"),
            cut,
        )
    rows = []
    for attempt in attempts:
        record = by_record[attempt.task_run_id]
        text, cut = texts.get((record.label, attempt.number), ("", False))
        rows.append({"label": record.label, "attempt": attempt, "log": text, "cut": cut})
    return {
        "run": run_view(run),
        "node": node,
        "records": records,
        "attempts": rows,
    }


def register(app: FastAPI, ui: UI) -> None:
    """Add the run pages and their live endpoints to `app`."""

    @app.get("/", include_in_schema=False)
    async def runs_page(request: Request) -> Response:
        viewer = ui.viewer(request)
        query = runs_query(request)
        data = await run_in_threadpool(runs_page_data, ui, query)
        pipelines = sorted(e.pipeline.name for e in ui.state.catalog)
        context = {
            **data,
            "pipelines": pipelines,
            "statuses": [s.value for s in RunState],
            "triggers": [t.value for t in Trigger],
        }
        return ui.page("runs.html", viewer, context)

    @app.get("/ui/runs/rows", include_in_schema=False)
    async def runs_rows(request: Request) -> Response:
        ui.viewer(request, json=True)
        data = await run_in_threadpool(runs_page_data, ui, runs_query(request))
        return ui.fragment("_run_rows.html", data)

    @app.get("/runs/{run_id}", include_in_schema=False)
    async def run_page(request: Request, run_id: str) -> Response:
        viewer = ui.viewer(request)
        try:
            data = await run_in_threadpool(run_page_data, ui, run_id)
        except RunNotFoundError as exc:
            return ui.error_page(404, "No such run", str(exc))
        return ui.page("run.html", viewer, data)

    @app.get("/ui/runs/{run_id}/states", include_in_schema=False)
    async def run_states(request: Request, run_id: str) -> Response:
        ui.viewer(request, json=True)

        def read() -> dict[str, Any]:
            store = ui.state.workspace.metadata
            run = store.get_run(run_id)
            view = run_view(run)
            return {
                "status": run.status.value,
                "terminal": run.status.terminal,
                "queue_time": ui.env.filters["seconds"](view["queue_time_s"]),
                "duration": ui.env.filters["seconds"](view["duration_s"]),
                "nodes": drawing.node_states(store.task_runs(run.id)),
            }

        try:
            return JSONResponse(await run_in_threadpool(read))
        except RunNotFoundError:
            return JSONResponse({"error": "run_not_found"}, status_code=404)

    @app.get("/ui/runs/{run_id}/gantt", include_in_schema=False)
    async def run_gantt(request: Request, run_id: str) -> Response:
        ui.viewer(request, json=True)

        def read() -> drawing.Gantt:
            store = ui.state.workspace.metadata
            run = store.get_run(run_id)
            return drawing.gantt(run, store.task_runs(run.id), store.attempts(run.id))

        try:
            return ui.fragment("_gantt.html", {"gantt": await run_in_threadpool(read)})
        except RunNotFoundError:
            return JSONResponse({"error": "run_not_found"}, status_code=404)

    @app.get("/runs/{run_id}/nodes/{node}", include_in_schema=False)
    async def node_page(request: Request, run_id: str, node: str) -> Response:
        viewer = ui.viewer(request)
        try:
            data = await run_in_threadpool(node_page_data, ui, run_id, node)
        except (RunNotFoundError, NodeNotFoundError) as exc:
            return ui.error_page(404, "Not found", str(exc))
        return ui.page("node.html", viewer, data)

    @app.get("/runs/{run_id}/record", include_in_schema=False)
    async def record_page(request: Request, run_id: str) -> Response:
        viewer = ui.viewer(request)
        try:
            record = await run_in_threadpool(build_record, ui.state.workspace, run_id)
        except RunNotFoundError as exc:
            return ui.error_page(404, "No such run", str(exc))
        except LockgateError as exc:
            return ui.error_page(400, "Record unavailable", str(exc))
        return ui.page("record.html", viewer, {"record": record})
