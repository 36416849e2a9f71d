"""The HTTP API of `lockgate server` (FastAPI).

    GET  /healthz                         liveness, no token
    POST /api/v1/pipelines/{name}/runs    queue a run: {"params": {...}, "key": "..."}
    GET  /api/v1/runs/{run_id}            a run's status and its nodes

Every `/api/` request needs `Authorization: Bearer <token>` (`lockgate token
create NAME`). The check is middleware, so a request without a valid token
gets 401 before anything parses its body (a handler-level check would answer
422 to a malformed body first, telling an anonymous caller what it got wrong).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from lockgate.errors import (
    LockgateError,
    ParameterError,
    PipelineNotFoundError,
    RunNotFoundError,
    VersionNotFoundError,
)
from lockgate.model.states import Trigger
from lockgate.server.state import ServerState
from lockgate.server.ui import mount_ui
from lockgate.service import tokens
from lockgate.service.enqueue import enqueue
from lockgate.service.views import run_details


class TriggerBody(BaseModel):
    """What `POST /api/v1/pipelines/{name}/runs` takes."""

    params: dict[str, Any] = Field(default_factory=dict, description="parameter values")
    key: str | None = Field(
        default=None,
        max_length=200,
        description="idempotency key: a second request with the same key returns the same run",
    )


#: Threads serving synchronous endpoints. Each keeps a database connection, so
#: this bounds what one server takes from the pool (SQLAlchemy's default 5 + 10).
API_THREADS = 8


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS
    yield


def create_app(state: ServerState) -> FastAPI:
    """The API app, serving `state`'s workspace and pipelines."""
    app = FastAPI(
        lifespan=_lifespan,
        title="lockgate",
        version="1",
        description="Trigger and inspect lockgate runs.",
        docs_url=None,
        redoc_url=None,
    )

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/api/"):
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            found = None
            if scheme.lower() == "bearer":
                found = await run_in_threadpool(tokens.verify, state.workspace, token.strip())
            if found is None:
                return JSONResponse(
                    {
                        "error": "unauthorized",
                        "detail": "send Authorization: Bearer <token>; create one with "
                        "`lockgate token create NAME`",
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            request.state.token = found.name
        return await call_next(request)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness: this server's id, whether it drains, and what it drives."""
        return state.health()

    @app.post("/api/v1/pipelines/{name}/runs", status_code=201)
    def trigger(name: str, body: TriggerBody, request: Request) -> Any:
        """Queue a run of pipeline `name`; the server launches it when limits allow."""
        try:
            entry = state.catalog.get(name)
            key = f"api:{body.key}" if body.key else None
            result = enqueue(
                state.workspace,
                entry.pipeline,
                body.params,
                trigger=Trigger.API,
                trigger_key=key,
                pipeline_ref=entry.ref,
                json_params=True,
            )
        except PipelineNotFoundError as exc:
            return _error(404, "pipeline_not_found", exc)
        except (ParameterError, VersionNotFoundError) as exc:
            return _error(422, type(exc).__name__, exc)
        except LockgateError as exc:
            return _error(400, type(exc).__name__, exc)
        state.wake.set()  # launch it now, not at the next poll
        record = state.workspace.metadata.get_run(result.run_id)
        return JSONResponse(
            {
                "run_id": result.run_id,
                "created": result.created,
                "status": record.status.value,
                "url": f"/api/v1/runs/{result.run_id}",
            },
            status_code=201 if result.created else 200,
        )

    @app.get("/api/v1/runs/{run_id}")
    def get_run(run_id: str) -> Any:
        """A run: status, timing (queue time included), params and per-node states."""
        try:
            return run_details(state.workspace, run_id)
        except RunNotFoundError as exc:
            return _error(404, "run_not_found", exc)

    mount_ui(app, state)
    return app


def _error(status: int, kind: str, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": str(exc)}, status_code=status)
