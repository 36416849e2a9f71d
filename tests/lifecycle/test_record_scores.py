"""The record's `scores` holds every `lg.evaluate` node, renamed ones (`name=`) included."""

from __future__ import annotations

import lockgate as lg
from lockgate import evals
from lockgate.service import record


@lg.task
def predictions() -> list:
    return [
        {"label": 1, "prediction": 1, "group": "a"},
        {"label": 0, "prediction": 1, "group": "b"},
        {"label": 0, "prediction": 0, "group": "b"},
    ]


@lg.task
def evaluate(rows: list) -> dict:
    """A user's own task that happens to be called `evaluate`: still listed, as before."""
    return {"metrics": {"rows": float(len(rows))}}


@lg.pipeline
def scored():
    rows = predictions()
    lg.evaluate(rows, [evals.Accuracy()])
    lg.evaluate(rows, [evals.Accuracy()], by="group", name="by_group")
    return evaluate(rows)


def test_named_evaluate_nodes_are_in_the_records_scores(workspace):
    result = lg.run(scored, executor="inline", workspace=workspace)
    assert result.ok, result.record.error
    scores = record.build(workspace, result.run_id)["scores"]
    assert set(scores) == {"evaluate", "by_group", "evaluate_2"}
    assert scores["by_group"]["cohorts"]["b"]["metrics"] == {"accuracy": 0.5}
    assert scores["evaluate"]["metrics"] == {"accuracy": 2 / 3}
