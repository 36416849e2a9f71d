"""Registered models (list, versions, audit log, promote, rollback) and run records.

Promote and rollback need an `admin` token; the audit log names the token
(`api:<token name>`) as the actor.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from lockgate.server.problems import ERRORS
from lockgate.server.routes import State, Who
from lockgate.server.schemas import (
    MAX_INT,
    AliasEvent,
    AliasMoved,
    ModelVersion,
    PromoteBody,
    Record,
    RollbackBody,
    Verification,
)
from lockgate.service import record, registry

router = APIRouter(tags=["models", "records"], responses=ERRORS)

Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/models", response_model=list[ModelVersion])
def list_models(
    state: State,
    name: Annotated[str | None, Query(max_length=128)] = None,
    limit: Limit = 100,
) -> Any:
    """Registered model versions (of one model with `name`), newest first."""
    found = registry.list_versions(state.workspace, "model", name, limit=limit)
    return [registry.version_view(v) for v in found]


@router.get("/models/{name}/versions/{version}", response_model=ModelVersion)
def get_model_version(
    name: str, version: Annotated[int, Path(ge=1, le=MAX_INT)], state: State
) -> Any:
    """One version of a model: where it came from, its aliases, whether it passed a gate."""
    return registry.version_view(registry.get_version(state.workspace, "model", name, version))


@router.get("/models/{name}/audit", response_model=list[AliasEvent])
def model_audit(
    name: str, state: State, alias: Annotated[str | None, Query(max_length=100)] = None
) -> Any:
    """Every move of the model's aliases (promote, rollback), oldest first."""
    registry.get_version(state.workspace, "model", name)  # 404 for an unknown model
    events = state.workspace.metadata.alias_events("model", name, alias)
    return [registry.alias_event_view(e) for e in events]


@router.post("/models/{name}/promote", response_model=AliasMoved)
def promote(name: str, body: PromoteBody, state: State, who: Who) -> Any:
    """Point an alias at a version that passed a gate (or `force` it, with a reason)."""
    previous = registry.promote(
        state.workspace,
        name,
        body.version,
        body.alias,
        actor=who.actor,
        reason=body.reason,
        force=body.force,
    )
    return {
        "name": name,
        "alias": body.alias,
        "previous_version": previous,
        "version": body.version,
    }


@router.post("/models/{name}/rollback", response_model=AliasMoved)
def rollback(name: str, body: RollbackBody, state: State, who: Who) -> Any:
    """Move an alias back to where it pointed before its last move."""
    before, now = registry.rollback(
        state.workspace, name, body.alias, actor=who.actor, reason=body.reason
    )
    return {"name": name, "alias": body.alias, "previous_version": before, "version": now}


@router.get("/runs/{run_id}/record", response_model=Record, response_model_by_alias=True)
def run_record(run_id: str, state: State) -> Any:
    """The run's reliability record (docs/record.md), assembled from stored rows."""
    return record.build(state.workspace, run_id)


@router.get("/runs/{run_id}/record/verify", response_model=Verification)
def verify_record(run_id: str, state: State) -> Any:
    """Recompute the run's event hash chain: edited, inserted or removed events."""
    return record.verify(state.workspace, state.workspace.metadata.get_run(run_id).id)
