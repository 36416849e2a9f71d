"""The six run metrics over a window (`lockgate stats` over HTTP)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from lockgate.server.problems import ERRORS
from lockgate.server.routes import State
from lockgate.service.stats import DEFAULT_WINDOW, PipelineStats, run_stats

router = APIRouter(tags=["stats"], responses=ERRORS)


class StatsBody(BaseModel):
    """The run metrics of one window: per pipeline (with its tasks) and in total."""

    since: str
    until: str
    window: str
    window_s: float
    pipeline: str | None
    pipelines: list[PipelineStats]
    totals: PipelineStats
    thresholds: dict[str, float]


@router.get("/stats", response_model=StatsBody)
def stats(
    state: State,
    pipeline: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[
        str, Query(max_length=20, description="the window: 30m, 24h, 7d, 2w")
    ] = DEFAULT_WINDOW,
) -> Any:
    """DAG success rate, run time and queue time percentiles, retry rates, lineage
    completeness and gate pass rate over the runs that finished in the window."""
    return run_stats(state.workspace, pipeline=pipeline, since=since).to_dict()
