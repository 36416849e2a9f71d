"""The run coordinator: drives one run of one pipeline to a terminal state.

It keeps an in-memory view of the run (which nodes wait on what, what is in
flight, what retries are due), but every decision is written to the metadata
store *before* anything depends on it: a node is queued in the store before
it is submitted, its attempt is marked running before user code runs, and its
output, lineage and new state are committed in one fenced transaction.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.engine.ids import new_run_id
from lockgate.engine.inputs import MapWidthError, loads_in, map_item, map_width, resolve
from lockgate.engine.listener import NullListener, RunListener
from lockgate.engine.rules import decide
from lockgate.model.graph import Node
from lockgate.model.pipeline import Pipeline
from lockgate.model.states import RunState, TaskState
from lockgate.ports.artifacts import ArtifactRef
from lockgate.ports.clock import Clock, SystemClock
from lockgate.ports.executor import ErrorInfo, Executor, Finished, Invocation, Outcome, Started
from lockgate.ports.metadata import AttemptResult, MetadataStore, NewRun, TaskRunRecord


@dataclass(slots=True)
class _Unit:
    """One executable task run: a whole node, or one item of a map node."""

    node: Node
    tr_id: int
    index: int | None
    state: TaskState
    attempt: int = 0
    output: ArtifactRef | None = None


@dataclass(slots=True)
class _NodeView:
    node: Node
    tr_id: int
    state: TaskState
    waiting: int
    output: ArtifactRef | None = None
    items: list[_Unit] = field(default_factory=list)


@dataclass(slots=True)
class _Flight:
    unit: _Unit
    invocation: Invocation
    consumed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunSpec:
    """What to run: a pipeline, its bound parameters and who asked."""

    pipeline: Pipeline
    params: Mapping[str, Any]
    trigger: str
    run_id: str | None = None
    git_sha: str | None = None
    git_dirty: bool | None = None


class Coordinator:
    """Creates runs and drives them to completion through an executor."""

    def __init__(
        self,
        metadata: MetadataStore,
        executor: Executor,
        *,
        clock: Clock | None = None,
        listener: RunListener | None = None,
        rand: Callable[[], float] = random.random,
        heartbeat_interval: float = 5.0,
    ) -> None:
        """Wire the coordinator to its ports.

        Args:
            metadata: where every state change is committed.
            executor: where invocations run.
            clock: time source (tests inject one).
            listener: receives each committed change (progress display).
            rand: uniform [0, 1) samples for retry jitter.
            heartbeat_interval: seconds between run heartbeats.
        """
        self.metadata = metadata
        self.executor = executor
        self.clock = clock or SystemClock()
        self.listener = listener or NullListener()
        self.rand = rand
        self.heartbeat_interval = heartbeat_interval

    def create(self, spec: RunSpec) -> tuple[str, list[TaskRunRecord]]:
        """Record a new run with one pending task run per node; return its id."""
        graph = spec.pipeline.graph
        run_id = spec.run_id or new_run_id(self.clock.now())
        records = self.metadata.create_run(
            NewRun(
                run_id=run_id,
                pipeline=spec.pipeline.name,
                pipeline_version=graph.version,
                graph=graph.to_dict(),
                params=spec.pipeline.params_to_json(spec.params),
                trigger=spec.trigger,
                created_at=self.clock.now(),
                nodes=[(node.id, node.task.name) for node in graph],
                git_sha=spec.git_sha,
                git_dirty=spec.git_dirty,
            )
        )
        self.listener.on_run(run_id=run_id, state=RunState.QUEUED, at=self.clock.now())
        return run_id, records

    def run(self, spec: RunSpec) -> tuple[str, RunState]:
        """Create a run and drive it to a terminal state."""
        run_id, records = self.create(spec)
        return run_id, self.drive(spec.pipeline, spec.params, run_id, records)

    def drive(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        run_id: str,
        records: list[TaskRunRecord],
    ) -> RunState:
        """Execute the run's remaining nodes and record its final state."""
        return _Driver(self, pipeline, params, run_id, records).drive()


class _Driver:
    """The in-memory state of one run while the coordinator drives it."""

    def __init__(
        self,
        coordinator: Coordinator,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        run_id: str,
        records: list[TaskRunRecord],
    ) -> None:
        self.c = coordinator
        self.store = coordinator.metadata
        self.graph = pipeline.graph
        self.pipeline = pipeline
        self.params = params
        self.run_id = run_id
        whole = {r.node_id: r for r in records if r.map_index is None}
        self.nodes: dict[str, _NodeView] = {}
        for node in self.graph:
            record = whole[node.id]
            self.nodes[node.id] = _NodeView(node, record.id, record.state, 0, record.output)
        for node_id, view in self.nodes.items():
            view.waiting = sum(not self.nodes[u].state.done_ok for u in view.node.upstream)
            if view.node.mapped:
                view.items = [
                    _Unit(view.node, r.id, r.map_index, r.state, r.attempts, r.output)
                    for r in sorted(
                        (r for r in records if r.node_id == node_id and r.map_index is not None),
                        key=lambda r: r.map_index or 0,
                    )
                ]
        self.ready: deque[str] = deque(
            n for n, v in self.nodes.items() if v.waiting == 0 and v.state is TaskState.PENDING
        )
        self.flights: dict[str, _Flight] = {}
        self.retries: list[tuple[float, int, _Unit]] = []
        self._seq = itertools.count()
        self.first_failure: str | None = None

    # --- the loop ---------------------------------------------------------------

    def drive(self) -> RunState:
        clock = self.c.clock
        self._set_run(RunState.RUNNING)
        next_beat = clock.monotonic() + self.c.heartbeat_interval
        try:
            while True:
                self._launch_ready()
                self._launch_due_retries()
                if not self.flights and not self.retries and not self.ready:
                    break
                now = clock.monotonic()
                timeout = next_beat - now
                if self.retries:
                    timeout = min(timeout, self.retries[0][0] - now)
                for event in self.c.executor.poll(max(0.0, timeout)):
                    if isinstance(event, Started):
                        self._on_started(event)
                    elif isinstance(event, Finished):
                        self._on_finished(event.outcome)
                if clock.monotonic() >= next_beat:
                    self.store.heartbeat(self.run_id, clock.now())
                    next_beat = clock.monotonic() + self.c.heartbeat_interval
        except KeyboardInterrupt:
            self._cancel()
            raise
        final = (
            RunState.SUCCEEDED
            if all(v.state.done_ok for v in self.nodes.values())
            else RunState.FAILED
        )
        self._set_run(final, error=None if final is RunState.SUCCEEDED else self.first_failure)
        return final

    def _set_run(self, state: RunState, error: str | None = None) -> None:
        at = self.c.clock.now()
        self.store.set_run_state(self.run_id, state, at, error=error)
        self.c.listener.on_run(run_id=self.run_id, state=state, at=at, error=error)

    def _notify(
        self,
        unit_node: str,
        index: int | None,
        state: TaskState,
        attempt: int,
        error: str | None = None,
    ) -> None:
        self.c.listener.on_task(
            run_id=self.run_id,
            node_id=unit_node,
            map_index=index,
            state=state,
            attempt=attempt,
            at=self.c.clock.now(),
            error=error,
        )

    # --- launching ----------------------------------------------------------------

    def _output_of(self, node_id: str) -> ArtifactRef | list[ArtifactRef]:
        view = self.nodes[node_id]
        if view.node.mapped:
            return [item.output for item in view.items if item.output is not None]
        assert view.output is not None, f"node {node_id} has no committed output"
        return view.output

    def _launch_ready(self) -> None:
        batch: list[tuple[_Unit, Invocation]] = []
        while self.ready:
            view = self.nodes[self.ready.popleft()]
            if view.node.mapped:
                batch.extend(self._expand(view))
            else:
                unit = _Unit(view.node, view.tr_id, None, view.state)
                batch.append((unit, self._invocation(unit, attempt=1)))
        self._submit(batch)

    def _expand(self, view: _NodeView) -> list[tuple[_Unit, Invocation]]:
        at = self.c.clock.now()
        try:
            width = map_width(view.node, self._output_of, self.params)
        except MapWidthError as exc:
            self._fail_node(view, str(exc), at)
            return []
        if not view.items:
            records = self.store.expand_map(
                self.run_id, view.node.id, view.node.task.name, width, at
            )
            view.items = [_Unit(view.node, r.id, r.map_index, r.state) for r in records]
        if not view.items:
            self._succeed_node(view, at)
            return []
        self._set_nodes([view], TaskState.RUNNING, at)
        return [
            (item, self._invocation(item, attempt=1))
            for item in view.items
            if item.state is TaskState.PENDING
        ]

    def _invocation(self, unit: _Unit, attempt: int) -> Invocation:
        node = unit.node
        args = resolve(node.args, self._output_of, self.params)
        if unit.index is not None:
            first = map_item(node, unit.index, self._output_of, self.params)
            args = (first, *args[1:])
        return Invocation(
            run_id=self.run_id,
            pipeline=self.pipeline.name,
            node_id=node.id,
            map_index=unit.index,
            task_run_id=unit.tr_id,
            attempt=attempt,
            task=node.task,
            args=tuple(args),
            kwargs=resolve(dict(node.kwargs), self._output_of, self.params),
            timeout=node.task.spec.timeout,
        )

    def _submit(self, batch: list[tuple[_Unit, Invocation]]) -> None:
        if not batch:
            return
        self.store.queue_attempts(
            self.run_id, [(unit.tr_id, inv.attempt) for unit, inv in batch], self.c.clock.now()
        )
        for unit, invocation in batch:
            unit.state = TaskState.QUEUED
            unit.attempt = invocation.attempt
            consumed = tuple(
                load.ref.sha256 for load in loads_in((invocation.args, invocation.kwargs))
            )
            self.flights[invocation.key] = _Flight(unit, invocation, consumed)
            self._notify(unit.node.id, unit.index, TaskState.QUEUED, invocation.attempt)
            self.c.executor.submit(invocation)

    def _launch_due_retries(self) -> None:
        now = self.c.clock.monotonic()
        batch = []
        while self.retries and self.retries[0][0] <= now:
            _, _, unit = heapq.heappop(self.retries)
            batch.append((unit, self._invocation(unit, attempt=unit.attempt + 1)))
        self._submit(batch)

    # --- executor events --------------------------------------------------------

    def _on_started(self, event: Started) -> None:
        flight = self.flights.get(event.key)
        if flight is None:
            return
        unit = flight.unit
        if self.store.start_attempt(self.run_id, unit.tr_id, unit.attempt, event.at):
            unit.state = TaskState.RUNNING
            self._notify(unit.node.id, unit.index, TaskState.RUNNING, unit.attempt)

    def _on_finished(self, outcome: Outcome) -> None:
        flight = self.flights.pop(outcome.key, None)
        if flight is None:
            return  # a late result for an attempt this driver no longer tracks
        unit = flight.unit
        policy = unit.node.task.spec.retry
        decision = decide(policy, unit.attempt, outcome, self.c.rand())
        error = outcome.error
        if outcome.timed_out and error is None:
            error = ErrorInfo(
                type="lockgate.Timeout",
                message=f"timed out after {unit.node.task.spec.timeout:g} s",
                retryable=True,
                user=False,
            )
        retry_at = (
            outcome.finished_at + decision.delay
            if decision.task_state is TaskState.RETRYING
            else None
        )
        applied = self.store.finish_attempt(
            self.run_id,
            AttemptResult(
                task_run_id=unit.tr_id,
                attempt=unit.attempt,
                attempt_state=decision.attempt_state,
                task_state=decision.task_state,
                finished_at=outcome.finished_at,
                started_at=outcome.started_at,
                output=outcome.output if outcome.ok else None,
                consumed=flight.consumed,
                error=error,
                retry_at=retry_at,
            ),
        )
        if not applied:
            return
        unit.state = decision.task_state
        summary = error.summary() if error else None
        self._notify(unit.node.id, unit.index, decision.task_state, unit.attempt, summary)
        view = self.nodes[unit.node.id]
        at = self.c.clock.now()
        if decision.task_state is TaskState.SUCCEEDED:
            unit.output = outcome.output
            if unit.index is None:
                view.state, view.output = TaskState.SUCCEEDED, outcome.output
                self._release(view)
            elif all(item.state.done_ok for item in view.items):
                self._succeed_node(view, at)
        elif decision.task_state is TaskState.RETRYING:
            due = self.c.clock.monotonic() + decision.delay
            heapq.heappush(self.retries, (due, next(self._seq), unit))
        else:
            where = unit.node.id if unit.index is None else f"{unit.node.id}[{unit.index}]"
            reason = f"node {where!r} failed after {unit.attempt} attempt(s): {summary}"
            if unit.index is None:
                view.state = TaskState.FAILED
                self._after_failure(view, reason, at)
            elif view.state is not TaskState.FAILED:
                self._fail_node(view, reason, at)

    # --- node transitions ---------------------------------------------------------

    def _set_nodes(
        self, views: list[_NodeView], state: TaskState, at: float, reason: str | None = None
    ) -> None:
        self.store.set_task_state(self.run_id, [v.tr_id for v in views], state, at, reason=reason)
        for view in views:
            view.state = state
            self._notify(view.node.id, None, state, 0, reason)

    def _succeed_node(self, view: _NodeView, at: float) -> None:
        self._set_nodes([view], TaskState.SUCCEEDED, at)
        self._release(view)

    def _fail_node(self, view: _NodeView, reason: str, at: float) -> None:
        self._set_nodes([view], TaskState.FAILED, at, reason)
        self._after_failure(view, reason, at)

    def _after_failure(self, view: _NodeView, reason: str, at: float) -> None:
        if self.first_failure is None:
            self.first_failure = reason
        doomed = [
            self.nodes[d]
            for d in self.graph.descendants(view.node.id)
            if not self.nodes[d].state.terminal
        ]
        if doomed:
            self._set_nodes(doomed, TaskState.SKIPPED, at, f"upstream node {view.node.id!r} failed")

    def _release(self, view: _NodeView) -> None:
        for down in self.graph.downstream(view.node.id):
            other = self.nodes[down]
            other.waiting -= 1
            if other.waiting == 0 and other.state is TaskState.PENDING:
                self.ready.append(down)

    def _cancel(self) -> None:
        at = self.c.clock.now()
        open_ids = [v.tr_id for v in self.nodes.values() if not v.state.terminal]
        open_ids += [
            item.tr_id for v in self.nodes.values() for item in v.items if not item.state.terminal
        ]
        self.store.set_task_state(
            self.run_id, open_ids, TaskState.CANCELLED, at, reason="cancelled by the user"
        )
        self._set_run(RunState.CANCELLED, error="cancelled by the user")
