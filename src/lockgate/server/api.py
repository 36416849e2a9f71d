"""The HTTP API of `lockgate server` (FastAPI): the app and what it is made of.

    GET  /healthz                  liveness, no token
    GET  /metrics                  Prometheus text (lockgate.server.metrics)
    /api/v1/...                    the REST API (lockgate.server.routes.*)
    GET  /api/v1/openapi.json      its OpenAPI document
    GET  /api/v1/audit             the audit log (admin)
    /                              the web UI (lockgate.server.ui)

The guard (`lockgate.server.auth.Guard`, ASGI middleware) checks the Host
header, the token and its scope, and body limits before any handler runs;
around it, the audit trail (`lockgate.server.audit.AuditTrail`) records every
state-changing request, refused or not. `lockgate.server.problems` gives
every error one JSON shape.
docs/observability.md documents the endpoints.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from lockgate.server import metrics, problems
from lockgate.server.audit import AuditTrail
from lockgate.server.auth import Guard
from lockgate.server.routes import (
    State,
    artifacts,
    audit,
    logs,
    pipelines,
    registry,
    runs,
    stats,
    traffic,
)
from lockgate.server.state import ServerState
from lockgate.server.ui import mount_ui

#: Threads serving synchronous endpoints. Each keeps a database connection, so
#: this bounds what one server takes from the pool (SQLAlchemy's default 5 + 10).
API_THREADS = 8
PREFIX = "/api/v1"


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS
    yield


def create_app(state: ServerState) -> FastAPI:
    """The app serving `state`'s workspace and pipelines: API, metrics and UI."""
    app = FastAPI(
        lifespan=_lifespan,
        title="lockgate",
        version="1",
        description="Trigger, inspect and follow lockgate runs; browse artifacts, "
        "lineage, records and models.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = state
    problems.install(app)
    app.add_middleware(Guard, state=state)
    # Added after the guard, so it runs around it and sees its refusals too.
    app.add_middleware(AuditTrail, state=state)

    api = APIRouter(prefix=PREFIX)
    for module in (pipelines, runs, logs, artifacts, registry, stats, traffic, audit):
        api.include_router(module.router)
    app.include_router(api)
    scrape = metrics.registry_for(state)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        """Liveness: this server's id, whether it drains, and what it drives."""
        return state.health()

    @app.get("/metrics", include_in_schema=False)
    def prometheus(_state: State) -> Response:
        """Prometheus text format (version 0.0.4)."""
        return Response(
            metrics.render(scrape), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    mount_ui(app, state)
    return app
