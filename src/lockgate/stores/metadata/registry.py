"""Named versions, the model registry, gate decisions and approvals, on SQL.

Functions here run inside the caller's transaction (`conn`), so a task's
result, the version its output creates, a gate's verdict and an alias move
commit together. A version is created once per (kind, name, content): the
same bytes return the existing version, so retries and re-runs never
duplicate one. Every alias move is appended to `alias_events`.

Numbering a version and moving an alias read then write; on PostgreSQL they
hold an advisory lock per (kind, name) (`lock_names`) so that two runs
registering the same model at once get versions n and n+1, not a unique
violation. On SQLite the write transaction already serialises them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from lockgate.errors import RegistryError
from lockgate.ports.metadata import (
    AliasEvent,
    AliasMove,
    Approval,
    GateDecision,
    Registration,
    ResolvedVersion,
    VersionRecord,
)
from lockgate.stores.metadata import records
from lockgate.stores.metadata.schema import (
    alias_events,
    aliases,
    approvals,
    artifact_versions,
    artifacts,
    gate_decisions,
    run_versions,
    task_runs,
)
from lockgate.stores.metadata.statements import advisory_lock

_av = artifact_versions.c


def lock_names(conn: sa.Connection, names: Iterable[tuple[str, str]]) -> None:
    """Serialise version and alias writes of these (kind, name)s until the transaction ends.

    Taken in sorted order, so two transactions locking several names cannot deadlock.
    """
    for kind, name in sorted(set(names)):
        advisory_lock(conn, f"lockgate.registry:{kind}:{name}")


def _versions_query() -> sa.Select[Any]:
    return sa.select(
        artifact_versions,
        task_runs.c.node_id,
        artifacts.c.serializer.label("a_serializer"),
        artifacts.c.size.label("a_size"),
        artifacts.c.type_name.label("a_type_name"),
        artifacts.c.length.label("a_length"),
        artifacts.c.inline.label("a_inline"),
    ).select_from(
        artifact_versions.join(artifacts, _av.sha256 == artifacts.c.sha256).join(
            task_runs, _av.task_run_id == task_runs.c.id, isouter=True
        )
    )


def _aliases_of(conn: sa.Connection, kind: str, name: str) -> dict[int, tuple[str, ...]]:
    found: dict[int, list[str]] = {}
    for alias, version in conn.execute(
        sa.select(aliases.c.alias, aliases.c.version).where(
            aliases.c.kind == kind, aliases.c.name == name
        )
    ):
        found.setdefault(version, []).append(alias)
    return {version: tuple(sorted(names)) for version, names in found.items()}


def _record(row: Any, alias_map: Mapping[int, tuple[str, ...]]) -> VersionRecord:
    return VersionRecord(
        kind=row.kind,
        name=row.name,
        version=row.version,
        ref=records.ref_from(row, row.sha256),
        created_at=row.created_at,
        run_id=row.run_id,
        node_id=row.node_id,
        metadata=row.metadata or {},
        gated=row.gated,
        aliases=alias_map.get(row.version, ()),
    )


def resolve(conn: sa.Connection, kind: str, name: str, version: int | None) -> VersionRecord | None:
    """Version `version` of kind:name, or the latest when None."""
    query = _versions_query().where(_av.kind == kind, _av.name == name)
    if version is None:
        query = query.order_by(_av.version.desc()).limit(1)
    else:
        query = query.where(_av.version == version)
    row = conn.execute(query).first()
    return None if row is None else _record(row, _aliases_of(conn, kind, name))


def version_of(conn: sa.Connection, kind: str, name: str, sha256: str) -> VersionRecord | None:
    """The version of kind:name whose content is `sha256`."""
    row = conn.execute(
        _versions_query().where(_av.kind == kind, _av.name == name, _av.sha256 == sha256)
    ).first()
    return None if row is None else _record(row, _aliases_of(conn, kind, name))


def list_versions(
    conn: sa.Connection, kind: str, name: str | None, limit: int
) -> list[VersionRecord]:
    """Versions newest first."""
    query = _versions_query().where(_av.kind == kind)
    if name is not None:
        query = query.where(_av.name == name)
    query = query.order_by(_av.created_at.desc(), _av.version.desc()).limit(limit)
    rows = conn.execute(query).all()
    maps: dict[str, dict[int, tuple[str, ...]]] = {}
    result = []
    for row in rows:
        if row.name not in maps:
            maps[row.name] = _aliases_of(conn, kind, row.name)
        result.append(_record(row, maps[row.name]))
    return result


def create_version(
    conn: sa.Connection,
    *,
    kind: str,
    name: str,
    sha256: str,
    run_id: str | None,
    task_run_id: int | None,
    metadata: Mapping[str, Any] | None,
    gated: bool | None,
    at: float,
) -> tuple[int, bool]:
    """The version of this content, created if new; returns (version, created).

    An existing version keeps its number; registering it again through a
    passing gate marks it gated and records the new scores.
    """
    lock_names(conn, [(kind, name)])
    existing = conn.execute(
        sa.select(_av.id, _av.version, _av.gated).where(
            _av.kind == kind, _av.name == name, _av.sha256 == sha256
        )
    ).first()
    if existing is not None:
        if gated and not existing.gated:
            conn.execute(
                artifact_versions.update()
                .where(_av.id == existing.id)
                .values(gated=True, metadata=dict(metadata or {}))
            )
        return existing.version, False
    latest = conn.execute(
        sa.select(sa.func.max(_av.version)).where(_av.kind == kind, _av.name == name)
    ).scalar()
    version = (latest or 0) + 1
    conn.execute(
        artifact_versions.insert().values(
            kind=kind,
            name=name,
            version=version,
            sha256=sha256,
            run_id=run_id,
            task_run_id=task_run_id,
            metadata=dict(metadata or {}),
            gated=gated,
            created_at=at,
        )
    )
    return version, True


def register(
    conn: sa.Connection, run_id: str, item: Registration, at: float
) -> tuple[dict[str, Any], int]:
    """Record a model version from a `register` node; return (event payload, version)."""
    version, created = create_version(
        conn,
        kind="model",
        name=item.name,
        sha256=item.sha256,
        run_id=run_id,
        task_run_id=item.task_run_id,
        metadata=item.metadata,
        gated=item.gated,
        at=at,
    )
    payload = {"name": item.name, "version": version, "created": created, "gated": item.gated}
    return payload, version


def move_alias(conn: sa.Connection, move: AliasMove, at: float) -> tuple[int, int | None]:
    """Point the alias at its version and log it; return (version, previous version).

    Raises:
        RegistryError: no such model, version or content.
    """
    lock_names(conn, [(move.kind, move.name)])
    if move.version is not None:
        target = resolve(conn, move.kind, move.name, move.version)
    elif move.sha256 is not None:
        target = version_of(conn, move.kind, move.name, move.sha256)
    else:
        target = None
    if target is None:
        what = f"version {move.version}" if move.version is not None else "this artifact"
        raise RegistryError(
            f"{move.kind} {move.name!r} has no {what}; `lockgate models list {move.name}` shows "
            "its versions"
        )
    previous = conn.execute(
        sa.select(aliases.c.version).where(
            aliases.c.kind == move.kind, aliases.c.name == move.name, aliases.c.alias == move.alias
        )
    ).scalar()
    if previous is None:
        conn.execute(
            aliases.insert().values(
                kind=move.kind,
                name=move.name,
                alias=move.alias,
                version=target.version,
                updated_at=at,
            )
        )
    else:
        conn.execute(
            aliases.update()
            .where(
                aliases.c.kind == move.kind,
                aliases.c.name == move.name,
                aliases.c.alias == move.alias,
            )
            .values(version=target.version, updated_at=at)
        )
    conn.execute(
        alias_events.insert().values(
            kind=move.kind,
            name=move.name,
            alias=move.alias,
            version=target.version,
            previous_version=previous,
            action=move.action,
            actor=move.actor,
            run_id=move.run_id,
            reason=move.reason,
            forced=move.forced,
            at=at,
        )
    )
    return target.version, previous


def alias_history(conn: sa.Connection, kind: str, name: str, alias: str | None) -> list[AliasEvent]:
    """The audit log, oldest first."""
    query = sa.select(alias_events).where(alias_events.c.kind == kind, alias_events.c.name == name)
    if alias is not None:
        query = query.where(alias_events.c.alias == alias)
    return [
        AliasEvent(
            id=row.id,
            kind=row.kind,
            name=row.name,
            alias=row.alias,
            version=row.version,
            previous_version=row.previous_version,
            action=row.action,
            actor=row.actor,
            reason=row.reason,
            forced=row.forced,
            at=row.at,
            run_id=row.run_id,
        )
        for row in conn.execute(query.order_by(alias_events.c.id))
    ]


def decision_rows(run_id: str, decisions: list[GateDecision], at: float) -> list[dict[str, Any]]:
    """`gate_decisions` rows for insert."""
    return [
        {
            "run_id": run_id,
            "task_run_id": d.task_run_id,
            "metric": d.metric,
            "value": d.value,
            "op": d.op,
            "threshold": d.threshold,
            "expression": d.expression,
            "baseline_alias": d.baseline_alias,
            "baseline_version": d.baseline_version,
            "baseline_value": d.baseline_value,
            "passed": d.passed,
            "reason": d.reason,
            "at": at,
        }
        for d in decisions
    ]


def read_decisions(conn: sa.Connection, run_id: str) -> list[GateDecision]:
    """Gate checks decided in the run, in order."""
    query = (
        sa.select(gate_decisions, task_runs.c.node_id)
        .join(task_runs, gate_decisions.c.task_run_id == task_runs.c.id)
        .where(gate_decisions.c.run_id == run_id)
        .order_by(gate_decisions.c.id)
    )
    return [
        GateDecision(
            task_run_id=row.task_run_id,
            metric=row.metric,
            op=row.op,
            expression=row.expression,
            passed=row.passed,
            reason=row.reason or "",
            value=row.value,
            threshold=row.threshold,
            baseline_alias=row.baseline_alias,
            baseline_version=row.baseline_version,
            baseline_value=row.baseline_value,
            node_id=row.node_id,
            at=row.at,
        )
        for row in conn.execute(query)
    ]


def read_run_versions(conn: sa.Connection, run_id: str) -> list[ResolvedVersion]:
    """The named versions resolved for the run."""
    query = (
        sa.select(run_versions, *records.ARTIFACT_REF_COLUMNS)
        .join(artifacts, run_versions.c.sha256 == artifacts.c.sha256)
        .where(run_versions.c.run_id == run_id)
        .order_by(run_versions.c.id)
    )
    return [
        ResolvedVersion(
            kind=row.kind,
            name=row.name,
            requested=row.requested,
            version=row.version,
            ref=records.ref_from(row, row.sha256),
        )
        for row in conn.execute(query)
    ]


def read_approvals(conn: sa.Connection, run_id: str) -> list[Approval]:
    """Decisions on the run's approval nodes."""
    query = (
        sa.select(approvals, task_runs.c.node_id)
        .join(task_runs, approvals.c.task_run_id == task_runs.c.id)
        .where(approvals.c.run_id == run_id)
        .order_by(approvals.c.id)
    )
    return [
        Approval(
            run_id=row.run_id,
            task_run_id=row.task_run_id,
            node_id=row.node_id,
            decision=row.decision,
            by=row.by,
            reason=row.reason,
            at=row.at,
        )
        for row in conn.execute(query)
    ]
