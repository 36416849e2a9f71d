"""Routes of the model gateway: list and show them (read), shift and roll them back (admin).

A change made here is recorded with the token as who made it
(`api:<token name>`); route errors map to 404 (no such route), 409 (changed
meanwhile, nothing to roll back) and 422 (bad weights or targets).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from lockgate.server.problems import ERRORS
from lockgate.server.routes import State, Who
from lockgate.server.schemas import Route, RouteDetail, RouteRollbackBody, ShiftBody
from lockgate.service import routes

router = APIRouter(tags=["routes"], responses=ERRORS)


@router.get("/routes", response_model=list[Route])
def list_routes(state: State) -> Any:
    """Every route with its weighted targets and mirror, by name."""
    return [routes.route_view(r) for r in routes.list_routes(state.workspace)]


@router.get("/routes/{name}", response_model=RouteDetail)
def get_route(name: str, state: State, limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> Any:
    """A route's state and its recorded changes, newest first."""
    route = routes.get_route(state.workspace, name)
    changes = routes.route_history(state.workspace, name, limit=limit)
    return {"route": routes.route_view(route), "changes": [routes.change_view(c) for c in changes]}


@router.post("/routes/{name}/shift", response_model=Route)
def shift_route(name: str, body: ShiftBody, state: State, who: Who) -> Any:
    """Set the weights of the named targets; the route's other targets share the rest."""
    changed = routes.shift_route(
        state.workspace,
        name,
        body.weights,
        by=who.actor,
        reason=body.reason,
        expected_version=body.expected_version,
    )
    return routes.route_view(changed)


@router.post("/routes/{name}/rollback", response_model=Route)
def rollback_route(name: str, body: RouteRollbackBody, state: State, who: Who) -> Any:
    """Restore the state the route had before its last change (atomically)."""
    changed = routes.rollback_route(
        state.workspace,
        name,
        by=who.actor,
        reason=body.reason,
        expected_version=body.expected_version,
    )
    return routes.route_view(changed)
