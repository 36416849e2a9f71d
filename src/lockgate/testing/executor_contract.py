"""The contract every `Executor` implementation passes.

Subclass `ExecutorContract` in a test module (name it `Test...`) and provide
an `executor` fixture: a fresh executor that runs at most one invocation at
a time (so that a second submission is queued) against the artifact store
at the `artifact_root` fixture, closed after the test. For example:

    class TestProcessExecutor(ExecutorContract):
        @pytest.fixture
        def executor(self, artifact_root):
            executor = ProcessExecutor(partial(open_artifact_store, artifact_root), workers=1)
            yield executor
            executor.close()

The tests use only the port (`lockgate.ports.executor`): invocations are
built by hand, inputs are `Load`s of artifacts the test stored, outputs are
read back from the same store. The tasks live in this module, so any worker
that can import lockgate can run them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest

import lockgate as lg
from lockgate.model.task import Task
from lockgate.ports.artifacts import ArtifactRef, ArtifactStore
from lockgate.ports.executor import (
    Executor,
    ExecutorEvent,
    Finished,
    Invocation,
    Load,
    Outcome,
    Started,
)
from lockgate.stores.artifacts import DEFAULT_INLINE_LIMIT, open_artifact_store

__all__ = ["ExecutorContract", "invocation", "run_until_finished"]

RUN_ID = "r-contract-1"

#: Bytes in an output that must be stored as a blob rather than inline.
BLOB = DEFAULT_INLINE_LIMIT * 4


@lg.task
def add(a: int, b: int) -> int:
    """The sum of two numbers."""
    return a + b


@lg.task
def describe(values: list[int], *, blob: bytes, item: int) -> dict[str, int]:
    """Facts about loaded inputs, to prove each arrived as the value that was stored."""
    return {"total": sum(values), "blob": len(blob), "first": blob[0], "item": item}


@lg.task
def make_blob(size: int) -> bytes:
    """`size` bytes, big enough to need a blob."""
    return bytes(range(256)) * (size // 256)


@lg.task(retry_on=ValueError)
def fail(kind: str, message: str) -> None:
    """Raise `kind` with `message`; only ValueError is retryable."""
    exceptions: dict[str, type[Exception]] = {"ValueError": ValueError, "KeyError": KeyError}
    raise exceptions[kind](message)


@lg.task
def make_lock() -> Any:
    """A value no serializer can store."""
    return threading.Lock()


@lg.task
def whoami() -> dict[str, Any]:
    """What `lg.current()` says inside the task."""
    context = lg.current()
    return {
        "run_id": context.run_id,
        "pipeline": context.pipeline,
        "node_id": context.node_id,
        "map_index": context.map_index,
        "attempt": context.attempt,
        "idempotency_key": context.idempotency_key,
    }


@lg.task
def nap(seconds: float) -> float:
    """Sleep, so that what is submitted next has to wait."""
    time.sleep(seconds)
    return seconds


def invocation(
    task: Task,
    *args: Any,
    task_run_id: int = 1,
    attempt: int = 1,
    node_id: str | None = None,
    map_index: int | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> Invocation:
    """An invocation of `task` in run `RUN_ID`, as the coordinator would build it."""
    return Invocation(
        run_id=RUN_ID,
        pipeline="contract",
        node_id=node_id or task.name,
        map_index=map_index,
        task_run_id=task_run_id,
        attempt=attempt,
        task=task,
        args=args,
        kwargs=kwargs,
        timeout=timeout,
    )


def run_until_finished(
    executor: Executor, keys: Iterable[str], *, timeout: float = 60.0, linger: float = 0.1
) -> dict[str, list[ExecutorEvent]]:
    """Poll until every key has a `Finished`, then a little longer; events per key.

    The extra `linger` seconds of polling catch a duplicate event.

    Raises:
        AssertionError: not everything finished within `timeout` seconds.
    """
    events: dict[str, list[ExecutorEvent]] = {key: [] for key in keys}
    deadline = time.monotonic() + timeout

    def record(batch: list[ExecutorEvent]) -> None:
        for event in batch:
            key = event.key if isinstance(event, Started) else event.outcome.key
            events.setdefault(key, []).append(event)

    while not all(any(isinstance(e, Finished) for e in got) for got in events.values()):
        left = deadline - time.monotonic()
        assert left > 0, f"not finished within {timeout} s: {events}"
        record(executor.poll(min(left, 1.0)))
    end = time.monotonic() + linger
    while (left := end - time.monotonic()) > 0:
        record(executor.poll(left))
    return events


def outcome_of(events: list[ExecutorEvent]) -> Outcome:
    """The outcome in the one `Finished` of one key's events."""
    finished = [e.outcome for e in events if isinstance(e, Finished)]
    assert len(finished) == 1, f"expected one Finished, got {events}"
    return finished[0]


class ExecutorContract:
    """Behaviour the coordinator relies on from any executor."""

    @pytest.fixture
    def artifact_root(self, tmp_path: Any) -> str:
        """Where the executor under test and the test's own store keep artifacts."""
        return str(tmp_path / "artifacts")

    @pytest.fixture
    def store(self, artifact_root: str) -> ArtifactStore:
        """The test's handle on the executor's artifact store."""
        return open_artifact_store(artifact_root)

    # --- events -----------------------------------------------------------------

    def test_one_started_then_one_finished_with_the_output_ref(
        self, executor: Executor, store: ArtifactStore
    ) -> None:
        call = invocation(add, 2, 3)
        executor.submit(call)
        events = run_until_finished(executor, [call.key])[call.key]
        assert [type(e) for e in events] == [Started, Finished]
        started, finished = events
        assert isinstance(started, Started) and isinstance(finished, Finished)
        outcome = finished.outcome
        assert outcome.key == call.key and started.key == call.key
        assert outcome.ok, outcome.error
        assert outcome.output is not None
        assert store.get(outcome.output) == 5
        assert outcome.started_at <= outcome.finished_at

    def test_several_invocations_each_finish_once(
        self, executor: Executor, store: ArtifactStore
    ) -> None:
        calls = [invocation(add, n, n, task_run_id=n) for n in range(1, 6)]
        for call in calls:
            executor.submit(call)
        events = run_until_finished(executor, [c.key for c in calls])
        for n, call in enumerate(calls, start=1):
            outcome = outcome_of(events[call.key])
            assert outcome.output is not None
            assert store.get(outcome.output) == 2 * n

    # --- data through the store ----------------------------------------------------

    def test_loaded_inputs_and_blob_outputs_round_trip(
        self, executor: Executor, store: ArtifactStore
    ) -> None:
        make = invocation(make_blob, BLOB, task_run_id=1)
        executor.submit(make)
        made = outcome_of(run_until_finished(executor, [make.key])[make.key])
        assert made.output is not None
        assert made.output.inline is None, "a large output is a blob, not inline bytes"
        assert made.output.size == BLOB
        assert store.get(made.output) == bytes(range(256)) * (BLOB // 256)

        values = store.put([1, 2, 3])
        items = store.put([10, 20, 30])
        use = invocation(
            describe,
            Load(values),
            task_run_id=2,
            blob=Load(made.output),
            item=Load(items, index=1),
        )
        executor.submit(use)
        used = outcome_of(run_until_finished(executor, [use.key])[use.key])
        assert used.ok, used.error
        assert used.output is not None
        assert store.get(used.output) == {"total": 6, "blob": BLOB, "first": 0, "item": 20}

    def test_missing_input_fails_without_retry(self, executor: Executor) -> None:
        missing = ArtifactRef("0" * 64, "json", 100, "builtins.list")
        call = invocation(describe, Load(missing, what="input 'values'"), blob=b"x", item=1)
        executor.submit(call)
        outcome = outcome_of(run_until_finished(executor, [call.key])[call.key])
        assert outcome.error is not None
        assert not outcome.error.retryable
        assert not outcome.error.user
        assert "0" * 16 in outcome.error.message

    # --- failures ---------------------------------------------------------------------

    def test_user_exception_keeps_type_message_and_traceback(self, executor: Executor) -> None:
        call = invocation(fail, "ValueError", "bad row 7")
        executor.submit(call)
        outcome = outcome_of(run_until_finished(executor, [call.key])[call.key])
        assert not outcome.ok
        assert outcome.output is None
        error = outcome.error
        assert error is not None
        assert error.type == "ValueError"
        assert error.message == "bad row 7"
        assert "raise exceptions[kind](message)" in error.traceback
        assert "in fail" in error.traceback
        assert error.user
        assert error.retryable, "ValueError is in the task's retry_on"

    def test_exception_outside_retry_on_is_not_retryable(self, executor: Executor) -> None:
        call = invocation(fail, "KeyError", "no such column")
        executor.submit(call)
        error = outcome_of(run_until_finished(executor, [call.key])[call.key]).error
        assert error is not None
        assert error.type == "KeyError"
        assert "no such column" in error.message
        assert not error.retryable

    def test_unserializable_output_fails_without_retry(self, executor: Executor) -> None:
        call = invocation(make_lock)
        executor.submit(call)
        outcome = outcome_of(run_until_finished(executor, [call.key])[call.key])
        assert outcome.output is None
        assert outcome.error is not None
        assert outcome.error.type.endswith("UnserializableOutputError")
        assert "lock" in outcome.error.message
        assert not outcome.error.retryable

    # --- cancel -------------------------------------------------------------------------

    def test_cancel_of_a_queued_invocation(self, executor: Executor, store: ArtifactStore) -> None:
        first = invocation(nap, 0.3, task_run_id=1)
        second = invocation(add, 1, 1, task_run_id=2)
        executor.submit(first)
        executor.submit(second)
        executor.cancel(second.key)
        events = run_until_finished(executor, [first.key, second.key])
        assert not any(isinstance(e, Started) for e in events[second.key])
        cancelled = outcome_of(events[second.key])
        assert cancelled.output is None
        assert cancelled.error is not None
        assert cancelled.error.type == "lockgate.Cancelled"
        assert not cancelled.error.retryable
        assert not cancelled.error.user
        kept = outcome_of(events[first.key])
        assert kept.output is not None and store.get(kept.output) == 0.3

    def test_cancel_of_an_unknown_or_finished_key_is_ignored(self, executor: Executor) -> None:
        call = invocation(add, 1, 2)
        executor.submit(call)
        run_until_finished(executor, [call.key])
        executor.cancel(call.key)
        executor.cancel("999:1")
        assert executor.poll(0.1) == []

    # --- context ------------------------------------------------------------------------

    def test_current_context_names_the_invocation(
        self, executor: Executor, store: ArtifactStore
    ) -> None:
        call = invocation(whoami, task_run_id=7, attempt=3, node_id="score", map_index=2)
        executor.submit(call)
        outcome = outcome_of(run_until_finished(executor, [call.key])[call.key])
        assert outcome.output is not None, outcome.error
        assert store.get(outcome.output) == {
            "run_id": RUN_ID,
            "pipeline": "contract",
            "node_id": "score",
            "map_index": 2,
            "attempt": 3,
            "idempotency_key": f"{RUN_ID}:score[2]",
        }
