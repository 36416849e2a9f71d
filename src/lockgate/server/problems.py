"""The one error shape of the HTTP API: `{"error": KIND, "detail": ...}`.

Every error the API answers has this body, whoever raises it: a lockgate
error from a use case (mapped to a status here), an unknown route (404), a
wrong method (405), a body or query that fails validation (422, with the
offending fields listed), and the guard's 400/401/403/413/415/429.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from lockgate.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    DefinitionError,
    InvalidArtifactKey,
    InvalidRouteError,
    LockgateError,
    MetadataBusyError,
    NodeNotFoundError,
    ParameterError,
    PipelineNotFoundError,
    RegistryError,
    RouteConflictError,
    RouteNotFoundError,
    RouteStateError,
    RunNotFoundError,
    RunStateError,
    UntrustedArtifactError,
    UsageError,
    VersionNotFoundError,
)


class Problem(BaseModel):
    """The body of every error response."""

    error: str
    detail: Any


#: Lockgate errors by status, most specific first (the first match wins).
_STATUS: list[tuple[type[LockgateError], int, str]] = [
    (MetadataBusyError, 503, "busy"),
    (RunNotFoundError, 404, "run_not_found"),
    (NodeNotFoundError, 404, "node_not_found"),
    (PipelineNotFoundError, 404, "pipeline_not_found"),
    (ArtifactNotFoundError, 404, "artifact_not_found"),
    (InvalidArtifactKey, 400, "invalid_artifact_key"),
    (UntrustedArtifactError, 409, "untrusted_artifact"),
    (ArtifactError, 500, "artifact_error"),
    (RunStateError, 409, "run_state"),
    (ParameterError, 422, "invalid_params"),
    (VersionNotFoundError, 422, "version_not_found"),
    (RegistryError, 409, "registry"),
    (RouteNotFoundError, 404, "route_not_found"),
    (RouteConflictError, 409, "route_conflict"),
    (RouteStateError, 409, "route_state"),
    (InvalidRouteError, 422, "invalid_route"),
    (DefinitionError, 400, "invalid_name"),
    (UsageError, 400, "bad_request"),
]

#: Short names for the HTTP statuses Starlette raises itself.
_HTTP_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}

#: The `responses=` of routes: every error status documented with its shape.
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": what}
    for status, what in [
        (400, "a malformed request or Host header"),
        (401, "no valid token"),
        (403, "the token's scope does not allow this"),
        (404, "no such run, node, pipeline, artifact, version or route"),
        (409, "the run, artifact, model or route is in a state that does not allow this"),
        (422, "the query or body does not validate"),
        (429, "too many failed authentications from this client"),
    ]
}


def problem(
    status: int, kind: str, detail: Any, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error response in the API's one shape."""
    return JSONResponse({"error": kind, "detail": detail}, status_code=status, headers=headers)


def for_error(exc: LockgateError) -> JSONResponse:
    """The response for a lockgate error raised by a use case."""
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return problem(status, kind, str(exc))
    return problem(400, "bad_request", str(exc))


def install(app: FastAPI) -> None:
    """Answer every error `app` raises in the one shape."""

    @app.exception_handler(LockgateError)
    async def lockgate_error(_request: Request, exc: LockgateError) -> JSONResponse:
        return for_error(exc)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(exc.status_code, f"http_{exc.status_code}")
        return problem(exc.status_code, kind, exc.detail, dict(exc.headers or {}) or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "where": ".".join(str(p) for p in error.get("loc", ())),
                "problem": error.get("msg", "invalid"),
            }
            for error in exc.errors()
        ]
        return problem(422, "invalid_request", fields)
