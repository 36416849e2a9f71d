"""Whole runs on the process executor: the default way pipelines run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import lockgate as lg
from lockgate.model.states import AttemptState, RunState, TaskState


@lg.task
def numbers(n: int) -> list:
    return list(range(n))


@lg.task
def nap(x: int) -> int:
    time.sleep(0.4)
    return x * x


@lg.task
def total(values: list) -> int:
    return sum(values)


@lg.pipeline
def fan(n: int = 4):
    return total(nap.map(numbers(n)))


def test_map_items_run_in_parallel_across_the_pool(workspace):
    result = lg.run(fan, workspace=workspace, executor="process", workers=2)
    assert result.ok and result.output() == 0 + 1 + 4 + 9
    items = [a for a in workspace.metadata.attempts(result.run_id) if a.node_id == "nap"]
    assert len(items) == 4
    overlapping = any(
        a.started_at < b.finished_at and b.started_at < a.finished_at
        for i, a in enumerate(items)
        for b in items[i + 1 :]
    )
    assert overlapping, "no two map items ran at the same time on a 2-worker pool"


def test_a_hung_task_times_out_is_retried_and_recorded(workspace, tmp_path):
    marker = tmp_path / "tries"

    @lg.task(timeout=0.5, retries=1, retry_delay=0)
    def hangs_once() -> str:
        with marker.open("a") as handle:
            handle.write("x")
        if len(marker.read_text()) == 1:
            time.sleep(60)
        return "done"

    @lg.pipeline
    def p():
        return hangs_once()

    result = lg.run(p, workspace=workspace, executor="process", workers=1)
    assert result.ok and result.output() == "done"
    attempts = workspace.metadata.attempts(result.run_id)
    assert [a.state for a in attempts] == [AttemptState.TIMED_OUT, AttemptState.SUCCEEDED]
    assert attempts[0].error.message == "timed out after 0.5 s"


def test_a_crashed_worker_is_a_failed_attempt_that_is_retried(workspace, tmp_path):
    marker = tmp_path / "crashed"

    @lg.task(retries=1, retry_delay=0)
    def crashes_once() -> int:
        if not marker.exists():
            marker.touch()
            os._exit(3)
        return 7

    @lg.pipeline
    def p():
        return crashes_once()

    result = lg.run(p, workspace=workspace, executor="process")
    assert result.ok and result.output() == 7
    first = workspace.metadata.attempts(result.run_id)[0]
    assert first.state is AttemptState.FAILED
    assert first.error.type == "lockgate.WorkerCrashed"
    assert first.error.message == "worker exited with code 3"


def test_failures_skip_downstream_on_the_pool_too(workspace):
    @lg.task
    def broken(values: list) -> list:
        raise ValueError("bad input")

    @lg.pipeline
    def p():
        return total(broken(numbers(3)))

    result = lg.run(p, workspace=workspace, executor="process")
    assert result.status is RunState.FAILED
    assert result.nodes["total"].state is TaskState.SKIPPED
    error = workspace.metadata.attempts(result.run_id)[1].error
    assert error.type == "ValueError" and "raise ValueError" in error.traceback


def test_the_same_pipeline_records_the_same_states_on_both_executors(workspace):
    inline = lg.run(fan, params={"n": 3}, workspace=workspace, executor="inline")
    pooled = lg.run(fan, params={"n": 3}, workspace=workspace, executor="process", cache=False)

    def shape(result):
        return sorted(
            (
                r.node_id,
                -1 if r.map_index is None else r.map_index,
                r.state.value,
                r.attempts,
                r.output.sha256 if r.output else None,
            )
            for r in workspace.metadata.task_runs(result.run_id)
        )

    assert shape(inline) == shape(pooled)


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_worker_output_is_kept_per_attempt(workspace, executor):
    @lg.task
    def speak() -> int:
        print("hello from", lg.current().node_id)
        return 1

    @lg.pipeline
    def p():
        return speak()

    from lockgate.service.logs import attempt_logs

    result = lg.run(p, workspace=workspace, executor=executor)
    (log,) = attempt_logs(workspace, result.run_id, "speak")
    assert log.read() == "hello from speak\n"
    assert Path(log.path).is_relative_to(workspace.settings.logs_root)
