"""The metadata store on SQL databases: SQLite (the default) and PostgreSQL.

Each write method is one transaction. On SQLite every write transaction
starts with `BEGIN IMMEDIATE`: deferred transactions that read then write
lose updates to `database is locked` under concurrency (measured, see
../shared/RELIABILITY.md). Attempt writes are fenced by (task run, attempt)
with conditional UPDATEs, so a repeated or late commit changes nothing.

PostgreSQL runs at READ COMMITTED with many writers at once, so a write that
reads before it writes locks first: a transaction on one run locks the run
row (`FOR NO KEY UPDATE`) before anything else, registry names take advisory
locks after it, and uniqueness (trigger keys, tokens) is left to unique
constraints. Locks are always taken in that order, so writers wait, never
deadlock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lockgate import failpoints
from lockgate.errors import (
    FencedError,
    MetadataBusyError,
    MetadataError,
    RunExistsError,
    RunNotFoundError,
    RunStateError,
)
from lockgate.model.states import AttemptState, EventKind, RunState, TaskState
from lockgate.ports.metadata import (
    AliasMove,
    Approval,
    ArtifactRecord,
    NewRun,
    RunRecord,
    TaskRunRecord,
    WriteBatch,
)
from lockgate.stores.metadata import batch as batch_writes
from lockgate.stores.metadata import connect, eventlog, records, registry
from lockgate.stores.metadata.alerts import AlertMethods
from lockgate.stores.metadata.audit import AuditMethods
from lockgate.stores.metadata.migrate import ensure_schema
from lockgate.stores.metadata.queue import QueueMethods
from lockgate.stores.metadata.reads import Reads
from lockgate.stores.metadata.routes import RouteMethods
from lockgate.stores.metadata.schema import (
    WHOLE_NODE,
    approvals,
    artifacts,
    attempts,
    pipeline_versions,
    pipelines,
    pool_leases,
    run_versions,
    runs,
    task_runs,
)
from lockgate.stores.metadata.statements import Statements, insert_ignore
from lockgate.stores.metadata.stats import StatsMethods
from lockgate.stores.metadata.walsync import WalSyncer

_TERMINAL = [s.value for s in TaskState if s.terminal]


class SqlMetadataStore(Reads, QueueMethods, StatsMethods, AlertMethods, RouteMethods, AuditMethods):
    """`MetadataStore` over SQLAlchemy Core."""

    def __init__(
        self, url: str, *, busy_timeout: float = 30.0, sync_interval: float = 0.05
    ) -> None:
        """Open (and, if new, create) the database at `url`.

        On a SQLite file, the run driver's task transitions are fsynced in
        groups, at most `sync_interval` seconds after they commit (see
        `walsync`); 0 fsyncs every commit.

        Raises:
            SchemaVersionError: the database needs `lockgate db upgrade`.
            MetadataError: the database cannot be opened.
        """
        self.url = url
        self.busy_timeout = busy_timeout
        self._writer, self._reader = connect.engines(url, busy_timeout=busy_timeout)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open_writers: list[sa.Connection] = []
        self._dialect = self._writer.dialect.name
        self._st = Statements(self._writer.dialect)
        path = connect.sqlite_file(url)
        self._syncer = WalSyncer(path, sync_interval) if path and sync_interval > 0 else None
        with self._errors():
            ensure_schema(self._writer, connect.describe(url))

    # --- plumbing -------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        # The hot-path statements run on the DBAPI cursor (`statements.Raw`), so the
        # driver's own exceptions arrive here unwrapped as well as SQLAlchemy's.
        dbapi = self._writer.dialect.loaded_dbapi
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.DataError) as exc:
            raise self._translate(exc.orig or exc) from exc
        except (dbapi.OperationalError, dbapi.DataError) as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: BaseException) -> MetadataError:
        text = str(exc).lower()
        where = connect.describe(self.url)
        if isinstance(exc, self._writer.dialect.loaded_dbapi.DataError):
            return MetadataError(
                f"metadata database {where} refused a value ({str(exc).strip()}): pipeline, "
                "node, task and model names are limited to 200 characters, trigger keys to "
                "300. Shorten the one that is too long."
            )
        if "locked" in text or "busy" in text:
            return MetadataBusyError(
                f"metadata DB busy: waited {self.busy_timeout:g} s for the write lock on "
                f"{where}; another process holds it. Retry when it finishes, or use "
                "PostgreSQL (LOCKGATE_DB_URL) for many concurrent writers."
            )
        if "disk is full" in text or "no space" in text:
            return MetadataError(
                f"no space left on the device holding the metadata DB {where}; free space, "
                "then resume the run. Earlier commits are intact."
            )
        return MetadataError(f"metadata database {where} failed: {str(exc).strip()}")

    def _writer_connection(self) -> sa.Connection:
        # One long-lived writer connection per thread: checking a connection out
        # of the pool and resetting it on return costs more than the commit itself
        # on the per-task path.
        conn: sa.Connection | None = getattr(self._local, "writer", None)
        if conn is None or conn.closed:
            conn = self._writer.connect()
            self._local.writer = conn
            with self._lock:
                self._open_writers.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self, *, group_sync: bool = False) -> Iterator[sa.Connection]:
        # A writer connection the server dropped (restart, failover) fails the call
        # it is in; rolling back invalidates it, and the next call reconnects.
        with self._errors():
            conn = self._writer_connection()
            if self._syncer is not None and conn.info.get("group_sync", False) != group_sync:
                # Outside any transaction, on the driver's connection: SQLAlchemy would
                # begin one first. New connections start at FULL (connect.py).
                raw = conn.connection.driver_connection
                assert raw is not None  # a connection in use is never detached
                raw.execute(f"PRAGMA synchronous={'NORMAL' if group_sync else 'FULL'}")
                conn.info["group_sync"] = group_sync
            with conn.begin():
                yield conn
                failpoints.hit("db.before_commit")
            failpoints.hit("db.after_commit_before_ack")

    def _lock_run(self, conn: sa.Connection, run_id: str) -> Any:
        """Lock the run's row on PostgreSQL (see the module docstring); its status row or None."""
        if self._st.locks_rows:
            return self._st.lock_run.first(conn, {"run": run_id})
        return None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._errors(), self._reader.connect() as conn:
            yield conn

    def _insert_ignore(self, table: sa.Table) -> Any:
        return insert_ignore(self._dialect, table)

    def _event(
        self,
        conn: sa.Connection,
        run_id: str,
        kind: EventKind,
        at: float,
        *,
        task_run_id: int | None = None,
        attempt: int | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        eventlog.append(
            conn,
            self._st,
            run_id,
            [records.event_row(run_id, kind, at, task_run_id, attempt, payload)],
        )

    # --- registry and approvals: writes ----------------------------------------

    def move_alias(self, move: AliasMove, at: float) -> int | None:
        """Move an alias with its audit row, in one transaction; return the previous version."""
        with self._tx() as conn:
            _, previous = registry.move_alias(conn, move, at)
        return previous

    def record_warning(self, run_id: str, message: str, at: float) -> None:
        """Record a `run_warning` event."""
        with self._tx() as conn:
            self._event(conn, run_id, EventKind.RUN_WARNING, at, payload={"message": message})

    def record_event(
        self,
        run_id: str,
        kind: EventKind,
        at: float,
        *,
        task_run_id: int | None = None,
        attempt: int | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Append an event that changes no state (see the port)."""
        with self._tx() as conn:
            self._lock_run(conn, run_id)
            self._event(
                conn, run_id, kind, at, task_run_id=task_run_id, attempt=attempt, payload=payload
            )

    def record_approval(self, approval: Approval) -> None:
        """Record a decision on an approval node, once, with its event."""
        with self._tx() as conn:
            self._lock_run(conn, approval.run_id)
            done = conn.execute(
                sa.select(approvals.c.decision, approvals.c.by).where(
                    approvals.c.task_run_id == approval.task_run_id
                )
            ).first()
            if done is not None:
                raise RunStateError(
                    f"node {approval.node_id!r} of run {approval.run_id} was already "
                    f"{done.decision} by {done.by}"
                )
            conn.execute(
                approvals.insert().values(
                    run_id=approval.run_id,
                    task_run_id=approval.task_run_id,
                    decision=approval.decision,
                    by=approval.by,
                    reason=approval.reason,
                    at=approval.at,
                )
            )
            self._event(
                conn,
                approval.run_id,
                EventKind.APPROVAL_DECIDED,
                approval.at,
                task_run_id=approval.task_run_id,
                payload={
                    "decision": approval.decision,
                    "by": approval.by,
                    "reason": approval.reason,
                },
            )

    def close(self) -> None:
        """Close the writer connections and dispose of both pools."""
        if self._syncer is not None:
            self._syncer.close()
        with self._lock:
            writers, self._open_writers = self._open_writers, []
        for conn in writers:
            conn.close()
        self._writer.dispose()
        self._reader.dispose()

    # --- writes ---------------------------------------------------------------

    def create_run(self, new: NewRun) -> list[TaskRunRecord]:
        """Record the run, its pipeline version and a pending task run per node."""
        try:
            return self._create_run(new)
        except sa.exc.IntegrityError as exc:
            existing = self._run_for_trigger(new) if new.trigger_key else None
            if existing is None:
                raise MetadataError(
                    f"recording run {new.run_id} of {new.pipeline!r} failed: {exc.orig}"
                ) from exc
            raise RunExistsError(
                f"{new.trigger_key} of pipeline {new.pipeline!r} already has run {existing}",
                run_id=existing,
            ) from None

    def _run_for_trigger(self, new: NewRun) -> str | None:
        with self._read() as conn:
            return conn.execute(
                sa.select(runs.c.id)
                .join(pipelines, runs.c.pipeline_id == pipelines.c.id)
                .where(pipelines.c.name == new.pipeline, runs.c.trigger_key == new.trigger_key)
            ).scalar()

    def _create_run(self, new: NewRun) -> list[TaskRunRecord]:
        with self._tx() as conn:
            conn.execute(
                self._insert_ignore(pipelines).values(name=new.pipeline, created_at=new.created_at)
            )
            pipeline_id = conn.execute(
                sa.select(pipelines.c.id).where(pipelines.c.name == new.pipeline)
            ).scalar_one()
            conn.execute(
                self._insert_ignore(pipeline_versions).values(
                    pipeline_id=pipeline_id,
                    version=new.pipeline_version,
                    graph=dict(new.graph),
                    created_at=new.created_at,
                )
            )
            version_id = conn.execute(
                sa.select(pipeline_versions.c.id).where(
                    pipeline_versions.c.pipeline_id == pipeline_id,
                    pipeline_versions.c.version == new.pipeline_version,
                )
            ).scalar_one()
            conn.execute(
                runs.insert().values(
                    id=new.run_id,
                    pipeline_id=pipeline_id,
                    pipeline_version_id=version_id,
                    status=new.status.value,
                    params=dict(new.params),
                    trigger=new.trigger,
                    trigger_key=new.trigger_key,
                    logical_date=new.logical_date,
                    git_sha=new.git_sha,
                    git_dirty=new.git_dirty,
                    pipeline_ref=new.pipeline_ref,
                    created_at=new.created_at,
                )
            )
            if new.versions:
                conn.execute(
                    run_versions.insert(),
                    [
                        {
                            "run_id": new.run_id,
                            "kind": v.kind,
                            "name": v.name,
                            "version": v.version,
                            "sha256": v.ref.sha256,
                            "requested": v.requested,
                        }
                        for v in new.versions
                    ],
                )
            if new.nodes:
                conn.execute(
                    task_runs.insert(),
                    [
                        {
                            "run_id": new.run_id,
                            "node_id": node_id,
                            "map_index": WHOLE_NODE,
                            "task_name": task_name,
                            "state": TaskState.PENDING.value,
                            "attempts": 0,
                        }
                        for node_id, task_name in new.nodes
                    ],
                )
            self._event(
                conn,
                new.run_id,
                EventKind.RUN_CREATED,
                new.created_at,
                payload={
                    "trigger": new.trigger,
                    "pipeline_version": new.pipeline_version,
                    **({"actor": new.actor} if new.actor else {}),
                },
            )
            rows = conn.execute(
                sa.select(task_runs)
                .where(task_runs.c.run_id == new.run_id)
                .order_by(task_runs.c.id)
            ).all()
        return [records.task_run_record(row) for row in rows]

    def set_run_state(
        self, run_id: str, state: RunState, at: float, *, error: str | None = None
    ) -> None:
        """Move the run to `state`; stamps started_at once and finished_at when terminal."""
        values: dict[str, Any] = {"status": state.value, "error": error}
        if state is RunState.RUNNING:
            values["started_at"] = sa.func.coalesce(runs.c.started_at, at)
            values["finished_at"] = None
            values["heartbeat_at"] = at
        elif state.terminal:
            values["finished_at"] = at
        with self._tx() as conn:
            result = conn.execute(runs.update().where(runs.c.id == run_id).values(**values))
            if result.rowcount == 0:
                raise RunNotFoundError(f"no run {run_id!r}")
            payload = {"error": error} if error else {}
            self._event(conn, run_id, EventKind.for_run(state), at, payload=payload)

    def heartbeat(self, run_id: str, at: float) -> None:
        """Stamp the run's heartbeat."""
        with self._tx() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(heartbeat_at=at))

    def expand_map(
        self, run_id: str, node_id: str, task_name: str, count: int, at: float
    ) -> list[TaskRunRecord]:
        """Create `count` item task runs for a map node once; return them all."""
        item = (task_runs.c.run_id == run_id) & (task_runs.c.node_id == node_id)
        with self._tx() as conn:
            self._lock_run(conn, run_id)
            existing = conn.execute(
                sa.select(sa.func.count()).where(item, task_runs.c.map_index >= 0)
            ).scalar_one()
            if existing == 0 and count > 0:
                conn.execute(
                    task_runs.insert(),
                    [
                        {
                            "run_id": run_id,
                            "node_id": node_id,
                            "map_index": index,
                            "task_name": task_name,
                            "state": TaskState.PENDING.value,
                            "attempts": 0,
                        }
                        for index in range(count)
                    ],
                )
                parent = conn.execute(
                    sa.select(task_runs.c.id).where(item, task_runs.c.map_index == WHOLE_NODE)
                ).scalar_one()
                self._event(
                    conn,
                    run_id,
                    EventKind.MAP_EXPANDED,
                    at,
                    task_run_id=parent,
                    payload={"items": count},
                )
            rows = conn.execute(
                sa.select(task_runs)
                .where(item, task_runs.c.map_index >= 0)
                .order_by(task_runs.c.map_index)
            ).all()
        return [records.task_run_record(row) for row in rows]

    def commit(self, run_id: str, batch: WriteBatch) -> None:
        """Apply the coordinator's batch in one transaction, or nothing of it."""
        if not batch:
            return
        # Registrations, alias moves, gate decisions and named versions are acknowledged
        # to users as they commit: they are fsynced before this returns.
        group_sync = self._syncer is not None and batch_writes.transitions_only(batch)
        try:
            with self._tx(group_sync=group_sync) as conn:
                batch_writes.apply(conn, self._st, run_id, batch)
            if group_sync:
                assert self._syncer is not None
                self._syncer.deferred()
        except batch_writes.Fenced as exc:
            raise FencedError(
                f"run {run_id}: {exc}. Another coordinator has taken the run over (it was "
                "resumed elsewhere); this process stops driving it and nothing of its last "
                "batch was written."
            ) from None

    def resume_run(
        self, run_id: str, *, by: str, at: float, stale_before: float, queue: bool = False
    ) -> list[TaskRunRecord]:
        """Reset what did not commit and take the run over (see the port)."""
        done = [TaskState.SUCCEEDED.value, TaskState.CACHED.value]
        open_attempts = [AttemptState.QUEUED.value, AttemptState.RUNNING.value]
        with self._tx() as conn:
            self._lock_run(conn, run_id)
            row = conn.execute(
                sa.select(runs.c.status, runs.c.heartbeat_at, runs.c.created_at).where(
                    runs.c.id == run_id
                )
            ).first()
            if row is None:
                raise RunNotFoundError(f"no run {run_id!r}; `lockgate runs` lists runs")
            status = RunState(row.status)
            if status is RunState.SUCCEEDED:
                raise RunStateError(
                    f"run {run_id} already succeeded: nothing to resume. Start a new run."
                )
            last = row.heartbeat_at if row.heartbeat_at is not None else row.created_at
            if status in (RunState.RUNNING, RunState.QUEUED) and last >= stale_before:
                raise RunStateError(
                    f"run {run_id} is {status.value} and its coordinator's last heartbeat was "
                    f"{max(0.0, at - last):.0f} s ago: it is still being driven. Cancel it "
                    "(`lockgate cancel`) or wait until its heartbeat is stale."
                )
            reset = conn.execute(
                sa.select(task_runs.c.id, task_runs.c.state, task_runs.c.attempts).where(
                    task_runs.c.run_id == run_id, task_runs.c.state.not_in(done)
                )
            ).all()
            ids = [r.id for r in reset]
            conn.execute(pool_leases.delete().where(pool_leases.c.run_id == run_id))
            if ids:
                conn.execute(
                    attempts.update()
                    .where(attempts.c.task_run_id.in_(ids), attempts.c.state.in_(open_attempts))
                    .values(
                        state=AttemptState.FAILED.value,
                        finished_at=at,
                        error_type="lockgate.Orphaned",
                        error_message=(
                            "the coordinator stopped before this attempt finished; "
                            f"the run was resumed by {by}"
                        ),
                        error_user=False,
                    )
                )
                conn.execute(
                    task_runs.update()
                    .where(task_runs.c.id.in_(ids))
                    .values(
                        state=TaskState.PENDING.value,
                        queued_at=None,
                        started_at=None,
                        finished_at=None,
                        retry_at=None,
                        error=None,
                    )
                )
                eventlog.append(
                    conn,
                    self._st,
                    run_id,
                    [
                        records.event_row(
                            run_id,
                            EventKind.TASK_RESET,
                            at,
                            r.id,
                            r.attempts or None,
                            {"previous_state": r.state},
                        )
                        for r in reset
                    ],
                )
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    status=(RunState.QUEUED if queue else RunState.RUNNING).value,
                    heartbeat_at=at,
                    finished_at=None,
                    error=None,
                    cancel_requested_at=None,
                    # Queued again: whichever server claims it next drives it.
                    **({"claimed_by": None} if queue else {}),
                )
            )
            self._event(
                conn,
                run_id,
                EventKind.RUN_RESUMED,
                at,
                payload={"by": by, "previous_status": status.value},
            )
            rows = conn.execute(self._task_runs_query(run_id)).all()
        return [records.task_run_record(r) for r in rows]

    def request_cancel(self, run_id: str, *, by: str, at: float) -> RunRecord:
        """Flag the run for cancellation; its coordinator acts on it between steps."""
        with self._tx() as conn:
            self._lock_run(conn, run_id)
            status = conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if status is None:
                raise RunNotFoundError(f"no run {run_id!r}; `lockgate runs` lists runs")
            if RunState(status).terminal:
                raise RunStateError(f"run {run_id} already ended ({status}); nothing to cancel")
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.cancel_requested_at.is_(None))
                .values(cancel_requested_at=at)
            )
            self._event(conn, run_id, EventKind.RUN_CANCEL_REQUESTED, at, payload={"by": by})
        return self.get_run(run_id)

    def cancel_requested(self, run_id: str) -> bool:
        """True once the run has a cancel request."""
        with self._read() as conn:
            at = conn.execute(
                sa.select(runs.c.cancel_requested_at).where(runs.c.id == run_id)
            ).scalar()
        return at is not None

    def set_task_state(
        self,
        run_id: str,
        task_run_ids: Sequence[int],
        state: TaskState,
        at: float,
        *,
        reason: str | None = None,
    ) -> None:
        """Move non-terminal task runs to `state`, one event each."""
        if not task_run_ids:
            return
        with self._tx() as conn:
            self._lock_run(conn, run_id)
            open_ids = conn.execute(
                sa.select(task_runs.c.id, task_runs.c.attempts).where(
                    task_runs.c.id.in_(list(task_run_ids)), task_runs.c.state.not_in(_TERMINAL)
                )
            ).all()
            if not open_ids:
                return
            values: dict[str, Any] = {"state": state.value}
            if state.terminal:
                values["finished_at"] = at
            if state is TaskState.RUNNING:
                values["started_at"] = at
            if reason is not None and state in (TaskState.FAILED, TaskState.SKIPPED):
                values["error"] = reason
            conn.execute(
                task_runs.update()
                .where(task_runs.c.id.in_([r.id for r in open_ids]))
                .values(**values)
            )
            payload = {"reason": reason} if reason else {}
            kind = EventKind.for_task(state)
            eventlog.append(
                conn,
                self._st,
                run_id,
                [
                    records.event_row(run_id, kind, at, row.id, row.attempts or None, payload)
                    for row in open_ids
                ],
            )

    def add_artifact(self, record: ArtifactRecord) -> None:
        """Record an artifact (no-op if its hash is already known)."""
        with self._tx() as conn:
            conn.execute(self._insert_ignore(artifacts).values(**records.artifact_row(record)))
