"""The API's routers, one module per resource, and what their handlers share.

Handlers are synchronous (the stores are): FastAPI runs them in its thread
pool. They raise lockgate errors; `lockgate.server.problems` maps those to
statuses in the API's one error shape.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from lockgate.server.auth import Caller
from lockgate.server.state import ServerState


def server_state(request: Request) -> ServerState:
    """The serving server's state (set on the app by `create_app`)."""
    state: ServerState = request.app.state.server
    return state


def caller(request: Request) -> Caller:
    """Who is calling (the guard set it; routes under /api/ always have one)."""
    found: Caller | None = getattr(request.state, "caller", None)
    return found or Caller("anonymous", (), "none")


State = Annotated[ServerState, Depends(server_state)]
Who = Annotated[Caller, Depends(caller)]
