"""Caching: reuse when code, inputs and parameters match; explain hits and misses."""

from __future__ import annotations

import time

import pytest

import lockgate as lg
from lockgate.model.states import EventKind, TaskState
from lockgate.service.explain import explain

executions: list[str] = []


@lg.task
def load(n: int) -> list:
    executions.append("load")
    return list(range(n))


@lg.task(cache=True)
def featurize(rows: list, scale: float) -> list:
    executions.append("featurize")
    return [r * scale for r in rows]


@lg.pipeline
def p(n: int = 3, scale: float = 2.0):
    return featurize(load(n), scale)


@pytest.fixture(autouse=True)
def _reset():
    executions.clear()


def run(workspace, **kwargs):
    cache = kwargs.pop("cache", True)
    return lg.run(p, params=kwargs, workspace=workspace, executor="inline", cache=cache)


def test_second_run_reuses_the_result_without_executing(workspace):
    first = run(workspace)
    second = run(workspace)
    assert executions == ["load", "featurize", "load"]
    assert second.nodes["featurize"].state is TaskState.CACHED
    assert second.nodes["featurize"].attempts == 0
    assert second.output() == first.output() == [0.0, 2.0, 4.0]
    cached = [
        e for e in workspace.metadata.events(second.run_id) if e.kind is EventKind.TASK_CACHED
    ]
    assert cached[0].payload["source_run"] == first.run_id
    report = explain(workspace, second.run_id, "featurize")
    assert report["verdict"] == "hit" and report["source"]["run_id"] == first.run_id


def test_no_cache_executes_again_and_explain_says_why(workspace):
    run(workspace)
    second = run(workspace, cache=False)
    assert executions.count("featurize") == 2
    assert second.nodes["featurize"].state is TaskState.SUCCEEDED
    report = explain(workspace, second.run_id, "featurize")
    assert report["verdict"] == "miss" and "--no-cache" in report["message"]


def test_a_changed_parameter_misses_and_is_named(workspace):
    run(workspace)
    second = run(workspace, scale=3.0)
    assert second.nodes["featurize"].state is TaskState.SUCCEEDED
    report = explain(workspace, second.run_id, "featurize")
    assert report["verdict"] == "miss"
    assert report["differences"] == ["argument 1: value 2.0 -> value 3.0"]


def test_a_changed_input_artifact_misses_and_is_named(workspace):
    run(workspace)
    second = run(workspace, n=4)
    report = explain(workspace, second.run_id, "featurize")
    assert report["verdict"] == "miss"
    (difference,) = report["differences"]
    assert difference.startswith("argument 0: input artifact sha256:")


def test_changed_source_misses_and_explain_names_the_code_version(workspace):
    run(workspace)

    @lg.task(cache=True, name="featurize")
    def featurize_v2(rows: list, scale: float) -> list:
        return [r * scale + 0 for r in rows]

    @lg.pipeline(name="p")
    def p2(n: int = 3, scale: float = 2.0):
        return featurize_v2(load(n), scale)

    second = lg.run(p2, workspace=workspace, executor="inline")
    assert second.nodes["featurize"].state is TaskState.SUCCEEDED
    report = explain(workspace, second.run_id, "featurize")
    assert report["differences"][0].startswith("code version changed")


def test_expired_results_are_not_reused(workspace):
    @lg.task(cache=lg.CachePolicy(expire=0.2))
    def stamp() -> str:
        executions.append("stamp")
        return "x"

    @lg.pipeline
    def short():
        return stamp()

    lg.run(short, workspace=workspace, executor="inline")
    lg.run(short, workspace=workspace, executor="inline")
    assert executions == ["stamp"]
    time.sleep(0.3)
    third = lg.run(short, workspace=workspace, executor="inline")
    assert executions == ["stamp", "stamp"]
    assert "expired" in explain(workspace, third.run_id, "stamp")["message"]


def test_map_items_are_cached_one_by_one(workspace):
    @lg.task(cache=True)
    def double(x: int) -> int:
        executions.append(f"double({x})")
        return 2 * x

    @lg.pipeline
    def fan(items: list = [1, 2, 3]):  # noqa: B006
        return double.map(items)

    lg.run(fan, workspace=workspace, executor="inline")
    executions.clear()
    second = lg.run(fan, params={"items": [1, 2, 4]}, workspace=workspace, executor="inline")
    assert executions == ["double(4)"]
    assert second.output() == [2, 4, 8]
    states = [item.state for item in second.nodes["double"].items]
    assert states == [TaskState.CACHED, TaskState.CACHED, TaskState.SUCCEEDED]
    assert explain(workspace, second.run_id, "double[0]")["verdict"] == "hit"


def test_explain_for_uncached_and_unknown_nodes(workspace):
    result = run(workspace)
    assert explain(workspace, result.run_id, "load")["verdict"] == "off"
    with pytest.raises(lg.errors.NodeNotFoundError, match="its nodes: featurize, load"):
        explain(workspace, result.run_id, "nope")
