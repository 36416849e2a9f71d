"""The UI's catalog pages: pipelines (graph, schedule, metrics), lineage, models.

Each page reads through a service (catalog, lineage, registry, stats) and
turns graphs into pictures with `drawing`; nothing here writes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from lockgate.errors import LockgateError, PipelineNotFoundError
from lockgate.server.ui import drawing
from lockgate.server.ui.web import UI
from lockgate.service import lineage, registry, stats
from lockgate.service.catalog import describe
from lockgate.service.views import run_view

#: Lineage pictures stop growing here; the page says so.
LINEAGE_LIMIT = 400


def pipeline_page_data(ui: UI, name: str) -> dict[str, Any]:
    """A pipeline's graph, schedule with next ticks, parameters, recent runs and metrics."""
    entry = ui.state.catalog.get(name)
    graph = entry.pipeline.graph
    nodes = list(graph.order)
    edges = [(up, node) for node in nodes for up in graph.upstream(node)]
    labels = {
        n: n if graph.nodes[n].task.name == n else f"{n} ({graph.nodes[n].task.name})"
        for n in nodes
    }
    picture = drawing.picture(nodes, edges, labels=labels, states=dict.fromkeys(nodes, "pending"))
    try:
        recent = ui.state.workspace.metadata.list_runs(limit=10, pipeline=name)
    except PipelineNotFoundError:
        recent = []  # no run recorded yet
    params = [
        {
            "name": p.name,
            "kind": p.kind,
            "required": p.required,
            "default": "" if p.required or p.default is None else str(p.default),
        }
        for p in entry.pipeline.params
    ]
    return {
        "pipeline": describe(entry),
        "picture": picture,
        "params": params,
        "recent": [run_view(r) for r in recent],
        "metrics": metrics(ui, name),
    }


def metrics(ui: UI, pipeline: str, days: int = 7) -> list[dict[str, Any]]:
    """The six run metrics over the last `days`, with a daily trend line where one exists.

    Empty while the pipeline has no recorded run.
    """
    try:
        summary = stats.run_stats(ui.state.workspace, pipeline=pipeline, since=f"{days}d")
        trend = stats.stats_trend(
            ui.state.workspace, pipeline=pipeline, since=f"{days}d", buckets=days
        )
    except PipelineNotFoundError:
        return []
    totals = summary.totals
    worst = max(totals.tasks, key=lambda t: t.retry_rate or 0.0, default=None)
    flagged_tasks = [t.task for t in totals.tasks if t.retry_flagged]
    lineage_value = (
        f"{_percent(totals.lineage.ratio)} ({totals.lineage.complete}/{totals.lineage.total})"
        if totals.lineage.total
        else None
    )

    def series(key: str) -> dict[str, Any]:
        return drawing.trend_line([bucket[key] for bucket in trend])

    return [
        {
            "name": "DAG success rate",
            "key": "success_rate",
            "value": f"{_percent(totals.success_rate)} of {totals.finished_runs} runs"
            if totals.finished_runs
            else None,
            "flagged": totals.success_flagged,
            "trend": series("success_rate"),
        },
        {
            "name": "run time p50 / p95",
            "key": "run_time",
            "value": _pair(totals.run_time_s),
            "flagged": False,
            "trend": series("run_time_p95_s"),
        },
        {
            "name": "retry rate per task (worst)",
            "key": "retry_rate",
            "value": f"{worst.task}: {worst.retry_rate:.2f}"
            if worst is not None and worst.retry_rate is not None
            else None,
            "flagged": bool(flagged_tasks),
            "trend": None,
        },
        {
            "name": "queue time p50 / p95 (runs; tasks)",
            "key": "queue_time",
            "value": f"{_pair(totals.run_queue_s)}; {_pair(totals.task_queue_s)}",
            "flagged": False,
            "trend": series("queue_p95_s"),
        },
        {
            "name": "lineage completeness",
            "key": "lineage",
            "value": lineage_value,
            "flagged": bool(totals.lineage.incomplete),
            "trend": None,
        },
        {
            "name": "gate pass rate",
            "key": "gate_pass_rate",
            "value": f"{_percent(totals.gates.pass_rate)} of {totals.gates.evaluations}"
            if totals.gates.evaluations
            else None,
            "flagged": False,
            "trend": series("gate_pass_rate"),
        },
    ]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _pair(values: stats.Percentiles) -> str:
    if values.p50 is None or values.p95 is None:
        return "n/a"
    return f"{values.p50:.2f} s / {values.p95:.2f} s"


def lineage_page_data(ui: UI, ref: str, downstream: bool) -> dict[str, Any]:
    """The ancestry (or descendants) of an artifact or named version, as a picture."""
    workspace = ui.state.workspace
    sha = lineage.resolve_artifact(workspace, ref)
    graph = lineage.walk(workspace, sha, downstream=downstream, limit=LINEAGE_LIMIT)
    nodes: list[str] = []
    labels: dict[str, str] = {}
    links: dict[str, str] = {}
    kinds: dict[str, str] = {}
    for artifact in graph.artifacts.values():
        key = "a:" + artifact["sha256"]
        nodes.append(key)
        names = artifact["versions"]
        labels[key] = names[0] if names else "sha256:" + artifact["sha256"][:12]
        links[key] = "/lineage?ref=sha256:" + artifact["sha256"]
        kinds[key] = "artifact"
    for run_of in graph.task_runs.values():
        key = f"t:{run_of['task_run']}"
        nodes.append(key)
        labels[key] = f"{run_of['node']} · {run_of['run_id'][:10]}"
        links[key] = f"/runs/{run_of['run_id']}"
        kinds[key] = "task"
    edges = []
    for edge in graph.edges:
        artifact, task_run = "a:" + edge["artifact"], f"t:{edge['task_run']}"
        if artifact not in labels or task_run not in labels:
            continue
        edges.append(
            (artifact, task_run) if edge["direction"] == "consumed" else (task_run, artifact)
        )
    picture = drawing.picture(nodes, edges, labels=labels, links=links, kinds=kinds, node_width=200)
    data = graph.to_dict()
    return {
        "ref": ref,
        "downstream": downstream,
        "picture": picture,
        "datasets": data["dataset_versions"],
        "git_shas": data["git_shas"],
        "truncated": len(graph.artifacts) >= LINEAGE_LIMIT,
        "root": labels.get("a:" + sha, sha),
    }


def models_page_data(ui: UI) -> dict[str, Any]:
    """Every model name with its latest version and aliases."""
    versions = registry.list_versions(ui.state.workspace, "model", limit=2000)
    models: dict[str, dict[str, Any]] = {}
    for record in versions:
        model = models.setdefault(
            record.name, {"name": record.name, "latest": record.version, "count": 0, "aliases": {}}
        )
        model["count"] += 1
        for alias in record.aliases:
            model["aliases"][alias] = record.version
    return {"models": sorted(models.values(), key=lambda m: m["name"])}


def model_page_data(ui: UI, name: str) -> dict[str, Any]:
    """A model's versions, aliases, gate evidence and alias audit log."""
    workspace = ui.state.workspace
    versions = registry.list_versions(workspace, "model", name, limit=200)
    if not versions:
        raise LockgateError(f"no model {name!r} is registered; the models page lists them")
    evidence: dict[int, list[dict[str, Any]]] = {}
    for record in versions[:50]:
        if record.run_id is None:
            continue
        decisions = workspace.metadata.gate_decisions(record.run_id)
        evidence[record.version] = [
            {
                "node": d.node_id,
                "metric": d.metric,
                "expression": d.expression,
                "value": d.value,
                "threshold": d.threshold,
                "passed": d.passed,
                "reason": d.reason,
            }
            for d in decisions
        ]
    events = workspace.metadata.alias_events("model", name)
    return {
        "name": name,
        "versions": [registry.version_view(v) for v in versions],
        "evidence": evidence,
        "audit": [registry.alias_event_view(e) for e in reversed(events)],
    }


def register(app: FastAPI, ui: UI) -> None:
    """Add the pipeline, lineage and model pages to `app`."""

    @app.get("/pipelines", include_in_schema=False)
    async def pipelines_page(request: Request) -> Response:
        viewer = ui.viewer(request)
        entries = [describe(e) for e in sorted(ui.state.catalog, key=lambda e: e.pipeline.name)]
        return ui.page("pipelines.html", viewer, {"pipelines": entries})

    @app.get("/pipelines/{name}", include_in_schema=False)
    async def pipeline_page(request: Request, name: str) -> Response:
        viewer = ui.viewer(request)
        try:
            data = await run_in_threadpool(pipeline_page_data, ui, name)
        except PipelineNotFoundError as exc:
            return ui.error_page(404, "No such pipeline", str(exc))
        return ui.page("pipeline.html", viewer, data)

    @app.get("/lineage", include_in_schema=False)
    async def lineage_page(request: Request) -> Response:
        viewer = ui.viewer(request)
        ref = request.query_params.get("ref", "").strip()
        downstream = request.query_params.get("direction") == "down"
        if not ref:
            return ui.page("lineage.html", viewer, {"ref": "", "downstream": downstream})
        try:
            data = await run_in_threadpool(lineage_page_data, ui, ref, downstream)
        except LockgateError as exc:
            return ui.page(
                "lineage.html",
                viewer,
                {"ref": ref, "downstream": downstream, "problem": str(exc)},
                status=404,
            )
        return ui.page("lineage.html", viewer, data)

    @app.get("/models", include_in_schema=False)
    async def models_page(request: Request) -> Response:
        viewer = ui.viewer(request)
        return ui.page("models.html", viewer, await run_in_threadpool(models_page_data, ui))

    @app.get("/models/{name}", include_in_schema=False)
    async def model_page(request: Request, name: str) -> Response:
        viewer = ui.viewer(request)
        try:
            data = await run_in_threadpool(model_page_data, ui, name)
        except LockgateError as exc:
            return ui.error_page(404, "No such model", str(exc))
        return ui.page("model.html", viewer, data)
