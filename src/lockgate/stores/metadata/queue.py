"""The run queue, pool slots and API tokens, as a base class of `SqlMetadataStore`.

Claims are safe with several servers on one database: on PostgreSQL the
queued rows are read `FOR NO KEY UPDATE SKIP LOCKED` (two claimers never see
the same run), and the rows of the limited pipelines (or the pool) are locked,
in id order so that claimers cannot deadlock, before their running runs (or
held slots) are counted; READ COMMITTED then shows each claimer the claims
committed before it got the lock. On SQLite the write transaction
(`BEGIN IMMEDIATE`) already serialises writers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from lockgate.errors import UsageError
from lockgate.model.states import RunState
from lockgate.ports.metadata import AuditEntry, RunRecord, TokenRecord
from lockgate.stores.metadata import records
from lockgate.stores.metadata.audit import write_audit
from lockgate.stores.metadata.schema import (
    pipeline_versions,
    pipelines,
    pool_leases,
    pools,
    runs,
    tokens,
)
from lockgate.stores.metadata.statements import insert_ignore

_RUNNING = RunState.RUNNING.value


class QueueMethods:
    """Writes and reads `lockgate server` needs beyond running one run."""

    _dialect: str

    def _tx(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _read(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _locking(self, query: Any, **lock: Any) -> Any:
        # NO KEY UPDATE: the lock must not block inserts that reference the row.
        if self._dialect == "postgresql":
            return query.with_for_update(key_share=True, **lock)
        return query

    # --- the run queue ------------------------------------------------------------

    def claim_queued(
        self, *, limits: Mapping[str, int], claimer: str, at: float, max_runs: int
    ) -> list[RunRecord]:
        """Claim queued runs, oldest first, within each pipeline's max_active_runs."""
        if max_runs <= 0:
            return []
        claimed: list[str] = []
        with self._tx() as conn:
            # Count first, so a pipeline at its limit with a long queue (a big
            # backfill) cannot fill the candidate window and starve the others.
            active: dict[int, int] = {}
            full: list[int] = []
            if limits:
                limited = conn.execute(
                    self._locking(
                        # Locked in id order: two servers never both see room, nor deadlock.
                        sa.select(pipelines.c.id, pipelines.c.name)
                        .where(pipelines.c.name.in_(sorted(limits)))
                        .order_by(pipelines.c.id)
                    )
                ).all()
                active = {pipeline_id: 0 for pipeline_id, _ in limited}
                if active:
                    counted = conn.execute(
                        sa.select(runs.c.pipeline_id, sa.func.count())
                        .where(runs.c.pipeline_id.in_(active), runs.c.status == _RUNNING)
                        .group_by(runs.c.pipeline_id)
                    ).all()
                    active.update({pipeline_id: n for pipeline_id, n in counted})
                full = [pid for pid, name in limited if active[pid] >= limits[name]]
            query = (
                sa.select(runs.c.id, runs.c.pipeline_id, pipelines.c.name)
                .join(pipelines, runs.c.pipeline_id == pipelines.c.id)
                .where(runs.c.status == RunState.QUEUED.value)
                .order_by(runs.c.created_at, runs.c.id)
                .limit(max_runs * 4 + 10)
            )
            if full:
                query = query.where(runs.c.pipeline_id.not_in(full))
            candidates = conn.execute(self._locking(query, skip_locked=True, of=runs)).all()
            for run_id, pipeline_id, name in candidates:
                if len(claimed) >= max_runs:
                    break
                if pipeline_id in active and active[pipeline_id] >= limits[name]:
                    continue
                changed = conn.execute(
                    runs.update()
                    .where(runs.c.id == run_id, runs.c.status == RunState.QUEUED.value)
                    .values(status=_RUNNING, claimed_by=claimer, heartbeat_at=at)
                ).rowcount
                if changed:
                    claimed.append(run_id)
                    if pipeline_id in active:
                        active[pipeline_id] += 1
            found = conn.execute(
                sa.select(
                    runs,
                    pipelines.c.name.label("pipeline"),
                    pipeline_versions.c.version.label("pipeline_version"),
                )
                .join_from(runs, pipelines)
                .join(pipeline_versions, runs.c.pipeline_version_id == pipeline_versions.c.id)
                .where(runs.c.id.in_(claimed))
                .order_by(runs.c.created_at, runs.c.id)
            ).all()
        return [records.run_record(row) for row in found]

    def trigger_keys(self, pipeline: str, prefix: str) -> list[str]:
        """Trigger keys with this prefix among the pipeline's runs."""
        # Not LIKE: SQLite's LIKE ignores case, PostgreSQL's does not.
        starts = sa.func.substr(runs.c.trigger_key, 1, len(prefix)) == prefix
        with self._read() as conn:
            return list(
                conn.execute(
                    sa.select(runs.c.trigger_key)
                    .join(pipelines, runs.c.pipeline_id == pipelines.c.id)
                    .where(pipelines.c.name == pipeline, runs.c.trigger_key.is_not(None), starts)
                ).scalars()
            )

    def last_logical_date(self, pipeline: str) -> float | None:
        """The newest schedule tick the pipeline has a run for."""
        with self._read() as conn:
            return conn.execute(
                sa.select(sa.func.max(runs.c.logical_date))
                .join(pipelines, runs.c.pipeline_id == pipelines.c.id)
                .where(pipelines.c.name == pipeline)
            ).scalar()

    # --- pools ---------------------------------------------------------------------

    def acquire_slot(
        self,
        pool: str,
        slots: int,
        task_run_id: int,
        run_id: str,
        at: float,
        stale_before: float,
    ) -> bool:
        """Take a slot of `pool` if one is free (freeing those of dead runs first)."""
        with self._tx() as conn:
            # The pool row is the lock every coordinator counts leases under; the first
            # use creates it (two first uses at once: one inserts, the other waits).
            conn.execute(insert_ignore(self._dialect, pools).values(name=pool, slots=slots))
            exists = conn.execute(
                self._locking(sa.select(pools.c.slots).where(pools.c.name == pool))
            ).one()
            if exists.slots != slots:
                conn.execute(pools.update().where(pools.c.name == pool).values(slots=slots))
            held = conn.execute(
                sa.select(pool_leases.c.task_run_id).where(pool_leases.c.task_run_id == task_run_id)
            ).first()
            if held is not None:
                return True
            dead = sa.select(runs.c.id).where(
                sa.or_(
                    runs.c.status.not_in([_RUNNING, RunState.WAITING.value]),
                    runs.c.heartbeat_at < stale_before,
                )
            )
            conn.execute(
                pool_leases.delete().where(
                    pool_leases.c.pool == pool, pool_leases.c.run_id.in_(dead)
                )
            )
            used = conn.execute(
                sa.select(sa.func.count()).where(pool_leases.c.pool == pool)
            ).scalar_one()
            if used >= slots:
                return False
            conn.execute(
                pool_leases.insert().values(
                    pool=pool, task_run_id=task_run_id, run_id=run_id, acquired_at=at
                )
            )
        return True

    # --- tokens --------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        token_hash: str,
        scopes: Sequence[str],
        at: float,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        """Store a token hash under a unique name, and its audit entry with it."""
        try:
            with self._tx() as conn:
                conn.execute(
                    tokens.insert().values(
                        name=name, hash=token_hash, scopes=",".join(scopes), created_at=at
                    )
                )
                if audit is not None:
                    write_audit(conn, self._dialect, audit)
        except sa.exc.IntegrityError:
            if any(token.name == name for token in self.list_tokens()):
                raise UsageError(
                    f"an API token named {name!r} already exists (revoked ones keep their "
                    "name); choose another name"
                ) from None
            raise UsageError(
                f"this token is already stored under another name; generate a new one for {name!r}"
            ) from None

    def find_token(self, token_hash: str, at: float) -> TokenRecord | None:
        """The unrevoked token with this hash, or None; stamps its last use."""
        with self._tx() as conn:
            row = conn.execute(
                sa.select(tokens).where(tokens.c.hash == token_hash, tokens.c.revoked_at.is_(None))
            ).first()
            if row is None:
                return None
            conn.execute(tokens.update().where(tokens.c.id == row.id).values(last_used_at=at))
        return replace(_token(row), last_used_at=at)

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, newest first."""
        with self._read() as conn:
            rows = conn.execute(sa.select(tokens).order_by(tokens.c.id.desc())).all()
        return [_token(row) for row in rows]

    def revoke_token(self, name: str, at: float, *, audit: AuditEntry | None = None) -> bool:
        """Revoke a token by name; its audit entry commits with the revocation."""
        with self._tx() as conn:
            changed = conn.execute(
                tokens.update()
                .where(tokens.c.name == name, tokens.c.revoked_at.is_(None))
                .values(revoked_at=at)
            ).rowcount
            if changed and audit is not None:
                write_audit(conn, self._dialect, audit)
        return bool(changed)


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        scopes=tuple(s for s in row.scopes.split(",") if s),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )
