"""The run driver: takes one run to a terminal state.

It keeps an in-memory view of one run (what waits on what, what is in flight,
which retries are due) and writes every decision to the metadata store before
anything depends on it. Decisions gather in a `WriteBatch` that is committed
in one transaction *before* the next submission to the executor, so a node is
durably queued before any worker can run it, and a finished attempt, its
cache bookkeeping and the queueing of the nodes it releases cost one commit.
Attempt starts, and results that release nothing, may wait up to HOLD_DELAY
for more of their kind while other attempts are in flight (a fan-out's
results share commits), as long as redoing the held attempts would take less
than HOLD_DELAY: nothing waits on them, and a crash meanwhile only reruns
attempts that are already on record. If a commit is fenced (another
coordinator resumed the run), this driver stops.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lockgate import failpoints
from lockgate.engine.cache import cache_inputs, cache_key
from lockgate.engine.canary import abort, run_canary
from lockgate.engine.hooks import HookCaller, wants_hooks
from lockgate.engine.inputs import MapWidthError, loads_in, map_item, map_width, resolve
from lockgate.engine.rules import decide
from lockgate.engine.system import RUNNERS, SystemContext
from lockgate.model.graph import Node
from lockgate.model.pipeline import Pipeline
from lockgate.model.states import AttemptState, EventKind, RunState, TaskState
from lockgate.model.versions import VersionRef
from lockgate.ports.artifacts import ArtifactRef
from lockgate.ports.executor import ErrorInfo, Finished, Invocation, Outcome, Started
from lockgate.ports.metadata import (
    AttemptResult,
    CachedItem,
    QueueItem,
    StartItem,
    TaskRunRecord,
    WriteBatch,
)

if TYPE_CHECKING:
    from lockgate.engine.coordinator import Coordinator

#: How long attempt starts, and results that release no node, may wait to share a commit.
HOLD_DELAY = 0.1

#: How many such results one commit takes at most.
MAX_HELD_RESULTS = 256

#: How often a run with tasks waiting for a pool slot asks for one again.
POOL_POLL_INTERVAL = 0.2

_RUNNERS = {**RUNNERS, "canary": run_canary}


@dataclass(slots=True)
class _Unit:
    """One executable task run: a whole node, or one item of a map node."""

    node: Node
    tr_id: int
    index: int | None
    state: TaskState
    attempt: int = 0
    base: int = 0  # attempts made before this drive; the retry budget starts here
    output: ArtifactRef | None = None


@dataclass(slots=True)
class _NodeView:
    node: Node
    unit: _Unit  # the whole node's task run (for a map node: its parent row)
    waiting: int
    items: list[_Unit] = field(default_factory=list)
    items_done: int = 0

    @property
    def state(self) -> TaskState:
        return self.unit.state


@dataclass(slots=True)
class _Flight:
    unit: _Unit
    invocation: Invocation
    consumed: tuple[str, ...]


class Driver:
    """The in-memory state of one run while the coordinator drives it."""

    def __init__(
        self,
        coordinator: Coordinator,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        run_id: str,
        records: list[TaskRunRecord],
        no_cache: bool,
    ) -> None:
        self.c = coordinator
        self.store = coordinator.metadata
        self.graph = pipeline.graph
        self.pipeline = pipeline
        self.params = params
        self.run_id = run_id
        self.no_cache = no_cache
        self.versions: dict[VersionRef, ArtifactRef] = (
            {
                VersionRef(v.kind, v.name, v.requested): v.ref
                for v in coordinator.metadata.run_versions(run_id)
            }
            if self.graph.versions
            else {}
        )
        self.waiting: dict[int, _Unit] = {}
        # System nodes that keep running without a worker (canaries): task run id ->
        # (when to look again, monotonic; the unit; when its attempt started).
        self.watching: dict[int, tuple[float, _Unit, float]] = {}
        self.gate_failures: set[str] = set()
        self.failures: set[str] = set()
        self.batch = WriteBatch(at=0.0)
        self.to_submit: list[Invocation] = []
        # Queued invocations of pooled tasks, submitted once a slot is taken.
        self.pool_waiting: list[Invocation] = []
        self.flights: dict[str, _Flight] = {}
        self.retries: list[tuple[float, int, _Unit]] = []
        self._seq = itertools.count()
        self.first_failure: str | None = None
        self._hold_due = 0.0  # when held starts and results must commit (monotonic)
        self._held_work = 0.0  # seconds the held results' attempts ran: what a crash loses
        # None for the (usual) run without hooks: the hot path only tests for it.
        self.hooks = (
            HookCaller(
                self.store, coordinator.clock, pipeline, run_id, pipeline.params_to_json(params)
            )
            if wants_hooks(pipeline)
            else None
        )
        self.sla_deadline = self._sla_deadline()
        self.nodes: dict[str, _NodeView] = {}
        self.units: dict[int, _Unit] = {}
        by_node: dict[str, list[TaskRunRecord]] = {}
        for record in records:
            by_node.setdefault(record.node_id, []).append(record)
        for node in self.graph:
            rows = by_node[node.id]
            whole = next(r for r in rows if r.map_index is None)
            view = _NodeView(node, self._unit(node, whole), 0)
            view.items = sorted(
                (self._unit(node, r) for r in rows if r.map_index is not None),
                key=lambda u: u.index or 0,
            )
            view.items_done = sum(item.state.done_ok for item in view.items)
            self.nodes[node.id] = view
            self.units[view.unit.tr_id] = view.unit
            self.units.update((item.tr_id, item) for item in view.items)
        for view in self.nodes.values():
            view.waiting = sum(
                not self.nodes[u].state.done_ok for u in self.graph.upstream(view.node.id)
            )
        self.ready: deque[str] = deque(
            n for n, v in self.nodes.items() if v.waiting == 0 and v.state is TaskState.PENDING
        )

    def _sla_deadline(self) -> float | None:
        """When the run misses its SLA, or None (no SLA, or already recorded as missed)."""
        sla = self.pipeline.options.sla
        if sla is None:
            return None
        if any(e.kind is EventKind.SLA_MISSED for e in self.store.events(self.run_id)):
            return None  # recorded by an earlier drive of this run (before a resume)
        return self.store.get_run(self.run_id).created_at + sla

    def _check_sla(self, finished: bool = False) -> None:
        """Record `sla_missed` once, when the deadline passed (running or finished late)."""
        deadline = self.sla_deadline
        if deadline is None:
            return
        now = self.c.clock.now()
        if now < deadline:
            return
        self.sla_deadline = None
        self.store.record_event(
            self.run_id,
            EventKind.SLA_MISSED,
            now,
            payload={
                "sla_s": self.pipeline.options.sla,
                "deadline": deadline,
                "finished": finished,
            },
        )

    @staticmethod
    def _unit(node: Node, record: TaskRunRecord) -> _Unit:
        return _Unit(
            node,
            record.id,
            record.map_index,
            record.state,
            record.attempts,
            record.attempts,
            record.output,
        )

    # --- the loop ---------------------------------------------------------------

    def drive(self) -> RunState:
        clock = self.c.clock
        self._set_run(RunState.RUNNING)
        next_cancel_check = clock.monotonic() + self.c.cancel_check_interval
        try:
            while True:
                self._launch_ready()
                self._launch_due_retries()
                if self.watching:
                    self._look_again()
                self._maybe_flush()
                if self.pool_waiting:
                    self._take_slots()
                if not self.flights and not self.retries and not self.ready and not self.watching:
                    break
                timeout = next_cancel_check - clock.monotonic()
                if self.pool_waiting:
                    timeout = min(timeout, POOL_POLL_INTERVAL)
                if self.watching:
                    due = min(d for d, _, _ in self.watching.values())
                    timeout = min(timeout, due - clock.monotonic())
                if self.retries:
                    timeout = min(timeout, self.retries[0][0] - clock.monotonic())
                if self.batch.starts or self.batch.finishes:
                    timeout = min(timeout, self._hold_due - clock.monotonic())
                for event in self.c.executor.poll(max(0.0, timeout)):
                    if isinstance(event, Started):
                        self._on_started(event)
                    elif isinstance(event, Finished):
                        self._on_finished(event.outcome)
                if clock.monotonic() >= next_cancel_check:
                    next_cancel_check = clock.monotonic() + self.c.cancel_check_interval
                    self._check_sla()
                    if self.waiting:
                        self._poll_approvals()
                    if self.store.cancel_requested(self.run_id):
                        self._flush()
                        self._cancel("cancelled on request (lockgate cancel)")
                        return RunState.CANCELLED
        except KeyboardInterrupt:
            self._cancel("cancelled by the user (Ctrl-C)")
            raise
        if self.waiting:
            final = RunState.WAITING
        elif all(v.state.done_ok for v in self.nodes.values()):
            final = RunState.SUCCEEDED
        elif self.failures and self.failures <= self.gate_failures:
            final = RunState.GATE_FAILED
        else:
            final = RunState.FAILED
        error = None
        if final is RunState.WAITING:
            nodes = ", ".join(sorted(u.node.id for u in self.waiting.values()))
            error = f"waiting for approval at {nodes} (lockgate approve {self.run_id} NODE)"
        elif final is not RunState.SUCCEEDED:
            error = self.first_failure
        self._set_run(final, error=error)
        return final

    def _take_slots(self) -> None:
        """Submit pooled invocations whose pool has a free slot, in queue order."""
        now = self.c.clock.now()
        stale_before = now - self.c.stale_after
        still: list[Invocation] = []
        for invocation in self.pool_waiting:
            pool = invocation.task.spec.pool
            assert pool is not None
            took = self.store.acquire_slot(
                pool,
                self.c.pools[pool],
                invocation.task_run_id,
                self.run_id,
                now,
                stale_before,
            )
            if took:
                self.c.executor.submit(invocation)
            else:
                still.append(invocation)
        self.pool_waiting = still

    def _maybe_flush(self) -> None:
        """Flush now unless the batch holds only starts and results that can wait a little.

        A start on its own changes nothing anything depends on; holding it back
        for up to HOLD_DELAY lets it share a commit with the attempt's end, so a
        short task costs one commit instead of two. A result that released no
        node (a fan-out's branches before the last) may likewise wait for the
        results of the attempts still in flight. Queueing, submissions, cache
        hits, pool slots and system decisions are never held back, and nothing
        is held once nothing else is in flight.
        """
        if self._must_flush():
            self._flush()

    def _must_flush(self) -> bool:
        batch = self.batch
        if (
            batch.queues
            or self.to_submit
            or batch.cached
            or batch.releases
            or batch.gate_decisions
            or batch.registrations
            or batch.alias_moves
        ):
            return True
        if batch.finishes and (
            not self.flights
            or len(batch.finishes) >= MAX_HELD_RESULTS
            # The inline executor runs the next task inside poll(): with a long
            # one, held results wait for it, so what they cost to redo is bounded.
            or self._held_work >= HOLD_DELAY
        ):
            return True
        held = batch.starts or batch.finishes
        return bool(held) and self.c.clock.monotonic() >= self._hold_due

    def _flush(self) -> None:
        """Commit pending decisions, then hand queued invocations to the executor."""
        if self.batch:
            self.batch.at = self.c.clock.now()
            self.store.commit(self.run_id, self.batch)
            self._announce(self.batch)
            self.batch = WriteBatch(at=0.0)
            self._held_work = 0.0
        for invocation in self.to_submit:
            if invocation.task.spec.pool is None:
                self.c.executor.submit(invocation)
            else:
                self.pool_waiting.append(invocation)  # submitted by _take_slots
        self.to_submit.clear()

    def _announce(self, batch: WriteBatch) -> None:
        # Listeners hear about changes only once they are committed.
        units = self.units
        for start in batch.starts:
            self._notify(units[start.task_run_id], TaskState.RUNNING, start.attempt)
        for result in batch.finishes:
            error = result.error.summary() if result.error else None
            self._notify(units[result.task_run_id], result.task_state, result.attempt, error)
        for item in batch.cached:
            self._notify(units[item.task_run_id], TaskState.CACHED, units[item.task_run_id].attempt)
        for queue in batch.queues:
            self._notify(units[queue.task_run_id], TaskState.QUEUED, queue.attempt)

    def _set_run(self, state: RunState, error: str | None = None) -> None:
        at = self.c.clock.now()
        if state.terminal or state is RunState.WAITING:
            self._check_sla(finished=state.terminal)
        self.store.set_run_state(self.run_id, state, at, error=error)
        self.c.listener.on_run(run_id=self.run_id, state=state, at=at, error=error)
        if self.hooks is not None:
            self.hooks.run(state, error)

    def _notify(
        self, unit: _Unit, state: TaskState, attempt: int, error: str | None = None
    ) -> None:
        self.c.listener.on_task(
            run_id=self.run_id,
            node_id=unit.node.id,
            map_index=unit.index,
            state=state,
            attempt=attempt,
            at=self.c.clock.now(),
            error=error,
        )
        if self.hooks is not None:
            gate_failed = state is TaskState.FAILED and unit.node.id in self.gate_failures
            self.hooks.task(
                unit.node.id, unit.index, unit.tr_id, state, attempt, error, gate_failed
            )

    # --- launching ----------------------------------------------------------------

    def _output_of(self, node_id: str) -> ArtifactRef | list[ArtifactRef]:
        view = self.nodes[node_id]
        if view.node.mapped:
            return [item.output for item in view.items if item.output is not None]
        assert view.unit.output is not None, f"node {node_id} has no committed output"
        return view.unit.output

    def _launch_ready(self) -> None:
        while self.ready:
            view = self.nodes[self.ready.popleft()]
            if view.node.mapped:
                self._expand(view)
            else:
                self._launch(view.unit)

    def _expand(self, view: _NodeView) -> None:
        self._flush()  # the upstream result that made this node ready commits first
        at = self.c.clock.now()
        try:
            width = map_width(view.node, self._output_of, self.params, self.versions)
        except MapWidthError as exc:
            self._fail_node(view, str(exc), at)
            return
        if not view.items:
            records = self.store.expand_map(
                self.run_id, view.node.id, view.node.task.name, width, at
            )
            view.items = [self._unit(view.node, r) for r in records]
            view.items_done = sum(item.state.done_ok for item in view.items)
            self.units.update((item.tr_id, item) for item in view.items)
        if view.items_done == len(view.items):
            self._succeed_node(view, at)
            return
        self._set_nodes([view], TaskState.RUNNING, at)
        for item in view.items:
            if item.state is TaskState.PENDING:
                self._launch(item)

    def _launch(self, unit: _Unit, *, lookup: bool = True) -> None:
        """Queue the unit's next attempt, or serve it from the cache if `lookup` finds a hit.

        The cache key is recorded with every attempt of a task with caching on,
        so later runs (and `lockgate explain`) can match against it.
        """
        if unit.node.task.spec.system is not None:
            self._run_system(unit)
            return
        invocation = self._invocation(unit, attempt=unit.attempt + 1)
        policy = unit.node.task.spec.cache
        key = inputs = None
        if policy is not None:
            inputs = cache_inputs(unit.node.task, invocation.args, invocation.kwargs)
            key = cache_key(inputs)
            if lookup and not self.no_cache:
                not_before = None if policy.expire is None else self.c.clock.now() - policy.expire
                hit = self.store.find_cached(key, not_before=not_before)
                if hit is not None:
                    consumed = tuple(
                        load.ref.sha256 for load in loads_in((invocation.args, invocation.kwargs))
                    )
                    self.batch.cached.append(CachedItem(unit.tr_id, hit, key, inputs, consumed))
                    unit.state, unit.output = TaskState.CACHED, hit.output
                    self._unit_done(unit, self.c.clock.now())
                    return
        self._queue(unit, invocation, key, inputs)

    def _system_context(self) -> SystemContext:
        artifacts = self.c.artifacts
        if artifacts is None:
            raise RuntimeError("system nodes need Coordinator(artifacts=...)")
        return SystemContext(self.store, artifacts, self.run_id, self.graph.nodes, self.c.clock)

    def _run_system(self, unit: _Unit) -> None:
        """Decide a gate, register, promote, approval or canary node here, in the coordinator."""
        context = self._system_context()
        artifacts = context.artifacts
        kind = unit.node.task.spec.system
        assert kind is not None
        self._flush()  # decisions read the registry: what upstream nodes wrote commits first
        watched = self.watching.pop(unit.tr_id, None)
        # A watching node's attempt is already running: later looks belong to it.
        attempt = unit.attempt if watched is not None else unit.attempt + 1
        invocation = self._invocation(unit, attempt=attempt)
        result = _RUNNERS[kind](context, unit.node, invocation, unit.tr_id)
        if result.waiting:
            if unit.state is not TaskState.WAITING:
                message = invocation.args[0] if invocation.args else unit.node.id
                self._set_unit(unit, TaskState.WAITING, f"waiting for approval: {message}")
            self.waiting[unit.tr_id] = unit
            return
        self.waiting.pop(unit.tr_id, None)
        if watched is None:
            # The queueing commits first: the attempt's start is fenced on it.
            self.batch.queues.append(QueueItem(unit.tr_id, invocation.attempt))
            unit.state, unit.attempt = TaskState.QUEUED, invocation.attempt
            self._flush()
            started = self.c.clock.now()
            self.batch.starts.append(StartItem(unit.tr_id, unit.attempt, started))
        else:
            started = watched[2]
        if result.watch is not None:
            if watched is None:
                self._flush()
                unit.state = TaskState.RUNNING
            self._record_events(unit, result.events)
            due = self.c.clock.monotonic() + result.watch
            self.watching[unit.tr_id] = (due, unit, started)
            return
        self._record_events(unit, result.events)
        now = self.c.clock.now()
        output = result.output
        if result.error is None and output is None and result.small_output is not None:
            output = artifacts.put(result.small_output, what=f"output of node {unit.node.id!r}")
        self.batch.gate_decisions.extend(result.decisions)
        self.batch.registrations.extend(result.registrations)
        self.batch.alias_moves.extend(result.alias_moves)
        if result.gate_failed:
            self.gate_failures.add(unit.node.id)
        consumed = tuple(load.ref.sha256 for load in loads_in((invocation.args, invocation.kwargs)))
        self.flights[invocation.key] = _Flight(unit, invocation, consumed)
        self._on_finished(Outcome(invocation.key, started, now, output=output, error=result.error))

    def _record_events(self, unit: _Unit, events: list[tuple[EventKind, dict[str, Any]]]) -> None:
        if events:
            self._flush()  # after the attempt's own rows, in trace order
        for kind, payload in events:
            self.store.record_event(
                self.run_id,
                kind,
                self.c.clock.now(),
                task_run_id=unit.tr_id,
                attempt=unit.attempt,
                payload=payload,
            )

    def _look_again(self) -> None:
        """Decide the watching nodes whose next look is due."""
        now = self.c.clock.monotonic()
        for tr_id in [tr for tr, (due, _, _) in self.watching.items() if due <= now]:
            self._run_system(self.watching[tr_id][1])

    def _poll_approvals(self) -> None:
        decided = {a.task_run_id for a in self.store.approvals(self.run_id)}
        for tr_id in [tr for tr in self.waiting if tr in decided]:
            self._run_system(self.waiting[tr_id])

    def _set_unit(self, unit: _Unit, state: TaskState, reason: str) -> None:
        self._flush()
        self.store.set_task_state(
            self.run_id, [unit.tr_id], state, self.c.clock.now(), reason=reason
        )
        unit.state = state
        self._notify(unit, state, unit.attempt, reason)

    def _queue(
        self, unit: _Unit, invocation: Invocation, key: str | None, inputs: dict[str, Any] | None
    ) -> None:
        self.batch.queues.append(QueueItem(unit.tr_id, invocation.attempt, key, inputs))
        unit.state = TaskState.QUEUED
        unit.attempt = invocation.attempt
        consumed = tuple(load.ref.sha256 for load in loads_in((invocation.args, invocation.kwargs)))
        self.flights[invocation.key] = _Flight(unit, invocation, consumed)
        self.to_submit.append(invocation)

    def _invocation(self, unit: _Unit, attempt: int) -> Invocation:
        node = unit.node
        args = resolve(node.args, self._output_of, self.params, self.versions)
        if unit.index is not None:
            first = map_item(node, unit.index, self._output_of, self.params, self.versions)
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
            kwargs=resolve(dict(node.kwargs), self._output_of, self.params, self.versions),
            timeout=node.task.spec.timeout,
        )

    def _launch_due_retries(self) -> None:
        now = self.c.clock.monotonic()
        while self.retries and self.retries[0][0] <= now:
            _, _, unit = heapq.heappop(self.retries)
            self._launch(unit, lookup=False)  # a retry is decided: no cache lookup

    # --- executor events --------------------------------------------------------

    def _on_started(self, event: Started) -> None:
        flight = self.flights.get(event.key)
        if flight is None:
            return
        unit = flight.unit
        self._hold()
        self.batch.starts.append(StartItem(unit.tr_id, unit.attempt, event.at, event.log))
        unit.state = TaskState.RUNNING

    def _hold(self) -> None:
        """Start the HOLD_DELAY clock if the batch holds no start or result yet."""
        if not self.batch.starts and not self.batch.finishes:
            self._hold_due = self.c.clock.monotonic() + HOLD_DELAY

    def _on_finished(self, outcome: Outcome) -> None:
        flight = self.flights.pop(outcome.key, None)
        if flight is None:
            return  # a late result for an attempt this driver no longer tracks
        unit = flight.unit
        failpoints.hit("task.after_return_before_commit", flight.invocation.label)
        spec = unit.node.task.spec
        if spec.pool is not None:
            self.batch.releases.append(unit.tr_id)
        decision = decide(spec.retry, unit.attempt - unit.base, outcome, self.c.rand())
        error = outcome.error
        if outcome.timed_out and error is None:
            error = ErrorInfo(
                type="lockgate.Timeout",
                message=f"timed out after {spec.timeout:g} s",
                retryable=True,
                user=False,
            )
        retrying = decision.task_state is TaskState.RETRYING
        self._hold()
        self._held_work += max(0.0, outcome.finished_at - outcome.started_at)
        self.batch.finishes.append(
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
                retry_at=outcome.finished_at + decision.delay if retrying else None,
                log=outcome.log,
                named=outcome.named if outcome.ok else None,
            )
        )
        unit.state = decision.task_state
        at = self.c.clock.now()
        if decision.task_state is TaskState.SUCCEEDED:
            unit.output = outcome.output
            self._unit_done(unit, at)
        elif retrying:
            due = self.c.clock.monotonic() + decision.delay
            heapq.heappush(self.retries, (due, next(self._seq), unit))
        else:
            view = self.nodes[unit.node.id]
            where = unit.node.id if unit.index is None else f"{unit.node.id}[{unit.index}]"
            summary = error.summary() if error else "unknown error"
            reason = f"node {where!r} failed after {unit.attempt} attempt(s): {summary}"
            if unit.index is None:
                self._after_failure(view, reason, at)
            elif view.state is not TaskState.FAILED:
                self._fail_node(view, reason, at)

    # --- node transitions ---------------------------------------------------------

    def _unit_done(self, unit: _Unit, at: float) -> None:
        view = self.nodes[unit.node.id]
        if unit.index is None:
            self._release(view)
            return
        view.items_done += 1
        if view.items_done == len(view.items) and view.state is not TaskState.FAILED:
            self._succeed_node(view, at)

    def _set_nodes(
        self, views: list[_NodeView], state: TaskState, at: float, reason: str | None = None
    ) -> None:
        self._flush()  # keep the event order: batched item results come first
        self.store.set_task_state(
            self.run_id, [v.unit.tr_id for v in views], state, at, reason=reason
        )
        for view in views:
            view.unit.state = state
            self._notify(view.unit, state, 0, reason)

    def _succeed_node(self, view: _NodeView, at: float) -> None:
        self._set_nodes([view], TaskState.SUCCEEDED, at)
        self._release(view)

    def _fail_node(self, view: _NodeView, reason: str, at: float) -> None:
        self._set_nodes([view], TaskState.FAILED, at, reason)
        self._after_failure(view, reason, at)

    def _after_failure(self, view: _NodeView, reason: str, at: float) -> None:
        self.failures.add(view.node.id)
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

    def _cancel(self, reason: str) -> None:
        """Stop everything in flight, keep what finished, record the run as cancelled."""
        for invocation in self.pool_waiting:  # never submitted: nothing to stop
            self.flights.pop(invocation.key, None)
        self.pool_waiting.clear()
        for key in list(self.flights):
            self.c.executor.cancel(key)
        # The executor reports every cancelled invocation (after killing its
        # worker's process group); an attempt that finished meanwhile keeps its result.
        while self.flights:
            for event in self.c.executor.poll(0.2):
                if isinstance(event, Started):
                    self._on_started(event)
                elif isinstance(event, Finished):
                    self._on_cancelled(event.outcome)
        self._stop_watching(reason)
        self.retries.clear()
        self.ready.clear()
        self.to_submit.clear()
        self._flush()
        at = self.c.clock.now()
        open_ids = [v.unit.tr_id for v in self.nodes.values() if not v.state.terminal]
        open_ids += [
            item.tr_id for v in self.nodes.values() for item in v.items if not item.state.terminal
        ]
        self.store.set_task_state(self.run_id, open_ids, TaskState.CANCELLED, at, reason=reason)
        for unit_id in open_ids:
            unit = self.units[unit_id]
            unit.state = TaskState.CANCELLED
            self._notify(unit, TaskState.CANCELLED, unit.attempt, reason)
        self._set_run(RunState.CANCELLED, error=reason)

    def _stop_watching(self, reason: str) -> None:
        """Cancel the watching canaries: their route goes back, their attempt ends cancelled."""
        context = self._system_context()
        now = self.c.clock.now()
        for _, unit, started in self.watching.values():
            abort(context, unit.node, self._invocation(unit, unit.attempt), reason)
            unit.state = TaskState.CANCELLED
            self.batch.finishes.append(
                AttemptResult(
                    task_run_id=unit.tr_id,
                    attempt=unit.attempt,
                    attempt_state=AttemptState.CANCELLED,
                    task_state=TaskState.CANCELLED,
                    finished_at=now,
                    started_at=started,
                    error=ErrorInfo("lockgate.Cancelled", reason, retryable=False, user=False),
                )
            )
        self.watching.clear()

    def _on_cancelled(self, outcome: Outcome) -> None:
        flight = self.flights.pop(outcome.key, None)
        if flight is None:
            return
        unit = flight.unit
        if unit.node.task.spec.pool is not None:
            self.batch.releases.append(unit.tr_id)
        ok = outcome.ok
        unit.state = TaskState.SUCCEEDED if ok else TaskState.CANCELLED
        if ok:
            unit.output = outcome.output
        self.batch.finishes.append(
            AttemptResult(
                task_run_id=unit.tr_id,
                attempt=unit.attempt,
                attempt_state=AttemptState.SUCCEEDED if ok else AttemptState.CANCELLED,
                task_state=unit.state,
                finished_at=outcome.finished_at,
                started_at=outcome.started_at,
                output=outcome.output if ok else None,
                consumed=flight.consumed,
                error=None if ok else outcome.error,
                log=outcome.log,
                named=outcome.named if ok else None,
            )
        )
