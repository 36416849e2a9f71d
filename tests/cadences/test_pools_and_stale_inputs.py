"""Pools cap how many tasks run at once across runs; stale inputs fail (or warn) fast."""

from __future__ import annotations

import threading
import time

import pytest

import lockgate as lg
from lockgate.errors import ConfigError
from lockgate.model.states import EventKind, RunState, TaskState
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.project import Project
from overlap import max_overlap


@lg.task(pool="gpu")
def train(i: int) -> int:
    time.sleep(0.3)
    return i


@lg.pipeline
def sweep():
    return [train(i) for i in range(3)]


@pytest.mark.parametrize("slots", [1, 2])
def test_pool_slots_are_never_over_committed_across_concurrent_runs(tmp_path, slots):
    workspace = Workspace(
        Settings.from_env({}, home=tmp_path / "home"), project=Project(pools={"gpu": slots})
    )
    results = []

    def one() -> None:
        results.append(lg.run(sweep, executor="process", workers=3, workspace=workspace))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [r.ok for r in results] == [True, True]
    intervals = [
        (a.started_at, a.finished_at)
        for r in results
        for a in workspace.metadata.attempts(r.run_id)
        if a.started_at and a.finished_at
    ]
    assert len(intervals) == 6
    assert max_overlap(intervals) == slots  # used up to the limit, never beyond
    # Waiting for a slot is queue time: with one slot, someone waited for five others.
    waits = sorted(
        a.queue_time or 0 for r in results for a in workspace.metadata.attempts(r.run_id)
    )
    if slots == 1:
        assert waits[-1] >= 5 * 0.3 * 0.9
    workspace.close()


def test_an_unconfigured_pool_is_an_error_before_the_run_exists(workspace):
    with pytest.raises(ConfigError, match=r"uses pool 'gpu'.*add `gpu = 1` under \[pools\]"):
        lg.run(sweep, executor="inline", workspace=workspace)
    assert workspace.metadata.list_runs() == []


@lg.task
def produce() -> lg.Dataset:
    return lg.Dataset("events", [1, 2, 3])


@lg.pipeline
def ingest():
    return produce()


@lg.task
def total(rows: list) -> int:
    return sum(rows)


@lg.pipeline(max_input_age=0.5)
def strict():
    return total(lg.Dataset.ref("events"))


@lg.pipeline(max_input_age=0.5, on_stale_input="warn")
def lenient():
    return total(lg.Dataset.ref("events"))


def test_a_stale_input_fails_the_run_before_anything_executes(workspace):
    assert lg.run(ingest, executor="inline", workspace=workspace).ok
    assert lg.run(strict, executor="inline", workspace=workspace).ok  # fresh: runs
    time.sleep(0.7)
    result = lg.run(strict, executor="inline", workspace=workspace)
    assert result.status is RunState.FAILED
    assert "stale input: dataset:events@1 is" in result.record.error
    assert "max_input_age" in result.record.error
    assert [n.state for n in result.nodes.values()] == [TaskState.SKIPPED]
    assert workspace.metadata.attempts(result.run_id) == []  # nothing ran


def test_a_tolerated_stale_input_runs_and_records_a_warning(workspace):
    assert lg.run(ingest, executor="inline", workspace=workspace).ok
    time.sleep(0.7)
    result = lg.run(lenient, executor="inline", workspace=workspace)
    assert result.ok and result.output() == 6
    warnings = [
        e for e in workspace.metadata.events(result.run_id) if e.kind is EventKind.RUN_WARNING
    ]
    assert len(warnings) == 1 and "dataset:events@1" in warnings[0].payload["message"]
