"""Routes, their change log, gateway samples and feedback, as a base class of `SqlMetadataStore`.

Route changes are serialized per route: the transaction first takes an
advisory lock on the route's name on PostgreSQL (a route being created has no
row to lock yet), then reads the row `FOR UPDATE`; on SQLite the writer's
`BEGIN IMMEDIATE` already serializes the whole database. The new state and
its `route_changes` row (with the state it replaced) commit together, so two
writers never lose an update and the log's versions are consecutive.

Samples are appended in one transaction per batch. Feedback is appended too;
reading samples merges each request's feedback (the newest per metric) into
its scores.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from lockgate.errors import RouteConflictError, RouteNotFoundError, RouteStateError
from lockgate.ports.routes import (
    Feedback,
    GatewaySample,
    RouteChange,
    RouteRecord,
    RouteTarget,
    route_state,
    targets_of,
)
from lockgate.stores.metadata.schema import gateway_samples, route_changes, route_feedback, routes
from lockgate.stores.metadata.statements import advisory_lock

_rc = route_changes.c
_gs = gateway_samples.c
_fb = route_feedback.c


class RouteMethods:
    """Writes and reads of routes and the gateway's samples (see the port for each contract)."""

    _dialect: str

    def _tx(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    def _read(self) -> contextlib.AbstractContextManager[sa.Connection]:
        raise NotImplementedError

    # --- routes ---------------------------------------------------------------------

    def get_route(self, name: str) -> RouteRecord:
        """The route's current state (RouteNotFoundError when there is none)."""
        with self._read() as conn:
            row = conn.execute(sa.select(routes).where(routes.c.name == name)).first()
            if row is None:
                known = conn.execute(sa.select(routes.c.name).order_by(routes.c.name)).scalars()
                raise _not_found(name, list(known))
        return _route(row)

    def list_routes(self) -> list[RouteRecord]:
        """Every route, by name."""
        with self._read() as conn:
            return [_route(r) for r in conn.execute(sa.select(routes).order_by(routes.c.name))]

    def change_route(
        self,
        name: str,
        *,
        targets: Sequence[RouteTarget],
        mirror: RouteTarget | None,
        action: str,
        by: str,
        at: float,
        reason: str | None = None,
        run_id: str | None = None,
        expected_version: int | None = None,
    ) -> RouteRecord:
        """Set the route's state (creating it), logging the change with the state it replaced."""
        with self._tx() as conn:
            current = _locked(conn, name)
            if expected_version is not None and (
                (0 if current is None else current.version) != expected_version
            ):
                raise _conflict(name, expected_version, current)
            return _write(
                conn,
                name,
                current,
                tuple(targets),
                mirror,
                action=action,
                by=by,
                at=at,
                reason=reason,
                run_id=run_id,
            )

    def rollback_route(
        self,
        name: str,
        *,
        by: str,
        at: float,
        reason: str | None = None,
        run_id: str | None = None,
        action: str = "rollback",
        expected_version: int | None = None,
    ) -> RouteRecord:
        """Restore the state the route's last change replaced, atomically."""
        with self._tx() as conn:
            current = _locked(conn, name)
            if current is None:
                known = conn.execute(sa.select(routes.c.name).order_by(routes.c.name)).scalars()
                raise _not_found(name, list(known))
            if expected_version is not None and current.version != expected_version:
                raise _conflict(name, expected_version, current)
            previous = conn.execute(
                sa.select(_rc.previous).where(_rc.route == name, _rc.version == current.version)
            ).scalar()
            if previous is None:
                raise RouteStateError(
                    f"route {name!r} has no earlier state to roll back to (it is at version "
                    f"{current.version}, as first set); change it with `lockgate routes set "
                    f"{name} ...` instead."
                )
            targets, mirror = targets_of(previous)
            return _write(
                conn,
                name,
                current,
                targets,
                mirror,
                action=action,
                by=by,
                at=at,
                reason=reason,
                run_id=run_id,
            )

    def route_changes(self, name: str, *, limit: int = 100) -> list[RouteChange]:
        """The route's changes, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(route_changes)
                .where(_rc.route == name)
                .order_by(_rc.version.desc())
                .limit(limit)
            ).all()
        return [_change(r) for r in rows]

    def run_route_changes(self, run_id: str) -> list[RouteChange]:
        """The route changes a run made, oldest first (the reliability record)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(route_changes).where(_rc.run_id == run_id).order_by(_rc.id)
            ).all()
        return [_change(r) for r in rows]

    # --- gateway samples and feedback ---------------------------------------------------

    def record_samples(self, samples: Sequence[GatewaySample]) -> None:
        """Append samples in one transaction (non-finite scores are dropped)."""
        if not samples:
            return
        rows = [
            {
                "route": s.route,
                "request_id": s.request_id,
                "target": s.target,
                "cohort": s.cohort,
                "route_version": s.route_version,
                "latency_s": s.latency_s,
                "error": s.error,
                "scores": _finite(s.scores),
                "at": s.at,
            }
            for s in samples
        ]
        with self._tx() as conn:
            conn.execute(gateway_samples.insert(), rows)

    def record_feedback(self, feedback: Feedback) -> None:
        """Append one live quality signal for a request."""
        with self._tx() as conn:
            conn.execute(
                route_feedback.insert().values(
                    route=feedback.route,
                    request_id=feedback.request_id,
                    metric=feedback.metric,
                    value=feedback.value,
                    at=feedback.at,
                )
            )

    def route_samples(
        self, route: str, *, since: float, until: float | None = None
    ) -> list[GatewaySample]:
        """The route's samples with `since <= at < until`, oldest first, feedback merged."""
        query = sa.select(gateway_samples).where(_gs.route == route, _gs.at >= since)
        if until is not None:
            query = query.where(_gs.at < until)
        with self._read() as conn:
            rows = conn.execute(query.order_by(_gs.at, _gs.id)).all()
            feedback: dict[str, dict[str, float]] = {}
            if rows:
                # Feedback may arrive after the window; what matters is the request's time.
                ids = conn.execute(
                    sa.select(_fb.request_id, _fb.metric, _fb.value)
                    .where(
                        _fb.route == route,
                        _fb.request_id.in_(
                            sa.select(_gs.request_id).where(
                                _gs.route == route,
                                _gs.at >= since,
                                *(() if until is None else (_gs.at < until,)),
                            )
                        ),
                    )
                    .order_by(_fb.id)
                )
                for request_id, metric, value in ids:
                    feedback.setdefault(request_id, {})[metric] = value
        return [_sample(r, feedback.get(r.request_id)) for r in rows]


# --- rows and messages ------------------------------------------------------------------


def _locked(conn: sa.Connection, name: str) -> Any:
    advisory_lock(conn, f"lockgate.route:{name}")
    query = sa.select(routes).where(routes.c.name == name)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def _write(
    conn: sa.Connection,
    name: str,
    current: Any,
    targets: tuple[RouteTarget, ...],
    mirror: RouteTarget | None,
    *,
    action: str,
    by: str,
    at: float,
    reason: str | None,
    run_id: str | None,
) -> RouteRecord:
    version = 1 if current is None else current.version + 1
    values = {
        "version": version,
        "targets": [t.as_dict() for t in targets],
        "mirror": None if mirror is None else mirror.as_dict(),
        "updated_at": at,
        "updated_by": by,
    }
    if current is None:
        conn.execute(routes.insert().values(name=name, **values))
    else:
        conn.execute(routes.update().where(routes.c.name == name).values(**values))
    conn.execute(
        route_changes.insert().values(
            route=name,
            version=version,
            action=action,
            by=by,
            reason=reason,
            run_id=run_id,
            previous=None if current is None else _route(current).state(),
            state=route_state(version, targets, mirror),
            at=at,
        )
    )
    return RouteRecord(name, version, targets, mirror, at, by)


def _route(row: Any) -> RouteRecord:
    targets, mirror = targets_of({"targets": row.targets, "mirror": row.mirror})
    return RouteRecord(row.name, row.version, targets, mirror, row.updated_at, row.updated_by)


def _change(row: Any) -> RouteChange:
    return RouteChange(
        id=row.id,
        route=row.route,
        version=row.version,
        action=row.action,
        by=row.by,
        reason=row.reason,
        run_id=row.run_id,
        previous=row.previous,
        state=row.state,
        at=row.at,
    )


def _sample(row: Any, feedback: Mapping[str, float] | None) -> GatewaySample:
    scores = {k: float(v) for k, v in (row.scores or {}).items() if v is not None}
    if feedback:
        scores.update(feedback)
    return GatewaySample(
        route=row.route,
        request_id=row.request_id,
        target=row.target,
        cohort=row.cohort,
        route_version=row.route_version,
        latency_s=row.latency_s,
        error=row.error,
        scores=scores,
        at=row.at,
    )


def _finite(scores: Mapping[str, float]) -> dict[str, float]:
    return {str(k): float(v) for k, v in scores.items() if math.isfinite(float(v))}


def _not_found(name: str, known: list[str]) -> RouteNotFoundError:
    hint = f"routes: {', '.join(known[:10])}" if known else "there are no routes yet"
    return RouteNotFoundError(
        f"no route named {name!r} ({hint}); create it with "
        f"`lockgate routes set {name} model:NAME@VERSION=100`."
    )


def _conflict(name: str, expected: int, current: Any) -> RouteConflictError:
    found = "absent" if current is None else f"at version {current.version}"
    return RouteConflictError(
        f"route {name!r} changed since it was read: expected version {expected}, found it "
        f"{found}; read it again (`lockgate routes show {name}`) and retry the change."
    )
