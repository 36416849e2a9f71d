"""`evaluate`: scores overall and per cohort, as a direct call and as a pipeline node."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import lockgate as lg
from lockgate.errors import InvalidPolicyError, TracingError
from lockgate.evals import (
    Accuracy,
    EvaluationError,
    Groundedness,
    Rmse,
    RocAuc,
    TaskCompletion,
    evaluate,
)
from lockgate.model.refs import NodeRef
from lockgate.model.states import TaskState

ROWS = [
    {"cohort": "billing", "label": 1, "prediction": 1, "score": 0.9},
    {"cohort": "billing", "label": 0, "prediction": 1, "score": 0.6},
    {"cohort": "billing", "label": 0, "prediction": 0, "score": 0.2},
    {"cohort": "login", "label": 1, "prediction": 1, "score": 0.8},
    {"cohort": "login", "label": 0, "prediction": 0, "score": 0.3},
]


def test_scores_overall_and_per_cohort():
    scores = evaluate(ROWS, ["accuracy", RocAuc()], by="cohort")
    assert scores["metrics"] == {"accuracy": 0.8, "roc_auc": 1.0}
    assert scores["n"] == 5 and scores["by"] == "cohort"
    assert scores["cohorts"] == {
        "billing": {"metrics": {"accuracy": pytest.approx(2 / 3), "roc_auc": 1.0}, "n": 3},
        "login": {"metrics": {"accuracy": 1.0, "roc_auc": 1.0}, "n": 2},
    }
    assert scores["details"]["accuracy"] == {"correct": 4}
    assert scores["evaluators"][0] == Accuracy().spec()
    assert json.loads(json.dumps(scores, allow_nan=False)) == scores


def test_without_by_there_are_no_cohorts():
    scores = evaluate(ROWS, "accuracy")
    assert scores["by"] is None and scores["cohorts"] == {}
    assert scores["metrics"] == {"accuracy": 0.8}


def test_cohort_keys_are_strings_in_sorted_order_and_missing_values_group_as_null():
    rows = [
        {"tier": 2, "label": 1, "prediction": 1},
        {"tier": None, "label": 1, "prediction": 0},
        {"tier": 10, "label": 0, "prediction": 0},
        {"tier": float("nan"), "label": 1, "prediction": 1},
    ]
    scores = evaluate(rows, ["accuracy"], by="tier")
    assert list(scores["cohorts"]) == ["10", "2", "null"]
    assert scores["cohorts"]["null"] == {"metrics": {"accuracy": 0.5}, "n": 2}


def test_a_dataframe_is_scored_like_its_rows():
    frame = pd.DataFrame(ROWS)
    assert evaluate(frame, ["accuracy", "f1"], by="cohort") == evaluate(
        ROWS, ["accuracy", "f1"], by="cohort"
    )


def test_row_details_stay_bounded_and_out_of_the_cohorts():
    rows = [{"answer": f"Row {i} invents a fact.", "context": "Nothing."} for i in range(120)]
    rows = [{**r, "cohort": i % 2} for i, r in enumerate(rows)]
    scores = evaluate(
        rows, [TaskCompletion(rule={"contains": ["fact"]}), Groundedness()], by="cohort"
    )
    assert len(scores["details"]["groundedness"]["rows"]) == 50
    assert scores["details"]["groundedness"]["method"].startswith(("embeddings", "lexical"))
    assert set(scores["cohorts"]["0"]) == {"metrics", "n"}


def test_an_undefined_metric_in_one_cohort_names_the_cohort():
    rows = [*ROWS, {"cohort": "refunds", "label": 1, "prediction": 1, "score": 0.7}]
    with pytest.raises(
        EvaluationError, match=r"cohort 'refunds' of by='cohort' \(1 rows\): roc_auc"
    ):
        evaluate(rows, [RocAuc()], by="cohort")


@pytest.mark.parametrize(
    ("evaluators", "message"),
    [
        (["acuracy"], r"unknown evaluator 'acuracy': did you mean 'accuracy'\?"),
        (["accuracy", Accuracy(label="y")], r"two evaluators report the metric 'accuracy'"),
        ([], r"no evaluators given"),
        ([object()], r"is not an evaluator"),
        ([{"type": "task_completion", "params": {"rule": {"startswith": "x"}}}], "unknown rule"),
    ],
)
def test_bad_evaluator_lists_are_refused(evaluators, message):
    with pytest.raises(EvaluationError, match=message):
        evaluate(ROWS, evaluators)


def test_bad_datasets_and_columns_are_refused():
    with pytest.raises(EvaluationError, match=r"row 0 has no column 'segment' to group by"):
        evaluate(ROWS, ["accuracy"], by="segment")
    with pytest.raises(EvaluationError, match=r"dict of columns\? pass a list of row dicts"):
        evaluate({"label": [1], "prediction": [1]}, ["accuracy"])
    with pytest.raises(EvaluationError, match=r"evaluate: there are no rows"):
        evaluate([], ["accuracy"])
    with pytest.raises(EvaluationError, match=r"rmse: row 0 has no column 'target'"):
        evaluate(ROWS, ["rmse"])


# --- as a pipeline node ------------------------------------------------------


@lg.task
def predictions(n: int) -> list:
    return ROWS[:n]


@lg.pipeline
def scored(n: int = 5):
    rows = predictions(n)
    return evaluate(rows, ["accuracy", Rmse(target="label", prediction="score")], by="cohort")


def test_in_a_pipeline_it_records_a_node_with_json_like_arguments():
    node = scored.graph.nodes["evaluate"]
    assert node.task.name == "evaluate"
    assert node.upstream == ("predictions",)
    (rows,) = node.args
    assert rows == NodeRef("predictions")
    assert node.kwargs == {
        "evaluators": [Accuracy().spec(), Rmse(target="label", prediction="score").spec()],
        "by": "cohort",
    }
    json.dumps(node.to_dict(), allow_nan=False)  # hashable into the pipeline version


def test_nodes_can_be_named_and_called_twice():
    @lg.pipeline
    def twice():
        rows = predictions(5)
        evaluate(rows, ["accuracy"], name="eval_quality")
        return evaluate(rows, ["f1"])

    assert set(twice.graph.nodes) == {"predictions", "eval_quality", "evaluate"}
    with pytest.raises(InvalidPolicyError, match="a Python identifier"):
        evaluate(ROWS, ["accuracy"], name="eval quality")


def test_a_placeholder_outside_a_pipeline_is_refused():
    @lg.pipeline
    def leak():
        leaked.append(predictions(5))
        return leaked[0]

    leaked: list = []
    _ = leak.graph
    with pytest.raises(TracingError, match="placeholder outside a pipeline body"):
        evaluate(leaked[0], ["accuracy"])


def test_a_run_stores_the_scores_as_a_json_artifact(workspace):
    result = lg.run(scored, executor="inline", workspace=workspace)
    assert result.ok
    scores = result.output()
    assert scores == evaluate(
        ROWS, ["accuracy", Rmse(target="label", prediction="score")], by="cohort"
    )
    assert scores["metrics"]["accuracy"] == 0.8
    record = next(r for r in workspace.metadata.task_runs(result.run_id) if r.node_id == "evaluate")
    assert record.state is TaskState.SUCCEEDED
    assert record.output is not None and record.output.serializer == "json"


def test_a_worker_process_rebuilds_the_evaluators_from_their_specs(workspace):
    result = lg.run(scored, params={"n": 4}, executor="process", workers=1, workspace=workspace)
    assert result.ok, result.nodes["evaluate"].error
    assert result.output()["cohorts"]["login"] == {
        "metrics": {"accuracy": 1.0, "rmse": pytest.approx(0.2)},
        "n": 1,
    }


def test_bad_rows_fail_the_node_with_the_evaluator_message(workspace):
    @lg.pipeline
    def missing():
        return evaluate(predictions(5), ["rmse"])

    result = lg.run(missing, executor="inline", workspace=workspace)
    assert not result.ok
    error = result.nodes["evaluate"].error or ""
    assert "rmse: row 0 has no column 'target'" in error
