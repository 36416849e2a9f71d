"""The contract every `MetadataStore` implementation passes.

Subclass `MetadataStoreContract` in a test module and provide a `store`
fixture returning a fresh, empty store. The tests use only the port.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any

import pytest

from lockgate.errors import (
    FencedError,
    RunExistsError,
    RunNotFoundError,
    RunStateError,
    UsageError,
)
from lockgate.model.chain import GENESIS, event_hash
from lockgate.model.states import AttemptState, EventKind, RunState, TaskState
from lockgate.ports.artifacts import ArtifactRef
from lockgate.ports.executor import ErrorInfo, LogSpan, NamedOutput
from lockgate.ports.metadata import (
    ArtifactRecord,
    AttemptResult,
    CachedItem,
    GateDecision,
    MetadataStore,
    NewRun,
    QueueItem,
    Registration,
    StartItem,
    TaskRunRecord,
    WriteBatch,
)
from lockgate.testing.alert_contract import AlertStoreContract
from lockgate.testing.audit_contract import AuditStoreContract
from lockgate.testing.route_contract import RouteStoreContract

T0 = 1_790_000_000.0


def ref(content: str) -> ArtifactRef:
    """A small inline artifact ref for `content`."""
    data = content.encode()
    return ArtifactRef(
        hashlib.sha256(data).hexdigest(), "bytes", len(data), "builtins.bytes", inline=data
    )


def new_run(
    run_id: str = "r-1",
    pipeline: str = "nightly",
    nodes: Any = None,
    *,
    trigger_key: str | None = None,
    logical_date: float | None = None,
    created_at: float = T0,
) -> NewRun:
    """A run of a three-node chain a -> b -> c."""
    return NewRun(
        run_id=run_id,
        pipeline=pipeline,
        pipeline_version="v" * 64,
        graph={"pipeline": pipeline, "nodes": [], "output": None},
        params={"day": "2026-11-25"},
        trigger="cli",
        created_at=created_at,
        nodes=nodes if nodes is not None else [("a", "a"), ("b", "b"), ("c", "c")],
        git_sha="abc123",
        git_dirty=False,
        trigger_key=trigger_key,
        logical_date=logical_date,
    )


def verify_chain(store: MetadataStore, run_id: str) -> int:
    """Recompute the run's event hash chain from what the store returns; the event count.

    Fails the test if any stored hash, the head or the count disagrees: a store
    must give back exactly what was hashed, and appends must never fork the chain.
    """
    chained, head, count = store.event_chain(run_id)
    previous = GENESIS
    for event, stored in chained:
        expected = event_hash(
            previous,
            event.run_id,
            event.task_run_id,
            event.attempt,
            event.kind.value,
            event.at,
            dict(event.payload),
        )
        assert stored == expected, f"event {event.id} ({event.kind.value}) breaks the chain"
        previous = stored
    assert count == len(chained), f"the run counts {count} events, {len(chained)} are stored"
    assert head == (previous if chained else None)
    return len(chained)


def queue(
    store: MetadataStore, run_id: str, tr: int, attempt: int, at: float, **cache: Any
) -> None:
    """Queue one attempt through a batch."""
    store.commit(run_id, WriteBatch(at=at, queues=[QueueItem(tr, attempt, **cache)]))


def start(store: MetadataStore, run_id: str, tr: int, attempt: int, at: float) -> bool:
    """Start one attempt through a batch; False when fenced."""
    try:
        store.commit(run_id, WriteBatch(at=at, starts=[StartItem(tr, attempt, at)]))
    except FencedError:
        return False
    return True


def finish(store: MetadataStore, run_id: str, result: AttemptResult) -> bool:
    """Commit one attempt's end through a batch; False when fenced."""
    try:
        store.commit(run_id, WriteBatch(at=result.finished_at, finishes=[result]))
    except FencedError:
        return False
    return True


def succeed(
    store: MetadataStore,
    run_id: str,
    record: TaskRunRecord,
    output: ArtifactRef,
    consumed: tuple[str, ...] = (),
    attempt: int = 1,
    **cache: Any,
) -> bool:
    """Queue, start and commit one successful attempt."""
    queue(store, run_id, record.id, attempt, T0 + 1, **cache)
    start(store, run_id, record.id, attempt, T0 + 2)
    return finish(
        store,
        run_id,
        AttemptResult(
            record.id,
            attempt,
            AttemptState.SUCCEEDED,
            TaskState.SUCCEEDED,
            finished_at=T0 + 3,
            output=output,
            consumed=consumed,
        ),
    )


class MetadataStoreContract(AlertStoreContract, RouteStoreContract, AuditStoreContract):
    """Behaviour every metadata store must show (the alert outbox's and audit log's included)."""

    @pytest.fixture
    def store(self) -> MetadataStore:
        """A fresh, empty store (subclasses override)."""
        raise NotImplementedError

    def test_create_run_records_pending_task_runs_in_order(self, store: MetadataStore) -> None:
        records = store.create_run(new_run())
        assert [r.node_id for r in records] == ["a", "b", "c"]
        assert all(r.state is TaskState.PENDING and r.attempts == 0 for r in records)
        run = store.get_run("r-1")
        assert run.status is RunState.QUEUED
        assert run.pipeline == "nightly" and run.params == {"day": "2026-11-25"}
        assert run.git_sha == "abc123" and run.git_dirty is False
        assert [e.kind for e in store.events("r-1")] == [EventKind.RUN_CREATED]
        assert [r.node_id for r in store.task_runs("r-1", "b")] == ["b"]
        assert store.task_runs("r-1", "nope") == []

    def test_get_run_by_prefix_and_clear_errors(self, store: MetadataStore) -> None:
        store.create_run(new_run("r-20261126-aaa"))
        store.create_run(new_run("r-20261126-aab"))
        assert store.get_run("r-20261126-aaa").id == "r-20261126-aaa"
        with pytest.raises(RunNotFoundError, match="matches several runs"):
            store.get_run("r-20261126-aa")
        with pytest.raises(RunNotFoundError, match="no run 'r-nope'"):
            store.get_run("r-nope")
        with pytest.raises(RunNotFoundError):
            store.get_run("r-20261126-%")
        store.create_run(replace(new_run("r-20261126-zzz"), created_at=T0 + 5))
        assert store.get_run("latest").id == "r-20261126-zzz"

    def test_successful_attempt_commits_output_lineage_and_events(
        self, store: MetadataStore
    ) -> None:
        a, b, _ = store.create_run(new_run())
        store.set_run_state("r-1", RunState.RUNNING, T0 + 0.5)
        out_a, out_b = ref("A"), ref("B")
        assert succeed(store, "r-1", a, out_a)
        assert succeed(store, "r-1", b, out_b, consumed=(out_a.sha256,))
        runs = {r.node_id: r for r in store.task_runs("r-1")}
        assert runs["a"].state is TaskState.SUCCEEDED and runs["a"].output == out_a
        assert runs["a"].output is not None and runs["a"].output.inline == b"A"
        attempt = store.attempts("r-1")[0]
        assert (attempt.number, attempt.state) == (1, AttemptState.SUCCEEDED)
        assert (attempt.queued_at, attempt.started_at, attempt.finished_at) == (
            T0 + 1,
            T0 + 2,
            T0 + 3,
        )
        assert attempt.queue_time == 1.0
        edges = store.lineage(out_a.sha256)
        assert {(e.node_id, e.direction) for e in edges} == {("a", "produced"), ("b", "consumed")}
        kinds = [e.kind for e in store.events("r-1") if e.node_id == "a"]
        assert kinds == [EventKind.TASK_QUEUED, EventKind.TASK_STARTED, EventKind.TASK_SUCCEEDED]

    def test_repeated_commit_is_a_no_op(self, store: MetadataStore) -> None:
        a, _, _ = store.create_run(new_run())
        out = ref("A")
        assert succeed(store, "r-1", a, out)
        again = AttemptResult(
            a.id, 1, AttemptState.SUCCEEDED, TaskState.SUCCEEDED, finished_at=T0 + 9, output=out
        )
        assert finish(store, "r-1", again) is False
        assert len(store.lineage(out.sha256)) == 1
        assert [e.kind for e in store.events("r-1")].count(EventKind.TASK_SUCCEEDED) == 1
        assert store.attempts("r-1")[0].finished_at == T0 + 3

    def test_a_running_attempt_shows_where_its_output_goes(self, store: MetadataStore) -> None:
        a, _, _ = store.create_run(new_run())
        queue(store, "r-1", a.id, 1, T0)
        store.commit(
            "r-1",
            WriteBatch(at=T0 + 1, starts=[StartItem(a.id, 1, T0 + 1, LogSpan("/logs/w2.log", 7))]),
        )
        assert store.attempts("r-1")[0].log == LogSpan("/logs/w2.log", 7, None)
        finish(
            store,
            "r-1",
            AttemptResult(
                a.id,
                1,
                AttemptState.SUCCEEDED,
                TaskState.SUCCEEDED,
                T0 + 2,
                output=ref("A"),
                log=LogSpan("/logs/w2.log", 7, 99),
            ),
        )
        assert store.attempts("r-1")[0].log == LogSpan("/logs/w2.log", 7, 99)

    def test_late_result_of_an_old_attempt_is_fenced(self, store: MetadataStore) -> None:
        a, _, _ = store.create_run(new_run())
        queue(store, "r-1", a.id, 1, T0)
        start(store, "r-1", a.id, 1, T0)
        error = ErrorInfo("ValueError", "boom")
        assert finish(
            store,
            "r-1",
            AttemptResult(
                a.id,
                1,
                AttemptState.FAILED,
                TaskState.RETRYING,
                finished_at=T0 + 1,
                error=error,
                retry_at=T0 + 2,
            ),
        )
        queue(store, "r-1", a.id, 2, T0 + 2)
        assert start(store, "r-1", a.id, 1, T0 + 3) is False
        late = AttemptResult(
            a.id,
            1,
            AttemptState.SUCCEEDED,
            TaskState.SUCCEEDED,
            finished_at=T0 + 4,
            output=ref("late"),
        )
        assert finish(store, "r-1", late) is False
        assert start(store, "r-1", a.id, 2, T0 + 5)
        record = next(r for r in store.task_runs("r-1") if r.node_id == "a")
        assert (record.state, record.attempts, record.output) == (TaskState.RUNNING, 2, None)
        attempts = store.attempts("r-1")
        assert [(x.number, x.state) for x in attempts] == [
            (1, AttemptState.FAILED),
            (2, AttemptState.RUNNING),
        ]
        assert attempts[0].error is not None and attempts[0].error.message == "boom"
        assert store.get_artifact(ref("late").sha256) is None

    def test_set_task_state_leaves_terminal_rows_alone(self, store: MetadataStore) -> None:
        a, b, c = store.create_run(new_run())
        succeed(store, "r-1", a, ref("A"))
        store.set_task_state(
            "r-1", [a.id, b.id, c.id], TaskState.SKIPPED, T0 + 5, reason="upstream node 'x' failed"
        )
        states = {r.node_id: (r.state, r.error) for r in store.task_runs("r-1")}
        assert states["a"] == (TaskState.SUCCEEDED, None)
        assert states["b"] == (TaskState.SKIPPED, "upstream node 'x' failed")
        skipped = [e for e in store.events("r-1") if e.kind is EventKind.TASK_SKIPPED]
        assert [e.node_id for e in skipped] == ["b", "c"]

    def test_expand_map_is_idempotent(self, store: MetadataStore) -> None:
        store.create_run(new_run(nodes=[("m", "work")]))
        first = store.expand_map("r-1", "m", "work", 3, T0)
        second = store.expand_map("r-1", "m", "work", 3, T0 + 1)
        assert [r.map_index for r in first] == [0, 1, 2]
        assert [r.id for r in first] == [r.id for r in second]
        assert len(store.task_runs("r-1")) == 4
        assert [e.kind for e in store.events("r-1")].count(EventKind.MAP_EXPANDED) == 1

    def test_run_state_timestamps(self, store: MetadataStore) -> None:
        store.create_run(new_run())
        store.set_run_state("r-1", RunState.RUNNING, T0 + 1)
        store.set_run_state("r-1", RunState.RUNNING, T0 + 2)
        store.heartbeat("r-1", T0 + 3)
        store.set_run_state("r-1", RunState.FAILED, T0 + 4, error="node 'a' failed")
        run = store.get_run("r-1")
        assert (run.started_at, run.heartbeat_at, run.finished_at) == (T0 + 1, T0 + 3, T0 + 4)
        assert run.status is RunState.FAILED and run.error == "node 'a' failed"
        assert store.events("r-1")[-1].payload == {"error": "node 'a' failed"}

    def test_list_runs_newest_first_with_filters(self, store: MetadataStore) -> None:
        for i, pipeline in enumerate(["a", "b", "a"]):
            run = new_run(f"r-{i}", pipeline)
            store.create_run(replace(run, created_at=T0 + i, trigger="api" if i else "cli"))
        assert [r.id for r in store.list_runs()] == ["r-2", "r-1", "r-0"]
        assert [r.id for r in store.list_runs(pipeline="a")] == ["r-2", "r-0"]
        assert [r.id for r in store.list_runs(limit=1)] == ["r-2"]
        assert store.list_runs(status=RunState.SUCCEEDED) == []
        assert [r.id for r in store.list_runs(trigger="api")] == ["r-2", "r-1"]
        assert [r.id for r in store.list_runs(pipeline="a", trigger="cli")] == ["r-0"]
        assert [r.id for r in store.list_runs(limit=1, offset=1)] == ["r-1"]
        assert [r.id for r in store.list_runs(limit=5, offset=2)] == ["r-0"]
        assert store.list_runs(offset=3) == []

    def test_state_counts_group_runs_and_task_runs_per_pipeline(self, store: MetadataStore) -> None:
        for i, pipeline in enumerate(["a", "b", "a"]):
            store.create_run(replace(new_run(f"r-{i}", pipeline), created_at=T0 + i))
        store.set_run_state("r-0", RunState.RUNNING, T0 + 5)
        (first, *_) = store.task_runs("r-0")
        succeed(store, "r-0", first, ref("A"))
        counts = store.state_counts()
        assert counts.runs == {("a", "running"): 1, ("a", "queued"): 1, ("b", "queued"): 1}
        assert counts.task_runs == {("a", "succeeded"): 1, ("a", "pending"): 5, ("b", "pending"): 3}

    def test_artifacts_are_recorded_once(self, store: MetadataStore) -> None:
        record = ArtifactRecord(ref("X"), T0, origin="import")
        store.add_artifact(record)
        store.add_artifact(ArtifactRecord(ref("X"), T0 + 1, origin="task"))
        stored = store.get_artifact(ref("X").sha256)
        assert stored is not None and stored.origin == "import" and stored.ref.inline == b"X"
        assert stored.stored == "inline"
        listed = store.list_artifacts()
        assert len(listed) == 1 and listed[0].ref.inline is None
        assert listed[0].stored == "inline"

    def test_a_fenced_batch_is_rolled_back_whole(self, store: MetadataStore) -> None:
        a, b, _ = store.create_run(new_run())
        succeed(store, "r-1", a, ref("A"))
        stale = AttemptResult(
            a.id, 1, AttemptState.SUCCEEDED, TaskState.SUCCEEDED, T0 + 5, output=ref("A2")
        )
        batch = WriteBatch(at=T0 + 5, finishes=[stale], queues=[QueueItem(b.id, 1)])
        with pytest.raises(FencedError, match="taken the run over"):
            store.commit("r-1", batch)
        states = {r.node_id: r.state for r in store.task_runs("r-1")}
        assert states["b"] is TaskState.PENDING
        assert store.get_artifact(ref("A2").sha256) is None

    def test_finish_and_release_commit_together(self, store: MetadataStore) -> None:
        a, b, _ = store.create_run(new_run())
        queue(store, "r-1", a.id, 1, T0)
        span = LogSpan("/logs/w1.log", 10, 42)
        done = AttemptResult(
            a.id, 1, AttemptState.SUCCEEDED, TaskState.SUCCEEDED, T0 + 2, output=ref("A"), log=span
        )
        started = StartItem(a.id, 1, T0 + 1, LogSpan("/logs/w1.log", 10))
        store.commit(
            "r-1",
            WriteBatch(at=T0 + 2, starts=[started], finishes=[done], queues=[QueueItem(b.id, 1)]),
        )
        states = {r.node_id: r.state for r in store.task_runs("r-1")}
        assert (states["a"], states["b"]) == (TaskState.SUCCEEDED, TaskState.QUEUED)
        first = store.attempts("r-1")[0]
        assert (first.started_at, first.finished_at) == (T0 + 1, T0 + 2)
        assert first.log == span

    def test_cache_hits_are_found_recorded_and_traced(self, store: MetadataStore) -> None:
        a, _, _ = store.create_run(new_run("r-1"))
        out = ref("A")
        succeed(store, "r-1", a, out, cache_key="k" * 64, cache_inputs={"version": "v1"})
        assert store.find_cached("x" * 64, not_before=None) is None
        assert store.find_cached("k" * 64, not_before=T0 + 4) is None  # expired
        hit = store.find_cached("k" * 64, not_before=None)
        assert hit is not None and (hit.run_id, hit.node_id, hit.output) == ("r-1", "a", out)
        a2, _, _ = store.create_run(new_run("r-2"))
        store.commit(
            "r-2",
            WriteBatch(at=T0 + 10, cached=[CachedItem(a2.id, hit, "k" * 64, {"version": "v1"})]),
        )
        record = next(r for r in store.task_runs("r-2") if r.node_id == "a")
        assert record.state is TaskState.CACHED and record.output == out
        assert record.cached_from == a.id and record.cache_key == "k" * 64
        event = next(e for e in store.events("r-2") if e.kind is EventKind.TASK_CACHED)
        assert event.payload["source_run"] == "r-1" and event.payload["source_node"] == "a"
        produced = {(e.run_id, e.direction) for e in store.lineage(out.sha256)}
        assert produced == {("r-1", "produced"), ("r-2", "produced")}
        history = store.cache_history("a", before=T0 + 100, limit=5)
        assert [r.run_id for r in history] == ["r-2", "r-1"]

    def test_resume_resets_what_did_not_commit(self, store: MetadataStore) -> None:
        a, b, _ = store.create_run(new_run())
        store.set_run_state("r-1", RunState.RUNNING, T0)
        succeed(store, "r-1", a, ref("A"))
        queue(store, "r-1", b.id, 1, T0 + 4)
        start(store, "r-1", b.id, 1, T0 + 5)
        with pytest.raises(RunStateError, match="still being driven"):
            store.resume_run("r-1", by="cli", at=T0 + 6, stale_before=T0 - 30)
        records = store.resume_run("r-1", by="cli", at=T0 + 100, stale_before=T0 + 70)
        states = {r.node_id: (r.state, r.attempts) for r in records}
        assert states == {
            "a": (TaskState.SUCCEEDED, 1),
            "b": (TaskState.PENDING, 1),
            "c": (TaskState.PENDING, 0),
        }
        orphan = next(x for x in store.attempts("r-1") if x.node_id == "b")
        assert orphan.state is AttemptState.FAILED and orphan.error is not None
        assert orphan.error.type == "lockgate.Orphaned"
        run = store.get_run("r-1")
        assert run.status is RunState.RUNNING and run.heartbeat_at == T0 + 100
        resumed = [e for e in store.events("r-1") if e.kind is EventKind.RUN_RESUMED]
        assert resumed[0].payload == {"by": "cli", "previous_status": "running"}
        store.set_run_state("r-1", RunState.SUCCEEDED, T0 + 200)
        with pytest.raises(RunStateError, match="already succeeded"):
            store.resume_run("r-1", by="cli", at=T0 + 300, stale_before=T0 + 300)

    def test_resume_into_the_queue_leaves_the_run_to_a_claimer(self, store: MetadataStore) -> None:
        a, b, _ = store.create_run(new_run())
        store.claim_queued(limits={}, claimer="server-1", at=T0 + 1, max_runs=1)
        succeed(store, "r-1", a, ref("A"))
        queue(store, "r-1", b.id, 1, T0 + 4)
        start(store, "r-1", b.id, 1, T0 + 5)
        store.set_run_state("r-1", RunState.FAILED, T0 + 6, error="b broke")
        records = store.resume_run("r-1", by="api", at=T0 + 10, stale_before=T0, queue=True)
        states = {r.node_id: r.state for r in records}
        assert states == {"a": TaskState.SUCCEEDED, "b": TaskState.PENDING, "c": TaskState.PENDING}
        run = store.get_run("r-1")
        assert run.status is RunState.QUEUED and run.claimed_by is None
        assert run.finished_at is None and run.error is None
        resumed = [e for e in store.events("r-1") if e.kind is EventKind.RUN_RESUMED]
        assert resumed[-1].payload == {"by": "api", "previous_status": "failed"}
        # Queued again: the next claimer takes it, and it is not resumed twice meanwhile.
        with pytest.raises(RunStateError, match="still being driven"):
            store.resume_run("r-1", by="api", at=T0 + 11, stale_before=T0, queue=True)
        claimed = store.claim_queued(limits={}, claimer="server-2", at=T0 + 12, max_runs=5)
        assert [r.id for r in claimed] == ["r-1"] and claimed[0].claimed_by == "server-2"

    def test_cancel_requests(self, store: MetadataStore) -> None:
        store.create_run(new_run())
        assert store.cancel_requested("r-1") is False
        run = store.request_cancel("r-1", by="cli", at=T0 + 1)
        assert run.cancel_requested_at == T0 + 1 and store.cancel_requested("r-1")
        store.set_run_state("r-1", RunState.CANCELLED, T0 + 2)
        with pytest.raises(RunStateError, match="already ended"):
            store.request_cancel("r-1", by="cli", at=T0 + 3)

    # --- the event chain ------------------------------------------------------------

    def test_every_write_extends_one_event_chain(self, store: MetadataStore) -> None:
        a, b, _ = store.create_run(new_run())
        store.set_run_state("r-1", RunState.RUNNING, T0 + 0.25)
        succeed(store, "r-1", a, ref("A"))
        store.set_task_state("r-1", [b.id], TaskState.SKIPPED, T0 + 4, reason="why not")
        store.request_cancel("r-1", by="cli", at=T0 + 5)
        assert verify_chain(store, "r-1") == len(store.events("r-1")) == 7

    def test_warnings_are_events_on_the_chain(self, store: MetadataStore) -> None:
        store.create_run(new_run())
        store.record_warning("r-1", "input dataset:x@3 is 9 days old", T0 + 1)
        warning = store.events("r-1")[-1]
        assert (warning.kind, warning.at) == (EventKind.RUN_WARNING, T0 + 1)
        assert warning.payload == {"message": "input dataset:x@3 is 9 days old"}
        assert verify_chain(store, "r-1") == 2

    def test_non_finite_numbers_in_payloads_are_stored_and_chained(
        self, store: MetadataStore
    ) -> None:
        # Metrics can be NaN or infinite; PostgreSQL's JSON type refuses both tokens.
        a, _, _ = store.create_run(new_run())
        checks = [
            GateDecision(a.id, "auc", ">=", "auc >= 0.9", False, "auc is NaN", math.nan, 0.9),
            GateDecision(a.id, "loss", "<", "loss < inf", False, "loss is inf", math.inf, math.inf),
        ]
        store.commit("r-1", WriteBatch(at=T0 + 1, gate_decisions=checks))
        verify_chain(store, "r-1")
        decided = store.gate_decisions("r-1")
        assert [d.metric for d in decided] == ["auc", "loss"]
        assert decided[1].threshold == math.inf and not decided[1].passed
        stored = store.events("r-1")[-1].payload["checks"][0]["value"]
        assert stored is None or math.isnan(stored)

    # --- trigger keys and the run queue ---------------------------------------------

    def test_a_trigger_key_starts_one_run_per_pipeline(self, store: MetadataStore) -> None:
        key = "cron:2026-11-25T00:00:00Z"
        store.create_run(new_run("r-1", trigger_key=key, logical_date=T0))
        with pytest.raises(RunExistsError, match="already has run r-1") as info:
            store.create_run(new_run("r-2", trigger_key=key, logical_date=T0))
        assert info.value.run_id == "r-1"
        # Nothing of the refused run was written, and the store still writes.
        with pytest.raises(RunNotFoundError):
            store.get_run("r-2")
        assert store.task_runs("r-2") == [] and store.events("r-2") == []
        store.create_run(new_run("r-3", pipeline="weekly", trigger_key=key))
        store.create_run(new_run("r-4", trigger_key="cron:2026-11-26T00:00:00Z"))
        store.create_run(new_run("r-5"))
        store.create_run(new_run("r-6"))  # runs without a key never collide
        run = store.get_run("r-1")
        assert (run.trigger_key, run.logical_date) == (key, T0)
        assert {r.id for r in store.list_runs()} == {"r-1", "r-3", "r-4", "r-5", "r-6"}
        assert verify_chain(store, "r-1") == 1

    def test_trigger_keys_match_the_prefix_literally(self, store: MetadataStore) -> None:
        keys = ["cron:1", "cron:2", "msg:a%b", "msg:a_b", "msg:axb", "msg:a\\b", "msg:A%b"]
        for i, key in enumerate(keys):
            store.create_run(new_run(f"r-{i}", trigger_key=key))
        store.create_run(new_run("r-other", pipeline="weekly", trigger_key="cron:3"))
        store.create_run(new_run("r-nokey"))
        assert sorted(store.trigger_keys("nightly", "cron:")) == ["cron:1", "cron:2"]
        assert store.trigger_keys("nightly", "msg:a%") == ["msg:a%b"]
        assert store.trigger_keys("nightly", "msg:a_") == ["msg:a_b"]
        assert store.trigger_keys("nightly", "msg:a\\") == ["msg:a\\b"]
        assert sorted(store.trigger_keys("nightly", "")) == sorted(keys)
        assert store.trigger_keys("weekly", "cron:") == ["cron:3"]
        assert store.trigger_keys("nope", "") == []

    def test_last_logical_date_is_the_newest_tick(self, store: MetadataStore) -> None:
        assert store.last_logical_date("nightly") is None
        store.create_run(new_run("r-1", trigger_key="cron:b", logical_date=T0 + 60))
        store.create_run(new_run("r-2", trigger_key="cron:a", logical_date=T0))
        store.create_run(new_run("r-3"))  # a manual run has no tick
        store.create_run(new_run("r-4", pipeline="weekly", trigger_key="x", logical_date=T0 + 99))
        assert store.last_logical_date("nightly") == T0 + 60
        assert store.last_logical_date("weekly") == T0 + 99
        assert store.last_logical_date("nope") is None

    def test_claim_queued_takes_the_oldest_runs_within_limits(self, store: MetadataStore) -> None:
        for i in range(4):
            store.create_run(new_run(f"a-{i}", pipeline="a", created_at=T0 + i))
        for i in range(2):
            store.create_run(new_run(f"b-{i}", pipeline="b", created_at=T0 + 10 + i))
        store.set_run_state("a-0", RunState.RUNNING, T0 + 20)  # launched by hand, still counts

        first = store.claim_queued(limits={"a": 2}, claimer="srv-1", at=T0 + 30, max_runs=2)
        assert [r.id for r in first] == ["a-1", "b-0"]  # a-2 would be a third running "a"
        assert all(r.status is RunState.RUNNING for r in first)
        assert {(r.claimed_by, r.heartbeat_at) for r in first} == {("srv-1", T0 + 30)}
        assert store.get_run("a-1").claimed_by == "srv-1"

        second = store.claim_queued(limits={"a": 2}, claimer="srv-2", at=T0 + 31, max_runs=10)
        assert [r.id for r in second] == ["b-1"]
        assert store.claim_queued(limits={"a": 2}, claimer="srv-2", at=T0 + 32, max_runs=10) == []

        store.set_run_state("a-0", RunState.SUCCEEDED, T0 + 40)
        third = store.claim_queued(limits={"a": 2}, claimer="srv-2", at=T0 + 41, max_runs=10)
        assert [(r.id, r.claimed_by) for r in third] == [("a-2", "srv-2")]
        assert store.get_run("a-3").status is RunState.QUEUED
        assert store.claim_queued(limits={}, claimer="srv-3", at=T0 + 42, max_runs=10)[0].id == (
            "a-3"
        )
        running = store.list_runs(status=RunState.RUNNING)
        assert sorted(r.id for r in running) == ["a-1", "a-2", "a-3", "b-0", "b-1"]
        for run in ("a-1", "b-0", "b-1", "a-2", "a-3"):
            verify_chain(store, run)

    def test_a_long_queue_at_its_limit_does_not_starve_other_pipelines(
        self, store: MetadataStore
    ) -> None:
        # A backfill of 60 ticks for a pipeline limited to one run at a time.
        for i in range(60):
            store.create_run(new_run(f"bf-{i:02d}", pipeline="backfilled", created_at=T0 + i))
        store.create_run(new_run("late", pipeline="other", created_at=T0 + 100))
        limits = {"backfilled": 1}
        first = store.claim_queued(limits=limits, claimer="s", at=T0 + 200, max_runs=1)
        assert [r.id for r in first] == ["bf-00"]
        # "backfilled" is full now; the run queued after its 59 others still starts.
        second = store.claim_queued(limits=limits, claimer="s", at=T0 + 201, max_runs=1)
        assert [r.id for r in second] == ["late"]

    def test_runs_created_running_are_never_claimed(self, store: MetadataStore) -> None:
        store.create_run(replace(new_run("r-1"), status=RunState.RUNNING))
        assert store.claim_queued(limits={}, claimer="srv", at=T0, max_runs=5) == []
        assert store.get_run("r-1").claimed_by is None

    # --- pools ------------------------------------------------------------------------

    def _running(self, store: MetadataStore, run_id: str, at: float = T0) -> list[TaskRunRecord]:
        records = store.create_run(new_run(run_id))
        store.set_run_state(run_id, RunState.RUNNING, at)
        return records

    def test_a_pool_never_hands_out_more_slots_than_it_has(self, store: MetadataStore) -> None:
        a, b, c = self._running(store, "r-1")
        (d, *_) = self._running(store, "r-2")
        live = T0 - 60  # every coordinator here beat after this
        assert store.acquire_slot("gpu", 2, a.id, "r-1", T0 + 1, live)
        assert store.acquire_slot("gpu", 2, a.id, "r-1", T0 + 2, live)  # idempotent
        assert store.acquire_slot("gpu", 2, b.id, "r-1", T0 + 3, live)
        assert not store.acquire_slot("gpu", 2, c.id, "r-1", T0 + 4, live)
        assert not store.acquire_slot("gpu", 2, d.id, "r-2", T0 + 4, live)
        assert store.acquire_slot("cpu", 1, c.id, "r-1", T0 + 4, live)  # pools are separate
        # A task run holds a slot until a batch releases it.
        store.commit("r-1", WriteBatch(at=T0 + 5, releases=[a.id]))
        assert store.acquire_slot("gpu", 2, d.id, "r-2", T0 + 6, live)
        assert not store.acquire_slot("gpu", 2, a.id, "r-1", T0 + 7, live)
        # More slots configured: more holders.
        assert store.acquire_slot("gpu", 3, a.id, "r-1", T0 + 8, live)

    def test_slots_of_finished_or_silent_runs_are_freed(self, store: MetadataStore) -> None:
        (a, *_) = self._running(store, "r-done")
        (b, *_) = self._running(store, "r-silent")
        (c, d, _) = self._running(store, "r-live")
        assert store.acquire_slot("gpu", 2, a.id, "r-done", T0 + 1, T0 - 60)
        assert store.acquire_slot("gpu", 2, b.id, "r-silent", T0 + 1, T0 - 60)
        assert not store.acquire_slot("gpu", 2, c.id, "r-live", T0 + 2, T0 - 60)
        store.set_run_state("r-done", RunState.FAILED, T0 + 3)
        assert store.acquire_slot("gpu", 2, c.id, "r-live", T0 + 4, T0 - 60)
        assert not store.acquire_slot("gpu", 2, d.id, "r-live", T0 + 5, T0 - 60)
        store.heartbeat("r-live", T0 + 100)
        # r-silent last beat at T0: stale once `stale_before` passes it.
        assert store.acquire_slot("gpu", 2, d.id, "r-live", T0 + 101, T0 + 50)

    def test_a_resumed_run_gives_its_slots_back(self, store: MetadataStore) -> None:
        (a, *_) = self._running(store, "r-1")
        (b, *_) = self._running(store, "r-2")
        assert store.acquire_slot("gpu", 1, a.id, "r-1", T0 + 1, T0 - 60)
        store.set_run_state("r-1", RunState.FAILED, T0 + 2)
        store.resume_run("r-1", by="cli", at=T0 + 3, stale_before=T0)
        assert store.acquire_slot("gpu", 1, b.id, "r-2", T0 + 4, T0 - 60)

    # --- tokens -----------------------------------------------------------------------

    def test_tokens_are_found_by_hash_until_revoked(self, store: MetadataStore) -> None:
        assert store.list_tokens() == []
        store.create_token("ci", "1" * 64, ["read", "run"], T0)
        store.create_token("ops", "2" * 64, ["admin"], T0 + 1)
        with pytest.raises(UsageError, match="'ci' already exists"):
            store.create_token("ci", "3" * 64, ["read"], T0 + 2)
        assert store.find_token("9" * 64, T0 + 3) is None

        found = store.find_token("1" * 64, T0 + 5)
        assert found is not None
        assert (found.name, found.scopes, found.created_at) == ("ci", ("read", "run"), T0)
        assert found.revoked_at is None and found.last_used_at == T0 + 5
        listed = {t.name: t for t in store.list_tokens()}
        assert set(listed) == {"ci", "ops"}
        assert listed["ci"].last_used_at == T0 + 5 and listed["ops"].last_used_at is None

        assert store.revoke_token("ci", T0 + 9) is True
        assert store.revoke_token("ci", T0 + 10) is False  # already revoked
        assert store.revoke_token("nobody", T0 + 10) is False
        assert store.find_token("1" * 64, T0 + 11) is None
        revoked = {t.name: t for t in store.list_tokens()}["ci"]
        assert (revoked.revoked_at, revoked.last_used_at) == (T0 + 9, T0 + 5)
        ops = store.find_token("2" * 64, T0 + 12)
        assert ops is not None and ops.scopes == ("admin",)

    # --- run metrics (`lockgate stats`) -------------------------------------------

    def test_stats_rows_read_the_runs_that_finished_in_the_window(
        self, store: MetadataStore
    ) -> None:
        a, b, c = store.create_run(new_run("r-1"))
        store.set_run_state("r-1", RunState.RUNNING, T0 + 1)
        queue(store, "r-1", a.id, 1, T0 + 1)
        start(store, "r-1", a.id, 1, T0 + 3)
        failed = AttemptResult(
            a.id, 1, AttemptState.FAILED, TaskState.RETRYING, finished_at=T0 + 4, retry_at=T0 + 4
        )
        assert finish(store, "r-1", failed)
        queue(store, "r-1", a.id, 2, T0 + 4)
        start(store, "r-1", a.id, 2, T0 + 4.5)
        rows, weights = ref("rows"), ref("weights")
        ok = AttemptResult(
            a.id,
            2,
            AttemptState.SUCCEEDED,
            TaskState.SUCCEEDED,
            finished_at=T0 + 5,
            output=rows,
            named=NamedOutput("dataset", "rows"),
        )
        assert finish(store, "r-1", ok)
        assert succeed(store, "r-1", b, weights, consumed=(rows.sha256,))
        checks = [
            GateDecision(c.id, "acc", ">=", "acc >= 0.9", True, "ok", 0.95, 0.9),
            GateDecision(c.id, "auc", ">=", "auc >= 0.8", False, "too low", 0.7, 0.8),
        ]
        registration = Registration(b.id, "clf", weights.sha256, {}, False)
        store.commit(
            "r-1", WriteBatch(at=T0 + 6, gate_decisions=checks, registrations=[registration])
        )
        store.set_run_state("r-1", RunState.SUCCEEDED, T0 + 10)
        store.create_run(new_run("r-2"))
        store.set_run_state("r-2", RunState.RUNNING, T0 + 2)
        store.set_run_state("r-2", RunState.FAILED, T0 + 20)
        store.resume_run("r-2", by="cli", at=T0 + 21, stale_before=T0)
        store.set_run_state("r-2", RunState.SUCCEEDED, T0 + 30)
        for run_id, ended in (("r-3", T0 + 40), ("r-4", T0 + 9.5), ("r-5", None)):
            store.create_run(new_run(run_id, pipeline="weekly"))
            store.set_run_state(run_id, RunState.RUNNING, T0 + 1)
            if ended is not None:
                store.set_run_state(run_id, RunState.FAILED, ended)

        found = store.stats_rows(since=T0 + 10, until=T0 + 40)
        runs = {r.run_id: r for r in found.runs}
        assert sorted(runs) == ["r-1", "r-2"]  # [since, until): r-3 ends at until
        one, two = runs["r-1"], runs["r-2"]
        assert (one.pipeline, one.status, one.created_at, one.started_at, one.finished_at) == (
            "nightly",
            RunState.SUCCEEDED,
            T0,
            T0 + 1,
            T0 + 10,
        )
        assert one.resumes == () and two.resumes == (("cli", "failed"),)
        tasks = {t.task_name: t for t in found.tasks}
        assert (tasks["a"].executed, tasks["a"].retries, tasks["a"].max_retries) == (1, 1, 1)
        assert tasks["a"].queue_times == pytest.approx((0.5, 2.0))  # ascending
        assert (tasks["b"].executed, tasks["b"].retries) == (1, 0)
        assert tasks["b"].queue_times == pytest.approx((1.0,))
        assert (tasks["c"].executed, tasks["c"].gate_evaluations, tasks["c"].gate_passed) == (
            0,
            1,
            0,
        )
        assert all(t.pipeline == "nightly" for t in found.tasks)
        (model,) = found.models
        assert (model.pipeline, model.label, model.has_dataset, model.has_git_sha) == (
            "nightly",
            "model:clf@1",
            True,
            True,
        )

        weekly = store.stats_rows(since=T0, until=T0 + 41, pipeline="weekly")
        assert sorted(r.run_id for r in weekly.runs) == ["r-3", "r-4"]
        assert weekly.tasks == [] and weekly.models == []
        assert store.stats_rows(since=T0 + 41, until=T0 + 99).runs == []

    def test_stats_rows_tell_a_model_without_ancestry(self, store: MetadataStore) -> None:
        (a,) = store.create_run(new_run("r-1", nodes=[("a", "a")]))
        weights = ref("weights")
        assert succeed(store, "r-1", a, weights)
        registration = Registration(a.id, "clf", weights.sha256, {}, False)
        store.commit("r-1", WriteBatch(at=T0 + 4, registrations=[registration]))
        store.set_run_state("r-1", RunState.SUCCEEDED, T0 + 5)
        (model,) = store.stats_rows(since=T0, until=T0 + 6).models
        assert (model.has_dataset, model.has_git_sha) == (False, True)
