"""The contract every `MetadataStore` implementation passes.

Subclass `MetadataStoreContract` in a test module and provide a `store`
fixture returning a fresh, empty store. The tests use only the port.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest

from lockgate.errors import FencedError, RunNotFoundError, RunStateError
from lockgate.model.states import AttemptState, EventKind, RunState, TaskState
from lockgate.ports.artifacts import ArtifactRef
from lockgate.ports.executor import ErrorInfo, LogSpan
from lockgate.ports.metadata import (
    ArtifactRecord,
    AttemptResult,
    CachedItem,
    MetadataStore,
    NewRun,
    QueueItem,
    StartItem,
    TaskRunRecord,
    WriteBatch,
)

T0 = 1_790_000_000.0


def ref(content: str) -> ArtifactRef:
    """A small inline artifact ref for `content`."""
    data = content.encode()
    return ArtifactRef(
        hashlib.sha256(data).hexdigest(), "bytes", len(data), "builtins.bytes", inline=data
    )


def new_run(run_id: str = "r-1", pipeline: str = "nightly", nodes: Any = None) -> NewRun:
    """A run of a three-node chain a -> b -> c."""
    return NewRun(
        run_id=run_id,
        pipeline=pipeline,
        pipeline_version="v" * 64,
        graph={"pipeline": pipeline, "nodes": [], "output": None},
        params={"day": "2026-11-25"},
        trigger="cli",
        created_at=T0,
        nodes=nodes if nodes is not None else [("a", "a"), ("b", "b"), ("c", "c")],
        git_sha="abc123",
        git_dirty=False,
    )


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


class MetadataStoreContract:
    """Behaviour every metadata store must show."""

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
            store.create_run(replace(run, created_at=T0 + i))
        assert [r.id for r in store.list_runs()] == ["r-2", "r-1", "r-0"]
        assert [r.id for r in store.list_runs(pipeline="a")] == ["r-2", "r-0"]
        assert [r.id for r in store.list_runs(limit=1)] == ["r-2"]
        assert store.list_runs(status=RunState.SUCCEEDED) == []

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

    def test_cancel_requests(self, store: MetadataStore) -> None:
        store.create_run(new_run())
        assert store.cancel_requested("r-1") is False
        run = store.request_cancel("r-1", by="cli", at=T0 + 1)
        assert run.cancel_requested_at == T0 + 1 and store.cancel_requested("r-1")
        store.set_run_state("r-1", RunState.CANCELLED, T0 + 2)
        with pytest.raises(RunStateError, match="already ended"):
            store.request_cancel("r-1", by="cli", at=T0 + 3)
