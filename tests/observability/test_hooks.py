"""Monitoring hooks and the pipeline SLA, on real runs over a real SQLite store.

Hooks must fire with the documented keyword arguments, in the coordinator's
process (the process executor runs tasks elsewhere), never change a run's
outcome, and stay out of what travels to workers.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import lockgate as lg
from lockgate.errors import InvalidPolicyError
from lockgate.model.hooks import HOOK_KWARGS
from lockgate.model.states import EventKind
from lockgate.service.compose import Workspace

CALLS: list[dict[str, Any]] = []
# A hook that closes over a lock: cloudpickle cannot ship it, so the process
# executor works only because tasks travel without their hooks.
_LOCK = threading.Lock()


def record(**kwargs: Any) -> None:
    with _LOCK:
        CALLS.append({**kwargs, "pid": os.getpid()})


def explode(**future_kwargs: Any) -> None:
    raise RuntimeError("the pager is down")


@pytest.fixture(autouse=True)
def _clear() -> None:
    CALLS.clear()


@lg.task(retries=1, retry_delay=0, on_retry=record, on_success=record, on_failure=record)
def flaky(marker: str) -> int:
    # Fails on its first attempt only (the marker file survives the worker).
    if not Path(marker).exists():
        Path(marker).touch()
        raise ValueError("first attempt fails")
    return os.getpid()


@lg.task(on_failure=record)
def broken() -> int:
    raise KeyError("missing")


@lg.pipeline(on_success=record, on_failure=record, on_retry=record)
def retried(marker: str):
    return flaky(marker)


@lg.pipeline(on_failure=record)
def failing():
    return broken()


@lg.task(on_gate_failed=record)
def score() -> dict:
    return {"accuracy": 0.5}


@lg.pipeline(on_gate_failed=record, on_failure=record)
def gated():
    return lg.gate(score(), {"accuracy": ">= 0.9"})


@lg.task(on_success=[explode, record])
def fine() -> int:
    return 1


@lg.pipeline(on_success=explode)
def noisy():
    return fine()


@lg.task
def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@lg.pipeline(sla="0.3s")
def tight(seconds: float = 1.0):
    return slow(seconds)


@lg.pipeline(sla="1h")
def relaxed(seconds: float = 0.0):
    return slow(seconds)


def by_hook(which: str) -> list[dict[str, Any]]:
    return [c for c in CALLS if c["hook"] == which]


def test_hooks_fire_in_the_coordinator_with_the_documented_kwargs(
    workspace: Workspace, tmp_path: Any
) -> None:
    marker = str(tmp_path / "marker")
    result = lg.run(retried, {"marker": marker}, executor="process", workers=1, workspace=workspace)
    assert result.ok
    worker_pid = result.output
    assert worker_pid != os.getpid()
    assert {c["pid"] for c in CALLS} == {os.getpid()}  # never in the worker
    for call in CALLS:
        assert set(call) - {"pid"} == set(HOOK_KWARGS)
    task_retry, pipeline_retry = by_hook("on_retry")
    assert task_retry == pipeline_retry
    assert task_retry["run_id"] == result.run_id
    assert task_retry["pipeline"] == "retried"
    assert task_retry["params"] == {"marker": marker}
    assert (task_retry["node_id"], task_retry["task"], task_retry["attempt"]) == (
        "flaky",
        "flaky",
        1,
    )
    assert task_retry["status"] == "retrying"
    assert task_retry["error"] == "ValueError: first attempt fails"
    task_ok, run_ok = by_hook("on_success")
    assert (task_ok["status"], task_ok["attempt"], task_ok["error"]) == ("succeeded", 2, None)
    assert (run_ok["status"], run_ok["node_id"], run_ok["task"]) == ("succeeded", None, None)
    assert by_hook("on_failure") == []


def test_failure_hooks_of_task_and_pipeline(workspace: Workspace) -> None:
    result = lg.run(failing, executor="inline", workspace=workspace)
    assert result.status.value == "failed"
    task_fail, run_fail = by_hook("on_failure")
    assert (task_fail["node_id"], task_fail["status"]) == ("broken", "failed")
    assert task_fail["error"] == "KeyError: 'missing'"
    assert run_fail["status"] == "failed"
    assert "node 'broken' failed" in run_fail["error"]


def test_gate_failed_hooks_name_the_gate(workspace: Workspace) -> None:
    result = lg.run(gated, executor="inline", workspace=workspace)
    assert result.status.value == "gate_failed"
    gate_calls = by_hook("on_gate_failed")
    assert {(c["node_id"], c["gate"]) for c in gate_calls} == {
        ("gate", "gate"),  # the pipeline's hook
        ("score", "gate"),  # the hook of the task the gate judged
    }
    assert all("accuracy" in c["error"] for c in gate_calls)
    (run_fail,) = by_hook("on_failure")
    assert run_fail["status"] == "gate_failed"


def test_a_raising_hook_is_recorded_and_changes_nothing(workspace: Workspace) -> None:
    result = lg.run(noisy, executor="inline", workspace=workspace)
    assert result.ok
    assert len(by_hook("on_success")) == 1  # the hook after the raising one still ran
    failed = [
        e for e in workspace.metadata.events(result.run_id) if e.kind is EventKind.HOOK_FAILED
    ]
    assert [(e.payload["on"], e.payload["node"]) for e in failed] == [
        ("on_success", "fine"),
        ("on_success", None),
    ]
    assert all(e.payload["hook"] == "test_hooks.explode" for e in failed)
    assert all(e.payload["error"] == "RuntimeError: the pager is down" for e in failed)


def test_hooks_are_checked_at_definition() -> None:
    with pytest.raises(InvalidPolicyError, match=r"task 'a': on_success=42 is invalid"):
        lg.task(name="a", on_success=42)(lambda: 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidPolicyError, match=r"\*\*future_kwargs"):

        @lg.pipeline(on_failure=lambda run_id: None)
        def strict():
            return fine()

    with pytest.raises(InvalidPolicyError, match="never passes"):
        lg.task(name="b", on_retry=lambda who, **kw: None)(lambda: 1)


def test_hooks_leave_the_pipeline_version_alone() -> None:
    def body():
        return slow(1.0)

    plain = lg.pipeline(name="versioned")(body)
    hooked = lg.pipeline(name="versioned", on_failure=record, sla="5m")(body)
    assert plain.version == hooked.version


def test_a_slow_run_misses_its_sla_once(workspace: Workspace) -> None:
    late = lg.run(tight, {"seconds": 1.0}, executor="inline", workspace=workspace)
    assert late.ok  # an SLA miss is recorded, not a failure
    missed = [e for e in workspace.metadata.events(late.run_id) if e.kind is EventKind.SLA_MISSED]
    assert len(missed) == 1
    assert missed[0].payload["sla_s"] == pytest.approx(0.3)
    on_time = lg.run(relaxed, {"seconds": 0.0}, executor="inline", workspace=workspace)
    kinds = {e.kind for e in workspace.metadata.events(on_time.run_id)}
    assert EventKind.SLA_MISSED not in kinds


def test_sla_is_checked_at_definition() -> None:
    with pytest.raises(InvalidPolicyError, match="sla='soon' is invalid"):
        lg.pipeline(name="p1", sla="soon")(lambda: None)
    with pytest.raises(InvalidPolicyError, match="sla=0 is invalid"):
        lg.pipeline(name="p2", sla=0)(lambda: None)
