"""The audit log (`lockgate audit` over HTTP); reading it needs an `admin` token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lockgate.server.problems import ERRORS
from lockgate.server.routes import State
from lockgate.server.schemas import AuditRow
from lockgate.service.audit import MAX_LIMIT, audit_view, list_audit

router = APIRouter(tags=["audit"], responses=ERRORS)


@router.get("/audit", response_model=list[AuditRow])
def audit_log(
    state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    token: Annotated[
        str | None, Query(max_length=100, description="only this token's entries")
    ] = None,
) -> Any:
    """The newest audit entries, newest first: state-changing requests and token changes."""
    return [audit_view(e) for e in list_audit(state.workspace, limit=limit, token=token)]
