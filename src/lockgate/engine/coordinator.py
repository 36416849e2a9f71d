"""The run coordinator: creates runs and hands them to a driver.

`Coordinator.create` records a run and its task runs (resolving dataset
versions and checking input ages first); `Coordinator.drive` runs the
remaining nodes through `engine.driver.Driver`, under a heartbeat.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.engine.driver import Driver
from lockgate.engine.heartbeat import Heartbeat
from lockgate.engine.hooks import HookCaller, wants_hooks
from lockgate.engine.ids import new_run_id
from lockgate.engine.listener import NullListener, RunListener
from lockgate.errors import ConfigError, VersionNotFoundError
from lockgate.model.pipeline import Pipeline
from lockgate.model.states import RunState, TaskState
from lockgate.model.versions import VersionRef
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.clock import Clock, SystemClock
from lockgate.ports.executor import Executor
from lockgate.ports.metadata import (
    MetadataStore,
    NewRun,
    ResolvedVersion,
    TaskRunRecord,
)


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What to run: a pipeline, its bound parameters, who asked, and how.

    Attributes:
        pipeline_ref: how to load the pipeline's code again (for resume).
        no_cache: execute every node even when a cached result matches.
        trigger_key: what started the run (a schedule tick, a version, a message);
            unique per pipeline, so a trigger never starts two runs.
        logical_date: the schedule tick (Unix seconds) the run stands for.
        pins: `(kind, name) -> version` for latest-version references: the run
            started by a new version consumes that version, not a later one.
        queued: leave the run queued for `lockgate server` to launch (else it
            is recorded as running, driven by the caller).
        actor: who asked, recorded in the `run_created` event (`api:<token name>`,
            `ui:<token name>`).
    """

    pipeline: Pipeline
    params: Mapping[str, Any]
    trigger: str
    run_id: str | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None
    pipeline_ref: str | None = None
    no_cache: bool = False
    trigger_key: str | None = None
    logical_date: float | None = None
    pins: Mapping[tuple[str, str], int] = field(default_factory=dict)
    queued: bool = False
    actor: str | None = None


class Coordinator:
    """Creates runs and drives them to completion through an executor."""

    def __init__(
        self,
        metadata: MetadataStore,
        executor: Executor | None,
        *,
        clock: Clock | None = None,
        listener: RunListener | None = None,
        rand: Callable[[], float] = random.random,
        heartbeat_interval: float = 5.0,
        cancel_check_interval: float = 0.5,
        artifacts: ArtifactStore | None = None,
        pools: Mapping[str, int] | None = None,
        stale_after: float = 30.0,
    ) -> None:
        """Wire the coordinator to its ports.

        Args:
            metadata: where every state change is committed.
            executor: where invocations run (None: this coordinator only creates
                runs, for `lockgate server` to launch).
            clock: time source (tests inject one).
            listener: receives each committed change (progress display).
            rand: uniform [0, 1) samples for retry jitter.
            heartbeat_interval: seconds between run heartbeats (written by a thread,
                so long tasks on the inline executor do not look like a crash).
            cancel_check_interval: how often to look for a cancel request (and
                for decisions on approval nodes that wait).
            artifacts: the artifact store, for the small inputs of system nodes
                (gate scores, approval records); task data never passes through here.
            pools: slots per named pool (`[pools]` in lockgate.toml); a task with
                `pool=` waits queued until one of its pool's slots is free.
            stale_after: seconds without a heartbeat after which a run's pool
                slots are presumed abandoned (its coordinator died).
        """
        self.metadata = metadata
        self._executor = executor
        self.clock = clock or SystemClock()
        self.listener = listener or NullListener()
        self.rand = rand
        self.heartbeat_interval = heartbeat_interval
        self.cancel_check_interval = cancel_check_interval
        self.artifacts = artifacts
        self.pools = dict(pools or {})
        self.stale_after = stale_after

    @property
    def executor(self) -> Executor:
        """The executor runs are driven on."""
        if self._executor is None:
            raise RuntimeError("this coordinator has no executor: it only creates runs")
        return self._executor

    def create(self, spec: RunSpec) -> tuple[str, list[TaskRunRecord]]:
        """Record a new run with one pending task run per node; return its id.

        A run that would consume a named version older than the pipeline's
        `max_input_age` is recorded and failed at once (`on_stale_input="fail"`),
        naming the stale input; with "warn" the warning is recorded and it runs.

        Raises:
            ConfigError: a task uses a pool that is not configured.
            VersionNotFoundError: a referenced version does not exist.
            RunExistsError: `spec.trigger_key` already started a run.
        """
        graph = spec.pipeline.graph
        self._check_pools(spec.pipeline)
        run_id = spec.run_id or new_run_id(self.clock.now())
        resolved = [self._resolve(ref, spec.pins) for ref in graph.versions]
        now = self.clock.now()
        stale = _stale_inputs(spec.pipeline, resolved, now)
        state = RunState.QUEUED if spec.queued else RunState.RUNNING
        records = self.metadata.create_run(
            NewRun(
                run_id=run_id,
                pipeline=spec.pipeline.name,
                pipeline_version=graph.version,
                graph=graph.to_dict(),
                params=spec.pipeline.params_to_json(spec.params),
                trigger=spec.trigger,
                created_at=now,
                nodes=[(node.id, node.task.name) for node in graph],
                git_sha=spec.git_sha,
                git_dirty=spec.git_dirty,
                pipeline_ref=spec.pipeline_ref,
                versions=[version for version, _ in resolved],
                trigger_key=spec.trigger_key,
                logical_date=spec.logical_date,
                status=state,
                actor=spec.actor,
            )
        )
        self.listener.on_run(run_id=run_id, state=RunState.QUEUED, at=now)
        if stale:
            self._stale(run_id, records, stale, spec)
        return run_id, records

    def _check_pools(self, pipeline: Pipeline) -> None:
        for node in pipeline.graph:
            pool = node.task.spec.pool
            if pool is not None and pool not in self.pools:
                known = ", ".join(sorted(self.pools)) or "none"
                raise ConfigError(
                    f"task {node.task.name!r} (node {node.id!r} of pipeline "
                    f"{pipeline.name!r}) uses pool {pool!r}, which is not configured "
                    f"(pools: {known}); add `{pool} = 1` under [pools] in lockgate.toml"
                )

    def _stale(
        self, run_id: str, records: list[TaskRunRecord], stale: list[str], spec: RunSpec
    ) -> None:
        at = self.clock.now()
        message = "stale input: " + "; ".join(stale)
        if spec.pipeline.options.on_stale_input == "warn":
            self.metadata.record_warning(run_id, message, at)
            return
        reason = f"{message} (the pipeline's max_input_age); produce a fresh version first"
        self.metadata.set_task_state(
            run_id, [r.id for r in records], TaskState.SKIPPED, at, reason=reason
        )
        self.metadata.set_run_state(run_id, RunState.FAILED, at, error=reason)
        self.listener.on_run(run_id=run_id, state=RunState.FAILED, at=at, error=reason)
        if wants_hooks(spec.pipeline):
            params = spec.pipeline.params_to_json(spec.params)
            caller = HookCaller(self.metadata, self.clock, spec.pipeline, run_id, params)
            caller.run(RunState.FAILED, reason)

    def _resolve(
        self, ref: VersionRef, pins: Mapping[tuple[str, str], int]
    ) -> tuple[ResolvedVersion, float]:
        wanted = ref.version if ref.version is not None else pins.get((ref.kind, ref.name))
        found = self.metadata.resolve_version(ref.kind, ref.name, wanted)
        if found is None:
            which = f"version {wanted}" if wanted else "version yet"
            raise VersionNotFoundError(
                f"{ref.kind} {ref.name!r} has no {which}: run the pipeline that produces it "
                f"first (`lockgate {ref.kind}s list` shows what exists)"
            )
        resolved = ResolvedVersion(ref.kind, ref.name, ref.version, found.version, found.ref)
        return resolved, found.created_at

    def run(self, spec: RunSpec) -> tuple[str, RunState]:
        """Create a run and drive it to a terminal state."""
        run_id, records = self.create(spec)
        if self.metadata.get_run(run_id).status.terminal:
            return run_id, RunState.FAILED  # a stale input failed it before it started
        return run_id, self.drive(spec.pipeline, spec.params, run_id, records, spec.no_cache)

    def drive(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        run_id: str,
        records: list[TaskRunRecord],
        no_cache: bool = False,
    ) -> RunState:
        """Execute the run's nodes that have no committed result; record the final state.

        `records` must hold only committed (succeeded, cached) and pending task
        runs: a new run, or one just reset by `MetadataStore.resume_run`.
        """
        driver = Driver(self, pipeline, params, run_id, records, no_cache)
        with Heartbeat(self.metadata, run_id, self.clock, self.heartbeat_interval):
            return driver.drive()


def _stale_inputs(
    pipeline: Pipeline, resolved: list[tuple[ResolvedVersion, float]], now: float
) -> list[str]:
    limit = pipeline.options.max_input_age
    if limit is None:
        return []
    return [
        f"{v.kind}:{v.name}@{v.version} is {format_age(now - created)} old "
        f"(max_input_age {format_age(limit)})"
        for v, created in resolved
        if now - created > limit
    ]


def format_age(seconds: float) -> str:
    """A duration for messages: `3d 4h`, `5h 2m`, `12m`, `40s`."""
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"
