"""The gateway's HTTP app (FastAPI).

    POST /v1/routes/{route}/predict   {"request_id"?, "key"?, "inputs", "context"?, "method"?}
    POST /v1/routes/{route}/feedback  {"request_id", "metric", "value"}
    GET  /v1/routes                   what this gateway serves, per route
    GET  /metrics                     Prometheus text (lockgate.server.gateway.metrics)
    GET  /healthz                     liveness, no token

`predict` picks the target by the request's key (`key`, else `request_id`,
else a fresh id: random), sticky while the route's weights are unchanged;
answers `{"request_id", "output", "model", "route", "route_version"}` with the
serving version in `X-Lockgate-Model` (`model:NAME@VERSION`) and the route
version in `X-Lockgate-Route-Version`. The sample is recorded off the
response path; a route's mirror target gets a copy off the response path too.

Errors have the API's one shape, `{"error", "detail"}`: 404 `route_not_found`,
422 `invalid_request` (the body does not validate) or `invalid_inputs` (the
target refused the inputs), 500 `model_error` (the target failed), 503
`model_unavailable` (a route whose targets never loaded here), and the
guard's 400/401/403/413/415/429.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from lockgate.errors import ModelLoadError, PredictionError, RouteNotFoundError
from lockgate.ports.routes import Feedback, GatewaySample
from lockgate.server import problems
from lockgate.server.gateway.background import score_row
from lockgate.server.gateway.guard import GatewayGuard

if TYPE_CHECKING:
    from lockgate.server.gateway.runner import Gateway

MODEL_HEADER = "X-Lockgate-Model"
ROUTE_VERSION_HEADER = "X-Lockgate-Route-Version"


class PredictBody(BaseModel):
    """A prediction request. `inputs` and `context` are any JSON values."""

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = Field(default=None, min_length=1, max_length=200)
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="What stickiness follows (a user or session id); default: request_id.",
    )
    inputs: Any
    context: Any = None
    method: Literal["predict", "predict_proba"] | None = None


class FeedbackBody(BaseModel):
    """A live quality signal for a request answered earlier."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=200)
    metric: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
    value: float = Field(allow_inf_nan=False)


def create_app(gateway: Gateway) -> FastAPI:
    """The app serving `gateway`'s routes."""
    app = FastAPI(
        title="lockgate gateway",
        version="1",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    app.add_middleware(
        GatewayGuard,
        workspace=gateway.workspace,
        host=gateway.host,
        open_=gateway.settings.open,
    )

    @app.exception_handler(RouteNotFoundError)
    async def no_route(_request: Request, exc: RouteNotFoundError) -> JSONResponse:
        return problems.problem(404, "route_not_found", str(exc))

    @app.exception_handler(ModelLoadError)
    async def unavailable(_request: Request, exc: ModelLoadError) -> JSONResponse:
        return problems.problem(503, "model_unavailable", str(exc), {"Retry-After": "30"})

    @app.post("/v1/routes/{route}/predict")
    def predict(route: str, body: PredictBody) -> JSONResponse:
        """Answer with the target the request's key picks."""
        snapshot = gateway.table.get(route)
        request_id = body.request_id or uuid.uuid4().hex
        target = snapshot.pick(body.key or request_id)
        version = snapshot.route.version
        headers = {MODEL_HEADER: target.label, ROUTE_VERSION_HEADER: str(version)}
        started = time.perf_counter()
        output: Any = None
        error: PredictionError | None = None
        try:
            output = target.answer(body.inputs, body.context, body.method)
        except PredictionError as exc:
            error = exc
        latency = time.perf_counter() - started
        failure = None if error is None else str(error)
        gateway.metrics.observe(route, target.label, "serve", latency, failure)
        sample = GatewaySample(
            route=route,
            request_id=request_id,
            target=target.label,
            cohort="serve",
            route_version=version,
            latency_s=latency,
            error=failure,
            at=time.time(),
        )
        gateway.writer.add(sample, score_row(body.inputs, output, body.context))
        if snapshot.mirror is not None:
            gateway.mirror.submit(
                route,
                version,
                snapshot.mirror,
                request_id,
                body.inputs,
                body.context,
                body.method,
            )
        if error is not None:
            kind = "invalid_inputs" if error.status == 422 else "model_error"
            return problems.problem(error.status, kind, str(error), headers)
        answer = {
            "request_id": request_id,
            "output": output,
            "model": target.label,
            "route": route,
            "route_version": version,
        }
        return JSONResponse(answer, headers=headers)

    @app.post("/v1/routes/{route}/feedback", status_code=202)
    def feedback(route: str, body: FeedbackBody) -> dict[str, Any]:
        """Record a live quality signal (a thumbs up, a resolved ticket) for a request."""
        if not gateway.table.knows(route):
            gateway.workspace.metadata.get_route(route)  # 404 for an unknown route
        gateway.workspace.metadata.record_feedback(
            Feedback(route, body.request_id, body.metric, body.value, time.time())
        )
        gateway.metrics.feedback.labels(route, body.metric).inc()
        return {"recorded": True, "route": route, "request_id": body.request_id}

    @app.get("/v1/routes")
    def routes() -> dict[str, Any]:
        """Per route: the version served, its targets and weights, a version that failed."""
        return gateway.table.status()

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        """Prometheus text format (version 0.0.4)."""
        return Response(
            gateway.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        """Liveness and what is queued."""
        return gateway.health()

    return app
