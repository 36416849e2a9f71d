"""Running pipelines end to end on a real SQLite store and local artifacts."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

import lockgate as lg
from lockgate.errors import RunFailedError
from lockgate.model.states import AttemptState, EventKind, RunState, TaskState


@lg.task
def numbers(n: int) -> list:
    return list(range(n))


@lg.task
def total(values: list) -> int:
    return sum(values)


@lg.task
def square(x: int) -> int:
    return x * x


@lg.pipeline
def chain(n: int = 4):
    return total(numbers(n))


def test_chain_succeeds_and_outputs_load_on_demand(workspace):
    result = lg.run(chain, params={"n": 5}, workspace=workspace, executor="inline")
    assert result.ok and result.status is RunState.SUCCEEDED
    assert result.output() == 10
    assert result.output("numbers") == [0, 1, 2, 3, 4]
    assert {n: r.state for n, r in result.nodes.items()} == {
        "numbers": TaskState.SUCCEEDED,
        "total": TaskState.SUCCEEDED,
    }
    assert result.raise_for_status() is result
    run = workspace.metadata.get_run(result.run_id)
    assert run.params == {"n": 5} and run.trigger == "python"
    assert run.pipeline_version == chain.version
    assert run.started_at is not None and run.finished_at >= run.started_at


def test_every_transition_is_an_event_in_order(workspace):
    result = lg.run(chain, workspace=workspace, executor="inline")
    kinds = [(e.kind.value, e.node_id) for e in workspace.metadata.events(result.run_id)]
    assert kinds == [
        ("run_created", None),
        ("run_started", None),
        ("task_queued", "numbers"),
        ("task_started", "numbers"),
        ("task_succeeded", "numbers"),
        ("task_queued", "total"),
        ("task_started", "total"),
        ("task_succeeded", "total"),
        ("run_succeeded", None),
    ]
    for attempt in workspace.metadata.attempts(result.run_id):
        assert attempt.queued_at <= attempt.started_at <= attempt.finished_at


def test_flaky_task_fails_twice_then_succeeds_with_three_attempts(workspace):
    calls = []

    @lg.task(retries=2, retry_delay=0.01)
    def flaky() -> str:
        calls.append(lg.current().attempt)
        if len(calls) < 3:
            raise ConnectionError(f"flake {len(calls)}")
        return "ok"

    @lg.pipeline
    def p():
        return flaky()

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.ok and result.output() == "ok"
    assert calls == [1, 2, 3]
    assert result.nodes["flaky"].attempts == 3
    attempts = workspace.metadata.attempts(result.run_id)
    assert [a.state for a in attempts] == [
        AttemptState.FAILED,
        AttemptState.FAILED,
        AttemptState.SUCCEEDED,
    ]
    assert attempts[0].error.type == "ConnectionError" and "flake 1" in attempts[0].error.message
    assert "raise ConnectionError" in attempts[0].error.traceback
    retrying = [
        e for e in workspace.metadata.events(result.run_id) if e.kind is EventKind.TASK_RETRYING
    ]
    assert len(retrying) == 2 and all("retry_at" in e.payload for e in retrying)


def test_retries_wait_with_backoff(workspace):
    @lg.task(retries=2, retry_delay=0.05, backoff=2)
    def always_fails():
        raise RuntimeError("down")

    @lg.pipeline
    def p():
        return always_fails()

    result = lg.run(p, workspace=workspace, executor="inline")
    attempts = workspace.metadata.attempts(result.run_id)
    assert len(attempts) == 3
    gaps = [b.queued_at - a.finished_at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1


def test_failure_skips_downstream_and_fails_the_run_but_other_branches_run(workspace):
    @lg.task
    def explode(x):
        raise ValueError("bad batch")

    @lg.pipeline
    def p():
        rows = numbers(3)
        broken = explode(rows)
        after_broken = total(broken)
        fine = total(rows)
        return [after_broken, fine]

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.status is RunState.FAILED
    states = {n: r.state for n, r in result.nodes.items()}
    assert states == {
        "numbers": TaskState.SUCCEEDED,
        "explode": TaskState.FAILED,
        "total": TaskState.SKIPPED,
        "total_2": TaskState.SUCCEEDED,
    }
    assert "node 'explode' failed" in result.record.error
    assert "ValueError: bad batch" in result.record.error
    assert result.nodes["total"].error == "upstream node 'explode' failed"
    with pytest.raises(RunFailedError, match="bad batch"):
        result.raise_for_status()
    with pytest.raises(RunFailedError, match="skipped"):
        result.output("total")


def test_exceptions_outside_retry_on_fail_at_once(workspace):
    @lg.task(retries=3, retry_delay=0, retry_on=ConnectionError)
    def strict():
        raise KeyError("missing column")

    @lg.pipeline
    def p():
        return strict()

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.status is RunState.FAILED
    assert result.nodes["strict"].attempts == 1


def test_context_gives_ids_and_an_idempotency_key_stable_across_retries(workspace):
    seen = []

    @lg.task(retries=1, retry_delay=0)
    def side_effect():
        ctx = lg.current()
        seen.append((ctx.run_id, ctx.node_id, ctx.attempt, ctx.idempotency_key, ctx.map_index))
        ctx.logger.info("attempt %d", ctx.attempt)
        if ctx.attempt == 1:
            raise TimeoutError("first try times out")
        return ctx.idempotency_key

    @lg.pipeline
    def p():
        return side_effect()

    result = lg.run(p, workspace=workspace, executor="inline")
    assert [s[2] for s in seen] == [1, 2]
    assert seen[0][3] == seen[1][3] == f"{result.run_id}:side_effect"
    assert seen[0][0] == result.run_id and seen[0][1] == "side_effect" and seen[0][4] is None
    with pytest.raises(lg.errors.LockgateError, match="outside a running task"):
        lg.current()


def test_after_orders_nodes_without_data(workspace):
    order = []

    @lg.task
    def step(name: str) -> str:
        order.append(name)
        return name

    @lg.pipeline
    def p():
        last = step("last")
        first = step("first")
        last.after(first)
        return last

    assert lg.run(p, workspace=workspace, executor="inline").ok
    assert order == ["first", "last"]


def test_map_runs_each_item_as_its_own_task_run_and_keeps_order(workspace):
    @lg.pipeline
    def p(n: int = 4):
        squares = square.map(numbers(n))
        return total(squares)

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.ok and result.output() == 0 + 1 + 4 + 9
    assert result.output("square") == [0, 1, 4, 9]
    items = result.nodes["square"].items
    assert [i.map_index for i in items] == [0, 1, 2, 3]
    assert all(i.state is TaskState.SUCCEEDED for i in items)


def test_map_items_retry_independently(workspace):
    tries: dict[int, int] = {}

    @lg.task(retries=1, retry_delay=0)
    def fragile(x: int) -> int:
        tries[x] = tries.get(x, 0) + 1
        if x == 2 and tries[x] == 1:
            raise OSError("transient")
        return x

    @lg.pipeline
    def p(items: list = [1, 2, 3]):  # noqa: B006
        return fragile.map(items)

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.ok and result.output() == [1, 2, 3]
    assert tries == {1: 1, 2: 2, 3: 1}
    assert [i.attempts for i in result.nodes["fragile"].items] == [1, 2, 1]


def test_map_over_empty_list_succeeds_with_empty_output(workspace):
    @lg.pipeline
    def p():
        return total(square.map(numbers(0)))

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.ok and result.output() == 0 and result.output("square") == []


def test_map_over_a_non_list_fails_the_node_with_advice(workspace):
    @lg.task
    def scalar() -> int:
        return 7

    @lg.pipeline
    def p():
        return square.map(scalar())

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.status is RunState.FAILED
    assert "not a list" in result.nodes["square"].error


def test_map_item_failure_fails_the_node_and_skips_downstream(workspace):
    @lg.task
    def picky(x: int) -> int:
        if x == 1:
            raise ValueError("one is bad")
        return x

    @lg.pipeline
    def p():
        return total(picky.map(numbers(3)))

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.status is RunState.FAILED
    assert result.nodes["picky"].state is TaskState.FAILED
    assert "picky[1]" in result.record.error
    assert result.nodes["total"].state is TaskState.SKIPPED
    states = [i.state for i in result.nodes["picky"].items]
    assert states == [TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SUCCEEDED]


def test_unserializable_output_fails_the_node_once_and_is_recorded(workspace):
    @lg.task(retries=3, retry_delay=0)
    def stream():
        return (i for i in range(3))

    @lg.pipeline
    def p():
        return stream()

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.status is RunState.FAILED
    assert result.nodes["stream"].attempts == 1
    attempt = workspace.metadata.attempts(result.run_id)[0]
    assert attempt.error.type == "lockgate.errors.UnserializableOutputError"
    assert "node 'stream'" in attempt.error.message and "generator" in attempt.error.message


def test_inline_timeout_is_recorded_after_the_function_returns(workspace):
    import time

    @lg.task(timeout=0.05, retries=1, retry_delay=0)
    def slow() -> int:
        time.sleep(0.1 if lg.current().attempt == 1 else 0)
        return 1

    @lg.pipeline
    def p():
        return slow()

    with pytest.warns(lg.errors.LockgateWarning, match="cannot enforce"):
        result = lg.run(p, workspace=workspace, executor="inline")
    assert result.ok
    states = [a.state for a in workspace.metadata.attempts(result.run_id)]
    assert states == [AttemptState.TIMED_OUT, AttemptState.SUCCEEDED]


def test_ctrl_c_in_a_task_cancels_the_run_and_keeps_what_committed(workspace):
    @lg.task
    def interrupt(values):
        raise KeyboardInterrupt

    @lg.pipeline
    def p():
        return total(interrupt(numbers(2)))

    with pytest.raises(KeyboardInterrupt):
        lg.run(p, workspace=workspace, executor="inline")
    run = workspace.metadata.list_runs(limit=1)[0]
    assert run.status is RunState.CANCELLED
    states = {r.node_id: r.state for r in workspace.metadata.task_runs(run.id)}
    assert states == {
        "numbers": TaskState.SUCCEEDED,
        "interrupt": TaskState.CANCELLED,
        "total": TaskState.CANCELLED,
    }


def test_same_output_twice_is_stored_once(workspace):
    @lg.task
    def big(seed: int) -> list:
        return list(range(10_000))

    @lg.pipeline
    def p():
        return [big(1), big(2)]

    first = lg.run(p, workspace=workspace, executor="inline")
    second = lg.run(p, workspace=workspace, executor="inline")
    assert first.ok and second.ok
    assert len(workspace.metadata.list_artifacts()) == 1
    assert len(list(workspace.artifacts.blobs())) == 1
    sha = workspace.metadata.list_artifacts()[0].ref.sha256
    produced = [e for e in workspace.metadata.lineage(sha) if e.direction == "produced"]
    assert len(produced) == 4  # two nodes in each of two runs, one blob


def test_parameters_reach_tasks_with_their_types(workspace):
    import datetime as dt

    @lg.task
    def echo(day, n):
        return [type(day).__name__, day.isoformat(), n]

    @lg.pipeline
    def p(day: dt.date = dt.date(2026, 1, 1), n: int = 1):
        return echo(day, n)

    result = lg.run(
        p, params={"day": "2026-11-24", "n": "3"}, workspace=workspace, executor="inline"
    )
    assert result.output() == ["date", "2026-11-24", 3]
    assert workspace.metadata.get_run(result.run_id).params == {"day": "2026-11-24", "n": 3}


def test_corrupted_input_is_detected_and_its_consumer_fails_naming_the_uri(workspace):
    @lg.task
    def make() -> list:
        return list(range(5000))  # large enough to be a blob, not inline

    @lg.task
    def vandal() -> None:
        root = Path(workspace.settings.artifact_root)
        (blob,) = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
        blob.chmod(0o644)
        data = bytearray(blob.read_bytes())
        data[10] ^= 0xFF
        blob.write_bytes(bytes(data))

    @lg.task(retries=2, retry_delay=0)
    def consume(values) -> int:
        return len(values)

    @lg.pipeline
    def p():
        data = make()
        broken = vandal(after=[data])
        return consume(data, after=[broken])

    result = lg.run(p, workspace=workspace, executor="inline")
    assert result.status is RunState.FAILED
    attempts = [a for a in workspace.metadata.attempts(result.run_id) if a.node_id == "consume"]
    assert len(attempts) == 1  # retrying cannot repair a corrupt input
    error = attempts[0].error
    assert error.type == "lockgate.errors.ArtifactCorrupted" and not error.user
    uri = workspace.metadata.task_runs(result.run_id)[0].output.uri
    assert uri in error.message and "output of node 'make'" in error.message
    with pytest.raises(lg.errors.ArtifactCorrupted):
        result.output("make")
