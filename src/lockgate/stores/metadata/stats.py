"""The rows behind `lockgate stats`, as a base class of `SqlMetadataStore`.

A window is the runs that *finished* in [since, until), found through the
index on `runs.finished_at`; every other row is reached from those runs by
primary or foreign keys. Counting and summing happen in SQL. Percentiles do
not (SQLite has no percentile function), so each task's attempt queue times
come back as one comma-joined string per task (`group_concat` / `string_agg`)
rather than as one row per attempt: a few rows instead of hundreds of
thousands, parsed in the service. Model lineage is one recursive query over
`lineage_edges` for all the window's model versions at once.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from lockgate.model.states import EventKind, RunState
from lockgate.ports.metadata import ModelLineage, RunSample, StatsRows, TaskSample
from lockgate.stores.metadata.schema import (
    artifact_versions,
    attempts,
    events,
    gate_decisions,
    lineage_edges,
    pipelines,
    runs,
    task_runs,
)

_RESUMED = EventKind.RUN_RESUMED.value


class StatsMethods:
    """`MetadataStore.stats_rows` on SQLAlchemy Core."""

    def _read(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def stats_rows(self, *, since: float, until: float, pipeline: str | None = None) -> StatsRows:
        """Runs that finished in [since, until), their tasks' aggregates and their models."""
        where: list[Any] = [runs.c.finished_at >= since, runs.c.finished_at < until]
        if pipeline is not None:
            where.append(pipelines.c.name == pipeline)
        with self._read() as conn:
            samples = _runs(conn, where)
            tasks = _tasks(conn, where)
            models = _models(conn, where)
        return StatsRows(runs=samples, tasks=tasks, models=models)


def _windowed(query: Any, run_id: Any, where: list[Any]) -> Any:
    """Restrict `query` to rows whose run (joined on `run_id`) is in the window."""
    return (
        query.join(runs, runs.c.id == run_id)
        .join(pipelines, pipelines.c.id == runs.c.pipeline_id)
        .where(*where)
    )


def _runs(conn: sa.Connection, where: list[Any]) -> list[RunSample]:
    resumes: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    # The partial index on resume events keeps this from reading every event of the window.
    query = _windowed(
        sa.select(events.c.run_id, events.c.payload).select_from(events),
        events.c.run_id,
        [events.c.kind == _RESUMED, *where],
    ).order_by(events.c.id)
    for run_id, payload in conn.execute(query):
        resumes[run_id].append((str(payload.get("by")), payload.get("previous_status")))
    query = sa.select(
        runs.c.id,
        pipelines.c.name,
        runs.c.status,
        runs.c.created_at,
        runs.c.started_at,
        runs.c.finished_at,
    ).select_from(runs)
    query = query.join(pipelines, pipelines.c.id == runs.c.pipeline_id).where(*where)
    return [
        RunSample(
            run_id=row[0],
            pipeline=row[1],
            status=RunState(row[2]),
            created_at=row[3],
            started_at=row[4],
            finished_at=row[5],
            resumes=tuple(resumes.get(row[0], ())),
        )
        for row in conn.execute(query)
    ]


def _tasks(conn: sa.Connection, where: list[Any]) -> list[TaskSample]:
    key = (pipelines.c.name, task_runs.c.task_name)
    retries = task_runs.c.attempts - 1
    counted = _windowed(
        sa.select(*key, sa.func.count(), sa.func.sum(retries), sa.func.max(retries)).select_from(
            task_runs
        ),
        task_runs.c.run_id,
        [task_runs.c.attempts >= 1, *where],
    ).group_by(*key)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name, task, executed, total, most in conn.execute(counted):
        found[(name, task)] = {"executed": executed, "retries": int(total), "max": int(most)}

    waited = sa.cast(attempts.c.started_at - attempts.c.queued_at, sa.String)
    queued = _windowed(
        sa.select(*key, sa.func.aggregate_strings(waited, ","))
        .select_from(attempts)
        .join(task_runs, task_runs.c.id == attempts.c.task_run_id),
        task_runs.c.run_id,
        [attempts.c.started_at.is_not(None), *where],
    ).group_by(*key)
    waits: dict[tuple[str, str], tuple[float, ...]] = {}
    for name, task, joined in conn.execute(queued):
        waits[(name, task)] = tuple(max(0.0, float(v)) for v in joined.split(","))

    # A gate node's evaluation passed when every one of its checks did.
    checks = _windowed(
        sa.select(
            gate_decisions.c.task_run_id,
            sa.func.min(sa.case((gate_decisions.c.passed, 1), else_=0)).label("ok"),
        ).select_from(gate_decisions),
        gate_decisions.c.run_id,
        where,
    ).group_by(gate_decisions.c.task_run_id)
    per_node = checks.subquery()
    gated = (
        sa.select(*key, sa.func.count(), sa.func.sum(per_node.c.ok))
        .select_from(per_node)
        .join(task_runs, task_runs.c.id == per_node.c.task_run_id)
        .join(runs, runs.c.id == task_runs.c.run_id)
        .join(pipelines, pipelines.c.id == runs.c.pipeline_id)
        .group_by(*key)
    )
    gates = {(name, task): (int(n), int(ok)) for name, task, n, ok in conn.execute(gated)}

    samples = []
    for name, task in sorted(found.keys() | waits.keys() | gates.keys()):
        counts = found.get((name, task), {"executed": 0, "retries": 0, "max": 0})
        evaluations, passed = gates.get((name, task), (0, 0))
        samples.append(
            TaskSample(
                pipeline=name,
                task_name=task,
                executed=counts["executed"],
                retries=counts["retries"],
                max_retries=counts["max"],
                queue_times=waits.get((name, task), ()),
                gate_evaluations=evaluations,
                gate_passed=passed,
            )
        )
    return samples


def _models(conn: sa.Connection, where: list[Any]) -> list[ModelLineage]:
    # The same walk as service.lineage.walk, upstream, for every model at once:
    # artifact -> the task runs that produced it -> the artifacts they consumed.
    model = artifact_versions.alias("model")
    roots = _windowed(
        sa.select(model.c.id.label("root"), model.c.sha256.label("sha")).select_from(model),
        model.c.run_id,
        [model.c.kind == "model", *where],
    )
    up = roots.cte("upstream", recursive=True)
    produced = lineage_edges.alias("produced")
    consumed = lineage_edges.alias("consumed")
    up = up.union(
        sa.select(up.c.root, consumed.c.sha256)
        .select_from(up)
        .join(produced, produced.c.sha256 == up.c.sha)
        .join(consumed, consumed.c.task_run_id == produced.c.task_run_id)
        .where(produced.c.direction == "produced", consumed.c.direction == "consumed")
    )
    dataset = artifact_versions.alias("dataset")
    has_dataset = (
        sa.select(1)
        .select_from(up)
        .join(dataset, dataset.c.sha256 == up.c.sha)
        .where(up.c.root == model.c.id, dataset.c.kind == "dataset")
        .exists()
    )
    maker = lineage_edges.alias("maker")
    maker_run = runs.alias("maker_run")
    has_git = (
        sa.select(1)
        .select_from(up)
        .join(maker, maker.c.sha256 == up.c.sha)
        .join(maker_run, maker_run.c.id == maker.c.run_id)
        .where(
            up.c.root == model.c.id,
            maker.c.direction == "produced",
            maker_run.c.git_sha.is_not(None),
            maker_run.c.git_sha != "",
        )
        .exists()
    )
    query = _windowed(
        sa.select(pipelines.c.name, model.c.name, model.c.version, has_dataset, has_git)
        .select_from(model)
        .order_by(model.c.id),
        model.c.run_id,
        [model.c.kind == "model", *where],
    )
    return [
        ModelLineage(
            pipeline=row[0],
            label=f"model:{row[1]}@{row[2]}",
            has_dataset=bool(row[3]),
            has_git_sha=bool(row[4]),
        )
        for row in conn.execute(query)
    ]
