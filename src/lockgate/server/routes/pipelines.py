"""Pipelines of the project: list, describe, graph, and queue a run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from lockgate.model.states import Trigger
from lockgate.server.audit import note
from lockgate.server.problems import ERRORS
from lockgate.server.routes import State, Who
from lockgate.server.schemas import Pipeline, PipelineGraph, TriggerBody, Triggered
from lockgate.service.catalog import describe
from lockgate.service.enqueue import enqueue

router = APIRouter(prefix="/pipelines", tags=["pipelines"], responses=ERRORS)


@router.get("", response_model=list[Pipeline])
def list_pipelines(state: State) -> Any:
    """The project's pipelines, by name, with schedules and next ticks."""
    return [describe(e) for e in sorted(state.catalog, key=lambda e: e.pipeline.name)]


@router.get("/{name}", response_model=Pipeline)
def get_pipeline(name: str, state: State) -> Any:
    """One pipeline: schedule, next ticks, triggers and limits."""
    return describe(state.catalog.get(name))


@router.get("/{name}/graph", response_model=PipelineGraph)
def pipeline_graph(name: str, state: State) -> Any:
    """The pipeline's DAG as its current code defines it, in topological order."""
    pipeline = state.catalog.get(name).pipeline
    graph = pipeline.graph
    return {
        "pipeline": pipeline.name,
        "version": pipeline.version,
        "nodes": [
            {
                "id": node.id,
                "task": node.task.name,
                "task_version": node.task.version,
                "mapped": node.mapped,
                "upstream": list(graph.upstream(node.id)),
            }
            for node in graph
        ],
    }


@router.post(
    "/{name}/runs",
    status_code=201,
    response_model=Triggered,
    responses={200: {"model": Triggered, "description": "a run with this key exists"}},
)
def trigger(name: str, body: TriggerBody, state: State, who: Who, request: Request) -> Any:
    """Queue a run of pipeline `name`; the server launches it when limits allow."""
    entry = state.catalog.get(name)
    result = enqueue(
        state.workspace,
        entry.pipeline,
        body.params,
        trigger=Trigger.API,
        trigger_key=f"api:{body.key}" if body.key else None,
        pipeline_ref=entry.ref,
        json_params=True,
        actor=who.actor,
    )
    state.wake.set()  # launch it now, not at the next poll
    note(request, f"run:{result.run_id}")
    record = state.workspace.metadata.get_run(result.run_id)
    return JSONResponse(
        {
            "run_id": result.run_id,
            "created": result.created,
            "status": record.status.value,
            "url": f"/api/v1/runs/{result.run_id}",
        },
        status_code=201 if result.created else 200,
    )
