"""The metadata store port: runs, task runs, attempts, events, artifacts, lineage.

Every write method is one transaction. Attempt-level writes (`commit`) are
*fenced* by (task run, attempt): a batch naming an attempt that is no longer
current (a late or repeated result, or a coordinator that lost the run to a
resume) is rolled back whole and raises `FencedError`. That is what makes
commits exactly-once while execution is at-least-once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from lockgate.model.states import AttemptState, EventKind, RunState, TaskState
from lockgate.ports.alerts import AlertDelivery, NewDelivery
from lockgate.ports.artifacts import ArtifactRef
from lockgate.ports.audit import AuditEntry as AuditEntry  # re-exported
from lockgate.ports.executor import ErrorInfo, LogSpan, NamedOutput

# Records that live in their own modules, re-exported: the port's users import
# every record from here.
from lockgate.ports.registry import AliasEvent as AliasEvent
from lockgate.ports.registry import AliasMove as AliasMove
from lockgate.ports.registry import Approval as Approval
from lockgate.ports.registry import GateDecision as GateDecision
from lockgate.ports.registry import Registration as Registration
from lockgate.ports.registry import ResolvedVersion as ResolvedVersion
from lockgate.ports.registry import VersionRecord as VersionRecord
from lockgate.ports.routes import Feedback, GatewaySample, RouteChange, RouteRecord, RouteTarget
from lockgate.ports.stats import ModelLineage as ModelLineage
from lockgate.ports.stats import RunSample as RunSample
from lockgate.ports.stats import StateCounts as StateCounts
from lockgate.ports.stats import StatsRows as StatsRows
from lockgate.ports.stats import TaskSample as TaskSample


@dataclass(frozen=True, slots=True)
class NewRun:
    """What is recorded when a run is created."""

    run_id: str
    pipeline: str
    pipeline_version: str
    graph: Mapping[str, Any]
    params: Mapping[str, Any]
    trigger: str
    created_at: float
    nodes: Sequence[tuple[str, str]]  # (node_id, task_name) in topological order
    git_sha: str | None = None
    git_dirty: bool | None = None
    pipeline_ref: str | None = None
    versions: Sequence[ResolvedVersion] = ()
    trigger_key: str | None = None
    logical_date: float | None = None
    status: RunState = RunState.QUEUED
    actor: str | None = None  # who asked, e.g. `api:<token name>` (in `run_created`)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A stored run."""

    id: str
    pipeline: str
    pipeline_version: str
    status: RunState
    params: Mapping[str, Any]
    trigger: str
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    error: str | None = None
    pipeline_ref: str | None = None
    cancel_requested_at: float | None = None
    trigger_key: str | None = None
    logical_date: float | None = None
    claimed_by: str | None = None

    def stale(self, now: float, timeout: float) -> bool:
        """True if the run claims to be running but its coordinator stopped beating.

        A queued run waits for `lockgate server` to launch it: never stale.
        """
        if self.status is not RunState.RUNNING:
            return False
        last = self.heartbeat_at if self.heartbeat_at is not None else self.created_at
        return now - last > timeout


@dataclass(frozen=True, slots=True)
class TaskRunRecord:
    """A stored task run: one node, or one item of a map node.

    `queued_at`, `started_at` describe the latest attempt; per-attempt times
    are in `AttemptRecord`s.
    """

    id: int
    run_id: str
    node_id: str
    map_index: int | None
    task_name: str
    state: TaskState
    attempts: int = 0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    output: ArtifactRef | None = None
    error: str | None = None
    cache_key: str | None = None
    cache_inputs: Mapping[str, Any] | None = None
    cached_from: int | None = None

    @property
    def label(self) -> str:
        """`node` or `node[i]`."""
        return self.node_id + (f"[{self.map_index}]" if self.map_index is not None else "")


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One stored try of a task run."""

    task_run_id: int
    node_id: str
    map_index: int | None
    number: int
    state: AttemptState
    queued_at: float
    started_at: float | None = None
    finished_at: float | None = None
    error: ErrorInfo | None = None
    log: LogSpan | None = None

    @property
    def queue_time(self) -> float | None:
        """Seconds between being queued and starting (None before it starts)."""
        return None if self.started_at is None else max(0.0, self.started_at - self.queued_at)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One append-only event row."""

    id: int
    run_id: str
    kind: EventKind
    at: float
    node_id: str | None = None
    map_index: int | None = None
    attempt: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    task_run_id: int | None = None


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A stored artifact and where it came from.

    Attributes:
        origin: "task" when a task of this installation produced it (trusted),
            "import" when it came from outside (never unpickled without opt-in).
        stored: "inline" when the bytes live in the metadata store, "blob" when
            they live in the artifact store.
    """

    ref: ArtifactRef
    created_at: float
    origin: Literal["task", "import"] = "task"
    stored: Literal["inline", "blob"] = "blob"


@dataclass(frozen=True, slots=True)
class LineageEdge:
    """An artifact consumed or produced by a task run."""

    run_id: str
    node_id: str
    map_index: int | None
    sha256: str
    direction: Literal["consumed", "produced"]
    task_run_id: int = 0


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The end of one attempt, committed with `finish_attempt` in one transaction.

    Attributes:
        attempt_state: how the attempt ended.
        task_state: where the task run goes next: succeeded, retrying or failed.
        consumed: hashes of the artifacts the attempt loaded (lineage).
        output: the committed result (recorded with a `produced` lineage edge).
        retry_at: when the next attempt may be queued (retrying only).
    """

    task_run_id: int
    attempt: int
    attempt_state: AttemptState
    task_state: TaskState
    finished_at: float
    started_at: float | None = None
    output: ArtifactRef | None = None
    consumed: Sequence[str] = ()
    error: ErrorInfo | None = None
    retry_at: float | None = None
    log: LogSpan | None = None
    named: NamedOutput | None = None


@dataclass(frozen=True, slots=True)
class StartItem:
    """Attempt `attempt` of a task run started at `at`; its output goes to `log`."""

    task_run_id: int
    attempt: int
    at: float
    log: LogSpan | None = None


@dataclass(frozen=True, slots=True)
class QueueItem:
    """Attempt `attempt` of a task run is queued; the cache key it was looked up under."""

    task_run_id: int
    attempt: int
    cache_key: str | None = None
    cache_inputs: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A previous committed result whose cache key matches."""

    task_run_id: int
    run_id: str
    node_id: str
    map_index: int | None
    output: ArtifactRef
    finished_at: float


@dataclass(frozen=True, slots=True)
class CachedItem:
    """A task run satisfied from the cache instead of executing."""

    task_run_id: int
    hit: CacheHit
    cache_key: str
    cache_inputs: Mapping[str, Any]
    consumed: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token (the token itself is never stored, only its SHA-256)."""

    id: int
    name: str
    scopes: tuple[str, ...]
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None


@dataclass
class WriteBatch:
    """State changes the coordinator commits together in one transaction.

    Applied in this order: starts, finishes (with the named versions their
    outputs create), cached, gate decisions, registrations, alias moves, queues.
    Every start and finish is fenced by (task run, attempt); if any fence fails
    the whole batch is rolled back and `FencedError` is raised.
    """

    at: float
    starts: list[StartItem] = field(default_factory=list)
    finishes: list[AttemptResult] = field(default_factory=list)
    cached: list[CachedItem] = field(default_factory=list)
    queues: list[QueueItem] = field(default_factory=list)
    gate_decisions: list[GateDecision] = field(default_factory=list)
    registrations: list[Registration] = field(default_factory=list)
    alias_moves: list[AliasMove] = field(default_factory=list)
    releases: list[int] = field(default_factory=list)  # task runs whose pool slot to free

    def __bool__(self) -> bool:
        return bool(
            self.starts
            or self.finishes
            or self.cached
            or self.queues
            or self.gate_decisions
            or self.registrations
            or self.alias_moves
            or self.releases
        )


class MetadataStore(Protocol):
    """Durable state of runs. One implementation per database family."""

    # --- writes -------------------------------------------------------------

    def create_run(self, new: NewRun) -> list[TaskRunRecord]:
        """Record a run, its pipeline version and one pending task run per node.

        Returns:
            The task runs created, in the order of `new.nodes`.

        Raises:
            RunExistsError: `new.trigger_key` already started a run of this pipeline
                (its id is on the error); nothing was written.
        """
        ...

    # --- the run queue, pools and tokens (`lockgate server`) --------------------

    def claim_queued(
        self, *, limits: Mapping[str, int], claimer: str, at: float, max_runs: int
    ) -> list[RunRecord]:
        """Take queued runs, oldest first, for `claimer` to launch (at most `max_runs`).

        A run is claimed (status running, `claimed_by`, a fresh heartbeat) only if its
        pipeline has fewer running runs than `limits[pipeline]` (no limit if absent).
        Two claimers never take the same run.
        """
        ...

    def trigger_keys(self, pipeline: str, prefix: str) -> list[str]:
        """Trigger keys starting with `prefix` of the pipeline's runs."""
        ...

    def last_logical_date(self, pipeline: str) -> float | None:
        """The newest schedule tick the pipeline has a run for."""
        ...

    def acquire_slot(
        self,
        pool: str,
        slots: int,
        task_run_id: int,
        run_id: str,
        at: float,
        stale_before: float,
    ) -> bool:
        """Take a slot of `pool` for a task run if fewer than `slots` are held.

        Slots held by runs whose coordinator stopped beating before `stale_before`
        are freed first. Never over-commits, however many coordinators ask.
        """
        ...

    def create_token(
        self,
        name: str,
        token_hash: str,
        scopes: Sequence[str],
        at: float,
        *,
        audit: AuditEntry | None = None,
    ) -> None:
        """Store a token's hash under a unique name (and `audit`, in the same transaction)."""
        ...

    def find_token(self, token_hash: str, at: float) -> TokenRecord | None:
        """The unrevoked token with this hash (its last use is stamped), or None."""
        ...

    def list_tokens(self) -> list[TokenRecord]:
        """Every token, revoked ones included."""
        ...

    def revoke_token(self, name: str, at: float, *, audit: AuditEntry | None = None) -> bool:
        """Revoke a token by name; False if there is none.

        `audit` is written in the same transaction, and only if a token was revoked.
        """
        ...

    # --- the audit log (see lockgate/ports/audit.py) ------------------------------

    def record_audit(self, entry: AuditEntry) -> bool:
        """Append `entry`; False (nothing written) if its request id is already stored."""
        ...

    def audit_entries(self, *, limit: int = 100, token: str | None = None) -> list[AuditEntry]:
        """The newest `limit` entries (of the token named `token`), newest first."""
        ...

    def set_run_state(
        self, run_id: str, state: RunState, at: float, *, error: str | None = None
    ) -> None:
        """Move a run to `state` and append the event."""
        ...

    def heartbeat(self, run_id: str, at: float) -> None:
        """Note that the run's coordinator is alive."""
        ...

    def expand_map(
        self, run_id: str, node_id: str, task_name: str, count: int, at: float
    ) -> list[TaskRunRecord]:
        """Create the item task runs of a map node (idempotent) and return them."""
        ...

    def commit(self, run_id: str, batch: WriteBatch) -> None:
        """Apply a batch of starts, finishes, cache hits and queues in one transaction.

        Raises:
            FencedError: a start or finish named an attempt that is not current;
                nothing in the batch was applied.
        """
        ...

    def resume_run(
        self, run_id: str, *, by: str, at: float, stale_before: float, queue: bool = False
    ) -> list[TaskRunRecord]:
        """Take over a failed, cancelled or orphaned run so it can be driven again.

        In one transaction: marks the run running with a fresh heartbeat, turns
        every task run without a committed result back to pending (an attempt
        left queued or running is recorded as failed: its coordinator stopped),
        and appends `run_resumed` (payload: by, previous status).

        Args:
            run_id: the run.
            by: who resumes it ("cli", "api", "scheduler", "python", "recover").
            at: now.
            stale_before: a running or queued run whose heartbeat is newer than
                this is still owned by a live coordinator and is refused.
            queue: put the run back in the queue (status `queued`, no claimer)
                instead of taking it over: a server claims it and drives it.

        Raises:
            RunStateError: the run succeeded, or a live coordinator owns it.
        """
        ...

    def request_cancel(self, run_id: str, *, by: str, at: float) -> RunRecord:
        """Ask the run's coordinator to cancel it (it checks between steps)."""
        ...

    def cancel_requested(self, run_id: str) -> bool:
        """True once someone asked to cancel the run."""
        ...

    def set_task_state(
        self,
        run_id: str,
        task_run_ids: Sequence[int],
        state: TaskState,
        at: float,
        *,
        reason: str | None = None,
    ) -> None:
        """Move task runs that are not yet terminal to `state`, with events."""
        ...

    def add_artifact(self, record: ArtifactRecord) -> None:
        """Record an artifact that did not come from a task (idempotent)."""
        ...

    # --- reads --------------------------------------------------------------

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id (or unique id prefix; `latest` names the newest run).

        Raises:
            RunNotFoundError: no run matches.
        """
        ...

    def list_runs(
        self,
        *,
        limit: int = 50,
        pipeline: str | None = None,
        status: RunState | None = None,
        trigger: str | None = None,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally filtered; `offset` skips that many (pages)."""
        ...

    def state_counts(self) -> StateCounts:
        """Runs by status and task runs by state, per pipeline (for `/metrics`)."""
        ...

    def run_graph(self, run_id: str) -> Mapping[str, Any]:
        """The stored graph of the run's pipeline version."""
        ...

    def task_runs(self, run_id: str, node_id: str | None = None) -> list[TaskRunRecord]:
        """The run's task runs (only those of `node_id`, if given), in creation order."""
        ...

    def get_task_run(self, task_run_id: int) -> TaskRunRecord | None:
        """One task run by its id, or None."""
        ...

    def attempts(self, run_id: str) -> list[AttemptRecord]:
        """Every attempt of the run, by task run then number."""
        ...

    def events(self, run_id: str) -> list[EventRecord]:
        """The run's events in the order they were written."""
        ...

    def get_artifact(self, sha256: str) -> ArtifactRecord | None:
        """The artifact with this hash, with its inline bytes, or None."""
        ...

    def list_artifacts(self, *, limit: int = 100) -> list[ArtifactRecord]:
        """Artifacts, newest first (without their inline bytes; `stored` tells where they are)."""
        ...

    def lineage(self, sha256: str) -> list[LineageEdge]:
        """Every task run that produced or consumed the artifact."""
        ...

    def task_run_edges(self, task_run_ids: Sequence[int]) -> list[LineageEdge]:
        """Every lineage edge of these task runs."""
        ...

    def versions_of_artifact(self, sha256: str) -> list[VersionRecord]:
        """The named versions whose content is this artifact."""
        ...

    def find_cached(self, cache_key: str, *, not_before: float | None) -> CacheHit | None:
        """The newest committed result with this cache key finished at or after `not_before`."""
        ...

    def cache_history(self, task_name: str, *, before: float, limit: int) -> list[TaskRunRecord]:
        """Committed task runs of `task_name` with cache inputs, newest first (for explain)."""
        ...

    def stats_rows(self, *, since: float, until: float, pipeline: str | None = None) -> StatsRows:
        """What the run metrics are computed from, for runs that finished in [since, until).

        Args:
            since: start of the window (epoch seconds, inclusive).
            until: end of the window (exclusive).
            pipeline: only runs of this pipeline.

        Returns:
            The window's finished runs; per (pipeline, task name) the retry
            counts, attempt queue times and gate outcomes of their task runs;
            and the model versions those runs registered, with whether each
            one's ancestry reaches a dataset version and a Git SHA.
        """
        ...

    # --- named versions, registry, gates, approvals ---------------------------

    def resolve_version(self, kind: str, name: str, version: int | None) -> VersionRecord | None:
        """Version `version` of `kind:name` (the latest when None), or None."""
        ...

    def version_of(self, kind: str, name: str, sha256: str) -> VersionRecord | None:
        """The version of `kind:name` whose content is `sha256`, or None."""
        ...

    def list_versions(
        self, kind: str, name: str | None = None, *, limit: int = 100
    ) -> list[VersionRecord]:
        """Versions of `kind` (of one name, or of all), newest first."""
        ...

    def alias_version(self, kind: str, name: str, alias: str) -> VersionRecord | None:
        """The version alias `alias` of kind:name points at, or None."""
        ...

    def run_versions(self, run_id: str) -> list[ResolvedVersion]:
        """The named versions the run consumes, as resolved at its creation."""
        ...

    def move_alias(self, move: AliasMove, at: float) -> int | None:
        """Move an alias (one transaction, audit row included); return the previous version.

        Raises:
            RegistryError: the model or version does not exist.
        """
        ...

    def alias_events(self, kind: str, name: str, alias: str | None = None) -> list[AliasEvent]:
        """The alias audit log of a model, oldest first."""
        ...

    def gate_decisions(self, run_id: str) -> list[GateDecision]:
        """Every gate check decided in the run."""
        ...

    def record_approval(self, approval: Approval) -> None:
        """Record a decision on an approval node (once).

        Raises:
            RunStateError: the node was already decided.
        """
        ...

    def approvals(self, run_id: str) -> list[Approval]:
        """The decisions recorded for the run's approval nodes."""
        ...

    def record_warning(self, run_id: str, message: str, at: float) -> None:
        """Record a `run_warning` event (a stale input the pipeline tolerates)."""
        ...

    def record_event(
        self,
        run_id: str,
        kind: EventKind,
        at: float,
        *,
        task_run_id: int | None = None,
        attempt: int | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one event that changes no state (`hook_failed`, `sla_missed`) to the chain."""
        ...

    # --- alerts (the outbox; see lockgate/ports/alerts.py) ----------------------

    def alert_events(
        self, after: int, kinds: Sequence[EventKind], *, limit: int = 500
    ) -> tuple[list[tuple[EventRecord, str]], int]:
        """Events of `kinds` with id > `after`, oldest first, each with its pipeline's name.

        Returns:
            The events (at most `limit`), and the event id to read after next time.
        """
        ...

    def alias_rollbacks(self, after: int, *, limit: int = 500) -> tuple[list[AliasEvent], int]:
        """Alias rollbacks with id > `after`, oldest first, and the id to read after next."""
        ...

    def alert_start(self, before: float) -> dict[str, int]:
        """Cursor positions (`events`, `alias_events`) just before time `before`."""
        ...

    def alert_cursor(self, name: str) -> int | None:
        """How far the alert pass has read source `name` (None: never)."""
        ...

    def advance_alert_cursor(self, name: str, position: int) -> None:
        """Move a cursor forward to `position`; a smaller position changes nothing."""
        ...

    def enqueue_alert(
        self, new: NewDelivery, *, rate_limit: int | None, window: float
    ) -> AlertDelivery | None:
        """Record a delivery unless one with its key exists (then return None).

        When the rule already has `rate_limit` deliveries that were not suppressed
        created within `window` seconds, the new one is recorded as `suppressed`.
        Safe to race: one row per key, and the limit holds across writers.
        """
        ...

    def due_alerts(self, at: float, *, limit: int = 50) -> list[AlertDelivery]:
        """Pending deliveries whose next send is due at `at`, oldest first."""
        ...

    def claim_alert(self, delivery: AlertDelivery, *, at: float, lease_until: float) -> bool:
        """Take a due delivery for one send: no other pass sees it due before `lease_until`.

        Returns False when another pass claimed or finished it first.
        """
        ...

    def finish_alert(
        self,
        delivery_id: int,
        *,
        attempt: int,
        at: float,
        sent: bool,
        error: str | None = None,
        next_at: float | None = None,
    ) -> None:
        """Record send number `attempt`: sent; or failed and due again at `next_at`;
        or failed for good (`next_at` None). A repeated finish changes nothing."""
        ...

    def run_alerts(self, run_id: str) -> list[AlertDelivery]:
        """The alert deliveries about a run, oldest first (the reliability record)."""
        ...

    def list_alerts(self, *, limit: int = 100, rule: str | None = None) -> list[AlertDelivery]:
        """Alert deliveries, newest first."""
        ...

    # --- routes and gateway samples (see lockgate/ports/routes.py) --------------

    def get_route(self, name: str) -> RouteRecord:
        """The route's current state.

        Raises:
            RouteNotFoundError: no route has that name.
        """
        ...

    def list_routes(self) -> list[RouteRecord]:
        """Every route, by name."""
        ...

    def change_route(
        self,
        name: str,
        *,
        targets: Sequence[RouteTarget],
        mirror: RouteTarget | None,
        action: str,
        by: str,
        at: float,
        reason: str | None = None,
        run_id: str | None = None,
        expected_version: int | None = None,
    ) -> RouteRecord:
        """Give the route a new state (creating it when absent), serialized per route.

        One transaction locks the route, writes the state with version + 1 and
        appends a `route_changes` row holding the state it replaced. Weights are
        the caller's to validate.

        Raises:
            RouteConflictError: `expected_version` is set and the route is at
                another version (0 stands for "absent").
        """
        ...

    def rollback_route(
        self,
        name: str,
        *,
        by: str,
        at: float,
        reason: str | None = None,
        run_id: str | None = None,
        action: str = "rollback",
        expected_version: int | None = None,
    ) -> RouteRecord:
        """Atomically restore the state the route's last change replaced (a new version).

        Rolling back twice undoes the first rollback.

        Raises:
            RouteNotFoundError: no route has that name.
            RouteStateError: the last change created the route (nothing before it).
            RouteConflictError: `expected_version` is set and differs.
        """
        ...

    def route_changes(self, name: str, *, limit: int = 100) -> list[RouteChange]:
        """The route's changes, newest first."""
        ...

    def run_route_changes(self, run_id: str) -> list[RouteChange]:
        """The route changes a run made, oldest first (the reliability record)."""
        ...

    def record_samples(self, samples: Sequence[GatewaySample]) -> None:
        """Append gateway samples in one transaction; non-finite scores are dropped."""
        ...

    def record_feedback(self, feedback: Feedback) -> None:
        """Append a live quality signal for one request of a route."""
        ...

    def route_samples(
        self, route: str, *, since: float, until: float | None = None
    ) -> list[GatewaySample]:
        """The route's samples with `since <= at < until`, oldest first.

        Each sample's scores are merged with the feedback recorded for its
        (route, request_id), whenever it arrived; the newest value per metric wins.
        """
        ...

    def event_chain(
        self, run_id: str
    ) -> tuple[list[tuple[EventRecord, str | None]], str | None, int | None]:
        """The run's events with their stored hashes, and the run's head hash and count."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
