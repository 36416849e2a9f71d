"""The API's request and response bodies (pydantic), so /api/v1/openapi.json is exact.

Response models mirror the JSON views of `lockgate.service.views` and the
registry, which the CLI's `--json` prints too: one shape for both.
Timestamps are ISO 8601 UTC strings; durations are seconds.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: Most runs one page of `GET /api/v1/runs` returns.
MAX_PAGE = 200
#: Largest version, attempt or index a request may name (the databases' INTEGER).
MAX_INT = 2**31 - 1


class TriggerBody(BaseModel):
    """What `POST /api/v1/pipelines/{name}/runs` takes."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict, description="parameter values")
    key: str | None = Field(
        default=None,
        max_length=200,
        description="idempotency key: a second request with the same key returns the same run",
    )


class Triggered(BaseModel):
    """A queued run (or the run an earlier request with the same key queued)."""

    run_id: str
    created: bool
    status: str
    url: str


class Run(BaseModel):
    """A run's summary."""

    run_id: str
    pipeline: str
    pipeline_version: str
    status: str
    trigger: str
    trigger_key: str | None
    logical_date: str | None
    params: dict[str, Any]
    git_sha: str | None
    git_dirty: bool | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    queue_time_s: float | None
    duration_s: float | None
    claimed_by: str | None
    heartbeat_at: str | None
    stale: bool
    error: str | None


class RunWithWarnings(Run):
    """A run's summary with the warnings recorded while it ran."""

    warnings: list[str | None]


class RunPage(BaseModel):
    """One page of runs, newest first; `next_offset` is null on the last page."""

    runs: list[Run]
    limit: int
    offset: int
    next_offset: int | None


class Attempt(BaseModel):
    """One attempt of a node."""

    number: int
    state: str
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    queue_time_s: float | None
    duration_s: float | None
    error: str | None
    error_type: str | None


class TaskRun(BaseModel):
    """One node (or map item) of a run, with its attempts."""

    id: str
    map_index: int | None
    task: str
    state: str
    attempt_count: int
    attempts: list[Attempt]
    output: str | None
    error: str | None


class RunDetail(BaseModel):
    """A run with every node, map item and attempt."""

    run: RunWithWarnings
    nodes: list[TaskRun]


class Pipeline(BaseModel):
    """A pipeline of the project: schedule, next ticks, triggers and limits."""

    name: str
    source: str
    description: str | None
    params: list[str]
    schedule: str | None
    timezone: str | None
    catchup: bool | None
    next_runs: list[str]
    triggers: list[str]
    max_active_runs: int | None
    max_input_age: float | None


class GraphNode(BaseModel):
    """A node of a pipeline's graph and the nodes it waits for."""

    id: str
    task: str
    task_version: str
    mapped: bool
    upstream: list[str]


class PipelineGraph(BaseModel):
    """A pipeline's DAG in topological order."""

    pipeline: str
    version: str
    nodes: list[GraphNode]


class Artifact(BaseModel):
    """An artifact's metadata and the task runs that produced and consumed it."""

    uri: str
    sha256: str
    serializer: str
    type: str
    size: int
    length: int | None
    stored: str
    origin: str
    created_at: str | None
    produced_by: list[dict[str, Any]] = Field(default_factory=list)
    consumed_by: list[dict[str, Any]] = Field(default_factory=list)


class Lineage(BaseModel):
    """Artifacts and task runs reached from one artifact, with the edges between."""

    root: str
    direction: str
    artifacts: list[dict[str, Any]]
    task_runs: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    dataset_versions: list[str]
    git_shas: list[str]


class Record(BaseModel):
    """A run's reliability record (docs/record.md, schema lockgate.record/1)."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="schema")
    run: Run
    verification: dict[str, Any]


class Verification(BaseModel):
    """Whether the run's event hash chain is intact."""

    ok: bool
    events: int
    problems: list[str]


class ModelVersion(BaseModel):
    """A registered model version."""

    ref: str
    kind: str
    name: str
    version: int
    uri: str
    sha256: str
    type: str
    size: int
    created_at: str | None
    run_id: str | None
    node: str | None
    aliases: list[str]
    gated: bool
    metadata: dict[str, Any]


class AliasEvent(BaseModel):
    """An entry of a model's alias audit log."""

    alias: str
    action: str
    version: int
    previous_version: int | None
    actor: str
    run_id: str | None
    reason: str | None
    forced: bool
    at: str | None


class PromoteBody(BaseModel):
    """What `POST /api/v1/models/{name}/promote` takes."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=MAX_INT)
    alias: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=2000)
    force: bool = Field(default=False, description="promote without a passing gate (needs reason)")


class RollbackBody(BaseModel):
    """What `POST /api/v1/models/{name}/rollback` takes."""

    model_config = ConfigDict(extra="forbid")

    alias: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=2000)


class AliasMoved(BaseModel):
    """Where an alias pointed before a promote or rollback, and where it points now."""

    name: str
    alias: str
    previous_version: int | None
    version: int


class RouteTargetWeight(BaseModel):
    """One target of a route (`model:NAME@VERSION`) and its percent of the traffic."""

    target: str
    weight: float


class RouteState(BaseModel):
    """A route's state as a change recorded it."""

    version: int | None
    targets: list[RouteTargetWeight]
    mirror: str | None


class Route(BaseModel):
    """A route: weighted model versions, an optional mirror, and who changed it last."""

    name: str
    version: int
    targets: list[RouteTargetWeight]
    mirror: str | None
    updated_at: str | None
    updated_by: str


class RouteChange(BaseModel):
    """One recorded change of a route, with the state it replaced."""

    version: int
    action: str
    by: str
    reason: str | None
    run_id: str | None
    at: str | None
    previous: RouteState | None
    state: RouteState


class RouteDetail(BaseModel):
    """A route and its changes, newest first."""

    route: Route
    changes: list[RouteChange]


class ShiftBody(BaseModel):
    """What `POST /api/v1/routes/{name}/shift` takes."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, float] = Field(
        min_length=1,
        max_length=50,
        description="percent by target (`model:NAME@VERSION`); the route's other targets "
        "share the rest in proportion to their weights",
    )
    reason: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = Field(
        default=None, ge=0, le=MAX_INT, description="refuse (409) if the route is at another"
    )


class RouteRollbackBody(BaseModel):
    """What `POST /api/v1/routes/{name}/rollback` takes."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    expected_version: int | None = Field(default=None, ge=0, le=MAX_INT)


class AuditRow(BaseModel):
    """One audited action: a state-changing request (refusals included) or a token change."""

    id: int
    at: str = Field(description="when it was answered (ISO 8601 UTC)")
    channel: str = Field(description="api, ui or cli")
    actor: str | None = Field(description="api:<token>, ui:<token>, cli:<user>; null if unknown")
    token: str | None = Field(description="the name of the token presented (never the token)")
    scope: str | None = Field(description="that token's scope")
    method: str | None = Field(description="the HTTP method (null for the CLI)")
    action: str = Field(description="the request path, or the CLI command")
    target: str | None = Field(description="what it acted on: run:<id>, pipeline:<name>, ...")
    status: int | None = Field(description="the HTTP status answered (null for the CLI)")
    outcome: str = Field(description="ok, refused (401/403), failed (other 4xx) or error (5xx)")
    client: str | None = Field(description="the client's address")
    request_id: str
