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
from lockgate.stores.metadata.statements import Raw

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
            tasks = _tasks(conn, where, filtered=pipeline is not None)
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
    found: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
    # The partial index on resume events keeps this from reading every event of the
    # window. No ORDER BY: SQLite would answer it by scanning all events in id order.
    query = _windowed(
        sa.select(events.c.id, events.c.run_id, events.c.payload).select_from(events),
        events.c.run_id,
        [events.c.kind == _RESUMED, *where],
    )
    for event_id, run_id, payload in conn.execute(query):
        found[run_id].append((event_id, str(payload.get("by")), payload.get("previous_status")))
    resumes = {
        run_id: [(by, previous) for _, by, previous in sorted(entries)]
        for run_id, entries in found.items()
    }
    query = sa.select(
        runs.c.id,
        pipelines.c.name,
        runs.c.status,
        runs.c.created_at,
        runs.c.started_at,
        runs.c.finished_at,
    ).select_from(runs)
    query = query.join(pipelines, pipelines.c.id == runs.c.pipeline_id).where(*where)
    states = {state.value: state for state in RunState}
    return [
        RunSample(
            run_id=run_id,
            pipeline=name,
            status=states[status],
            created_at=created_at,
            started_at=started_at,
            finished_at=finished_at,
            resumes=tuple(resumes.get(run_id, ())),
        )
        for run_id, name, status, created_at, started_at, finished_at in Raw(
            query, conn.dialect
        ).rows(conn, {})
    ]


def _tasks(conn: sa.Connection, where: list[Any], *, filtered: bool) -> list[TaskSample]:
    # One row per attempt, aggregated here: SQLite's GROUP BY sorts every row
    # first, which costs more than this loop (bench/stats.py). Attempt numbers
    # are dense, so attempt 1 counts an executed task run and each later one
    # a retry.
    # Pipeline ids, not names, per row: 200,000 rows of small ints cost less to
    # build than 200,000 strings, and the pipelines join is not needed without a filter.
    names = dict(conn.execute(sa.select(pipelines.c.id, pipelines.c.name)).all())
    query = (
        sa.select(
            runs.c.pipeline_id,
            task_runs.c.task_name,
            attempts.c.number,
            attempts.c.started_at - attempts.c.queued_at,
        )
        .select_from(attempts)
        .join(task_runs, task_runs.c.id == attempts.c.task_run_id)
        .join(runs, runs.c.id == task_runs.c.run_id)
    )
    if filtered:
        query = query.join(pipelines, pipelines.c.id == runs.c.pipeline_id)
    query = query.where(*where)
    found: dict[tuple[int, str], list[Any]] = {}
    for pipeline_id, task, number, waited in Raw(query, conn.dialect).rows(conn, {}):
        entry = found.get((pipeline_id, task))
        if entry is None:
            entry = found[(pipeline_id, task)] = [0, 0, 0, []]
        if number == 1:
            entry[0] += 1
        else:
            entry[1] += 1
            if number - 1 > entry[2]:
                entry[2] = number - 1
        if waited is not None:
            entry[3].append(waited if waited > 0.0 else 0.0)
    by_name = {(names[pipeline_id], task): entry for (pipeline_id, task), entry in found.items()}
    for entry in by_name.values():
        # Sorted here, each list once: the percentiles of a pipeline then sort a
        # concatenation of sorted runs, which Python's sort merges in linear time.
        entry[3].sort()

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
    key = (pipelines.c.name, task_runs.c.task_name)
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
    for name, task in sorted(by_name.keys() | gates.keys()):
        executed, retries, most, waits = by_name.get((name, task), (0, 0, 0, []))
        evaluations, passed = gates.get((name, task), (0, 0))
        samples.append(
            TaskSample(
                pipeline=name,
                task_name=task,
                executed=executed,
                retries=retries,
                max_retries=most,
                queue_times=tuple(waits),
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
    # One pass over the walk: per model, does any artifact reached have a
    # dataset version, and did any task run that produced one record a Git SHA?
    dataset = artifact_versions.alias("dataset")
    maker = lineage_edges.alias("maker")
    maker_run = runs.alias("maker_run")
    recorded = sa.and_(maker_run.c.git_sha.is_not(None), maker_run.c.git_sha != "")
    reached = (
        sa.select(
            up.c.root,
            sa.func.max(sa.case((dataset.c.id.is_not(None), 1), else_=0)),
            sa.func.max(sa.case((recorded, 1), else_=0)),
        )
        .select_from(up)
        .outerjoin(dataset, sa.and_(dataset.c.sha256 == up.c.sha, dataset.c.kind == "dataset"))
        .outerjoin(maker, sa.and_(maker.c.sha256 == up.c.sha, maker.c.direction == "produced"))
        .outerjoin(maker_run, maker_run.c.id == maker.c.run_id)
        .group_by(up.c.root)
    )
    complete = {root: (bool(d), bool(g)) for root, d, g in conn.execute(reached)}
    query = _windowed(
        sa.select(model.c.id, pipelines.c.name, model.c.name, model.c.version)
        .select_from(model)
        .order_by(model.c.id),
        model.c.run_id,
        [model.c.kind == "model", *where],
    )
    models = []
    for root, pipeline, name, version in conn.execute(query):
        has_dataset, has_git_sha = complete.get(root, (False, False))
        models.append(ModelLineage(pipeline, f"model:{name}@{version}", has_dataset, has_git_sha))
    return models
