"""Resume: finish a failed or cancelled run under the same id, without redoing committed work."""

from __future__ import annotations

import time

import pytest

import lockgate as lg
from lockgate.errors import RunStateError
from lockgate.model.states import AttemptState, EventKind, RunState, TaskState

calls: list[str] = []
broken = {"value": True}


@lg.task
def extract() -> list:
    calls.append("extract")
    return [1, 2, 3]


@lg.task(retries=1, retry_delay=0)
def transform(rows: list) -> list:
    calls.append("transform")
    if broken["value"]:
        raise RuntimeError("upstream API is down")
    return [r * 10 for r in rows]


@lg.task
def publish(rows: list) -> int:
    calls.append("publish")
    return sum(rows)


@lg.pipeline
def etl():
    return publish(transform(extract()))


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    broken["value"] = True


def test_resume_reruns_only_what_did_not_commit(workspace):
    failed = lg.run(etl, workspace=workspace, executor="inline")
    assert failed.status is RunState.FAILED
    assert calls == ["extract", "transform", "transform"]
    broken["value"] = False
    calls.clear()
    resumed = lg.resume(failed.run_id, pipeline=etl, workspace=workspace, executor="inline")
    assert resumed.run_id == failed.run_id and resumed.ok
    assert calls == ["transform", "publish"]  # extract's committed result was reused
    assert resumed.output() == 60
    attempts = [a for a in workspace.metadata.attempts(failed.run_id) if a.node_id == "transform"]
    assert [(a.number, a.state) for a in attempts] == [
        (1, AttemptState.FAILED),
        (2, AttemptState.FAILED),
        (3, AttemptState.SUCCEEDED),
    ]
    events = workspace.metadata.events(failed.run_id)
    resumed_events = [e for e in events if e.kind is EventKind.RUN_RESUMED]
    assert resumed_events[0].payload == {"by": "python", "previous_status": "failed"}
    assert [e.kind for e in events].count(EventKind.RUN_SUCCEEDED) == 1
    extract_runs = [
        e for e in events if e.node_id == "extract" and e.kind is EventKind.TASK_SUCCEEDED
    ]
    assert len(extract_runs) == 1


def test_resumed_tasks_get_a_fresh_retry_budget(workspace):
    failed = lg.run(etl, workspace=workspace, executor="inline")
    again = lg.resume(failed.run_id, pipeline=etl, workspace=workspace, executor="inline")
    assert again.status is RunState.FAILED
    numbers = [
        a.number for a in workspace.metadata.attempts(failed.run_id) if a.node_id == "transform"
    ]
    assert numbers == [1, 2, 3, 4]  # retries=1 means two attempts per drive, numbered on


def test_a_succeeded_run_cannot_be_resumed(workspace):
    broken["value"] = False
    done = lg.run(etl, workspace=workspace, executor="inline")
    with pytest.raises(RunStateError, match="already succeeded"):
        lg.resume(done.run_id, pipeline=etl, workspace=workspace)


def test_a_run_with_a_live_coordinator_cannot_be_resumed(workspace):
    failed = lg.run(etl, workspace=workspace, executor="inline")
    workspace.metadata.set_run_state(failed.run_id, RunState.RUNNING, time.time())
    with pytest.raises(RunStateError, match="still being driven"):
        lg.resume(failed.run_id, pipeline=etl, workspace=workspace)


def test_resume_refuses_changed_code(workspace):
    failed = lg.run(etl, workspace=workspace, executor="inline")

    @lg.task(name="publish")
    def publish_v2(rows: list) -> int:
        return max(rows)

    @lg.pipeline(name="etl")
    def etl_v2():
        return publish_v2(transform(extract()))

    with pytest.raises(RunStateError, match="the code changed since the run"):
        lg.resume(failed.run_id, pipeline=etl_v2, workspace=workspace)


def test_a_pipeline_defined_in_a_function_needs_to_be_passed(workspace):
    @lg.pipeline
    def local():
        return extract()

    result = lg.run(local, workspace=workspace, executor="inline")
    workspace.metadata.set_run_state(result.run_id, RunState.FAILED, time.time())
    with pytest.raises(RunStateError, match=r"lg\.resume"):
        lg.resume(result.run_id, workspace=workspace)


def test_a_cancelled_run_resumes(workspace):
    @lg.task
    def stop(rows: list) -> list:
        calls.append("stop")
        if broken["value"]:
            raise KeyboardInterrupt
        return rows

    @lg.pipeline
    def interruptible():
        return publish(stop(extract()))

    with pytest.raises(KeyboardInterrupt):
        lg.run(interruptible, workspace=workspace, executor="inline")
    run = workspace.metadata.list_runs(limit=1)[0]
    assert run.status is RunState.CANCELLED
    broken["value"] = False
    resumed = lg.resume(run.id, pipeline=interruptible, workspace=workspace, executor="inline")
    assert resumed.ok and resumed.output() == 6
    assert calls == ["extract", "stop", "stop", "publish"]
    states = {r.node_id: r.state for r in workspace.metadata.task_runs(run.id)}
    assert set(states.values()) == {TaskState.SUCCEEDED}
