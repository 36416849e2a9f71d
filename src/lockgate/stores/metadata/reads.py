"""Read queries of the SQL metadata store, as a base class of `SqlMetadataStore`.

Reads use the reader engine (deferred transactions, never blocking writers in
WAL mode); nothing here writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lockgate.errors import RunNotFoundError
from lockgate.model.states import EventKind, RunState, TaskState
from lockgate.ports.metadata import (
    AliasEvent,
    Approval,
    ArtifactRecord,
    AttemptRecord,
    CacheHit,
    EventRecord,
    GateDecision,
    LineageEdge,
    ResolvedVersion,
    RunRecord,
    StateCounts,
    TaskRunRecord,
    VersionRecord,
)
from lockgate.stores.metadata import connect, records, registry
from lockgate.stores.metadata.schema import (
    aliases,
    artifact_versions,
    artifacts,
    attempts,
    events,
    lineage_edges,
    pipeline_versions,
    pipelines,
    runs,
    task_runs,
)

_RUN_COLUMNS = (
    runs,
    pipelines.c.name.label("pipeline"),
    pipeline_versions.c.version.label("pipeline_version"),
)


class Reads:
    """Every read of the metadata port."""

    url: str

    def _read(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _runs_query(self) -> sa.Select[Any]:
        return (
            sa.select(*_RUN_COLUMNS)
            .join_from(runs, pipelines)
            .join(pipeline_versions, runs.c.pipeline_version_id == pipeline_versions.c.id)
        )

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id or unique id prefix; `latest` is the newest run."""
        with self._read() as conn:
            if run_id == "latest":
                query = self._runs_query().order_by(runs.c.created_at.desc(), runs.c.id.desc())
                row = conn.execute(query.limit(1)).first()
                if row is None:
                    raise RunNotFoundError("there are no runs yet, so no 'latest' run")
                return records.run_record(row)
            row = conn.execute(self._runs_query().where(runs.c.id == run_id)).first()
            if row is None and run_id:
                pattern = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                matches = conn.execute(
                    self._runs_query().where(runs.c.id.like(pattern + "%", escape="\\")).limit(2)
                ).all()
                if len(matches) == 1:
                    row = matches[0]
                elif len(matches) > 1:
                    raise RunNotFoundError(
                        f"run id prefix {run_id!r} matches several runs "
                        f"({matches[0].id}, {matches[1].id}, ...); give more characters."
                    )
        if row is None:
            raise RunNotFoundError(
                f"no run {run_id!r} in {connect.describe(self.url)}; `lockgate runs` lists runs "
                "(check LOCKGATE_HOME / LOCKGATE_DB_URL if you expected it here)."
            )
        return records.run_record(row)

    def list_runs(
        self,
        *,
        limit: int = 50,
        pipeline: str | None = None,
        status: RunState | None = None,
        trigger: str | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered; `offset` skips that many (pages)."""
        query = (
            self._runs_query()
            .order_by(runs.c.created_at.desc(), runs.c.id.desc())
            .limit(limit)
            .offset(max(0, offset))
        )
        if pipeline is not None:
            query = query.where(pipelines.c.name == pipeline)
        if status is not None:
            query = query.where(runs.c.status == status.value)
        if trigger is not None:
            query = query.where(runs.c.trigger == trigger)
        with self._read() as conn:
            return [records.run_record(row) for row in conn.execute(query)]

    def state_counts(self) -> StateCounts:
        """Runs by status and task runs by state, per pipeline, counted in SQL."""
        with self._read() as conn:
            run_rows = conn.execute(
                sa.select(pipelines.c.name, runs.c.status, sa.func.count())
                .join_from(runs, pipelines, runs.c.pipeline_id == pipelines.c.id)
                .group_by(pipelines.c.name, runs.c.status)
            ).all()
            task_rows = conn.execute(
                sa.select(pipelines.c.name, task_runs.c.state, sa.func.count())
                .join_from(task_runs, runs, task_runs.c.run_id == runs.c.id)
                .join(pipelines, runs.c.pipeline_id == pipelines.c.id)
                .group_by(pipelines.c.name, task_runs.c.state)
            ).all()
        return StateCounts(
            runs={(name, status): n for name, status, n in run_rows},
            task_runs={(name, state): n for name, state, n in task_rows},
        )

    def run_graph(self, run_id: str) -> Mapping[str, Any]:
        """The graph stored for the run's pipeline version."""
        with self._read() as conn:
            graph = conn.execute(
                sa.select(pipeline_versions.c.graph)
                .join(runs, runs.c.pipeline_version_id == pipeline_versions.c.id)
                .where(runs.c.id == run_id)
            ).scalar()
        if graph is None:
            raise RunNotFoundError(f"no run {run_id!r}")
        return dict(graph)

    @staticmethod
    def _task_runs_query(run_id: str, node_id: str | None = None) -> sa.Select[Any]:
        query = (
            sa.select(task_runs, *records.ARTIFACT_REF_COLUMNS)
            .join_from(task_runs, artifacts, isouter=True)
            .where(task_runs.c.run_id == run_id)
            .order_by(task_runs.c.id)
        )
        return query if node_id is None else query.where(task_runs.c.node_id == node_id)

    def task_runs(self, run_id: str, node_id: str | None = None) -> list[TaskRunRecord]:
        """The run's task runs (only `node_id`'s, if given) with outputs, in creation order."""
        with self._read() as conn:
            rows = conn.execute(self._task_runs_query(run_id, node_id))
            return [records.task_run_record(row) for row in rows]

    def get_task_run(self, task_run_id: int) -> TaskRunRecord | None:
        """One task run by id, with its output."""
        query = (
            sa.select(task_runs, *records.ARTIFACT_REF_COLUMNS)
            .join_from(task_runs, artifacts, isouter=True)
            .where(task_runs.c.id == task_run_id)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        return None if row is None else records.task_run_record(row)

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        """Every attempt of the run."""
        query = (
            sa.select(attempts, task_runs.c.node_id, task_runs.c.map_index)
            .join(task_runs, attempts.c.task_run_id == task_runs.c.id)
            .where(task_runs.c.run_id == run_id)
            .order_by(task_runs.c.id, attempts.c.number)
        )
        with self._read() as conn:
            return [records.attempt_record(row) for row in conn.execute(query)]

    def events(self, run_id: str) -> list[EventRecord]:
        """The run's events in write order."""
        with self._read() as conn:
            return [event for event, _ in self._hashed_events(conn, run_id)]

    @staticmethod
    def _hashed_events(conn: sa.Connection, run_id: str) -> list[tuple[EventRecord, str | None]]:
        query = (
            sa.select(events, task_runs.c.node_id, task_runs.c.map_index)
            .join(task_runs, events.c.task_run_id == task_runs.c.id, isouter=True)
            .where(events.c.run_id == run_id)
            .order_by(events.c.id)
        )
        return [
            (
                EventRecord(
                    id=row.id,
                    run_id=row.run_id,
                    kind=EventKind(row.kind),
                    at=row.at,
                    node_id=row.node_id,
                    map_index=records.map_index_of(row.map_index),
                    attempt=row.attempt,
                    payload=row.payload or {},
                    task_run_id=row.task_run_id,
                ),
                row.hash,
            )
            for row in conn.execute(query)
        ]

    def get_artifact(self, sha256: str) -> ArtifactRecord | None:
        """The artifact with this hash, inline bytes included."""
        with self._read() as conn:
            row = conn.execute(sa.select(artifacts).where(artifacts.c.sha256 == sha256)).first()
        return None if row is None else records.artifact_record(row)

    def list_artifacts(self, *, limit: int = 100) -> list[ArtifactRecord]:
        """Artifacts, newest first, without their inline bytes."""
        columns = [c for c in artifacts.c if c.name != "inline"]
        is_inline = artifacts.c.inline.is_not(None).label("is_inline")
        query = sa.select(*columns, is_inline).order_by(artifacts.c.created_at.desc()).limit(limit)
        with self._read() as conn:
            return [records.artifact_record(row) for row in conn.execute(query)]

    def find_cached(self, cache_key: str, *, not_before: float | None) -> CacheHit | None:
        """The newest committed result with this cache key (and not older than `not_before`)."""
        query = (
            sa.select(task_runs, *records.ARTIFACT_REF_COLUMNS)
            .join_from(task_runs, artifacts)
            .where(
                task_runs.c.cache_key == cache_key,
                task_runs.c.state.in_([TaskState.SUCCEEDED.value, TaskState.CACHED.value]),
            )
            .order_by(task_runs.c.finished_at.desc())
            .limit(1)
        )
        if not_before is not None:
            query = query.where(task_runs.c.finished_at >= not_before)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        record = records.task_run_record(row)
        assert record.output is not None and record.finished_at is not None
        return CacheHit(
            task_run_id=record.id,
            run_id=record.run_id,
            node_id=record.node_id,
            map_index=record.map_index,
            output=record.output,
            finished_at=record.finished_at,
        )

    def cache_history(self, task_name: str, *, before: float, limit: int) -> list[TaskRunRecord]:
        """Committed task runs of `task_name` that recorded cache inputs, newest first."""
        query = (
            sa.select(task_runs, *records.ARTIFACT_REF_COLUMNS)
            .join_from(task_runs, artifacts, isouter=True)
            .where(
                task_runs.c.task_name == task_name,
                task_runs.c.cache_inputs.is_not(None),
                task_runs.c.state.in_([TaskState.SUCCEEDED.value, TaskState.CACHED.value]),
                task_runs.c.finished_at <= before,
            )
            .order_by(task_runs.c.finished_at.desc())
            .limit(limit)
        )
        with self._read() as conn:
            return [records.task_run_record(row) for row in conn.execute(query)]

    def _edges(self, condition: Any) -> list[LineageEdge]:
        query = (
            sa.select(lineage_edges, task_runs.c.node_id, task_runs.c.map_index)
            .join(task_runs, lineage_edges.c.task_run_id == task_runs.c.id)
            .where(condition)
            .order_by(lineage_edges.c.id)
        )
        with self._read() as conn:
            return [
                LineageEdge(
                    run_id=row.run_id,
                    node_id=row.node_id,
                    map_index=records.map_index_of(row.map_index),
                    sha256=row.sha256,
                    direction=row.direction,
                    task_run_id=row.task_run_id,
                )
                for row in conn.execute(query)
            ]

    def lineage(self, sha256: str) -> list[LineageEdge]:
        """Every task run that produced or consumed the artifact."""
        return self._edges(lineage_edges.c.sha256 == sha256)

    def task_run_edges(self, task_run_ids: Sequence[int]) -> list[LineageEdge]:
        """Every lineage edge of these task runs."""
        if not task_run_ids:
            return []
        return self._edges(lineage_edges.c.task_run_id.in_(list(task_run_ids)))

    def versions_of_artifact(self, sha256: str) -> list[VersionRecord]:
        """The named versions whose content is this artifact."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(artifact_versions.c.kind, artifact_versions.c.name).where(
                    artifact_versions.c.sha256 == sha256
                )
            ).all()
            found = [registry.version_of(conn, row.kind, row.name, sha256) for row in rows]
        return [v for v in found if v is not None]

    # --- named versions, registry, gates, approvals --------------------------

    def resolve_version(self, kind: str, name: str, version: int | None) -> VersionRecord | None:
        """Version `version` of kind:name (latest when None), or None."""
        with self._read() as conn:
            return registry.resolve(conn, kind, name, version)

    def version_of(self, kind: str, name: str, sha256: str) -> VersionRecord | None:
        """The version of kind:name with this content, or None."""
        with self._read() as conn:
            return registry.version_of(conn, kind, name, sha256)

    def list_versions(
        self, kind: str, name: str | None = None, *, limit: int = 100
    ) -> list[VersionRecord]:
        """Versions newest first."""
        with self._read() as conn:
            return registry.list_versions(conn, kind, name, limit)

    def alias_version(self, kind: str, name: str, alias: str) -> VersionRecord | None:
        """The version the alias points at, or None."""
        with self._read() as conn:
            version = conn.execute(
                sa.select(aliases.c.version).where(
                    aliases.c.kind == kind, aliases.c.name == name, aliases.c.alias == alias
                )
            ).scalar()
            return None if version is None else registry.resolve(conn, kind, name, version)

    def run_versions(self, run_id: str) -> list[ResolvedVersion]:
        """The named versions resolved for the run."""
        with self._read() as conn:
            return registry.read_run_versions(conn, run_id)

    def alias_events(self, kind: str, name: str, alias: str | None = None) -> list[AliasEvent]:
        """The alias audit log, oldest first."""
        with self._read() as conn:
            return registry.alias_history(conn, kind, name, alias)

    def gate_decisions(self, run_id: str) -> list[GateDecision]:
        """Every gate check decided in the run."""
        with self._read() as conn:
            return registry.read_decisions(conn, run_id)

    def approvals(self, run_id: str) -> list[Approval]:
        """Decisions on the run's approval nodes."""
        with self._read() as conn:
            return registry.read_approvals(conn, run_id)

    def event_chain(
        self, run_id: str
    ) -> tuple[list[tuple[EventRecord, str | None]], str | None, int | None]:
        """The run's events with stored hashes, plus the run's head hash and event count."""
        with self._read() as conn:
            # One snapshot for events and head, or a concurrent append would look like
            # tampering. SQLite's read transaction is one; PostgreSQL's READ COMMITTED
            # takes a snapshot per statement, REPEATABLE READ one per transaction.
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            chained = self._hashed_events(conn, run_id)
            head = conn.execute(
                sa.select(runs.c.events_head, runs.c.event_count).where(runs.c.id == run_id)
            ).first()
        return (
            chained,
            head.events_head if head else None,
            head.event_count if head else None,
        )
