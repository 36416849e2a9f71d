"""Specs: JSON descriptions that rebuild the same evaluator in a worker; custom evaluators."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

import lockgate as lg
from lockgate.evals import (
    F1,
    Accuracy,
    ContextRelevance,
    EvaluationError,
    Evaluator,
    Groundedness,
    Rmse,
    RocAuc,
    Score,
    TaskCompletion,
    evaluate,
    from_spec,
)
from lockgate.evals.base import custom_spec

ROWS = [
    {"y": "spam", "yhat": "spam", "p": 0.9, "t": 1.0, "q": "What is spam?"},
    {"y": "ham", "yhat": "spam", "p": 0.7, "t": 2.0, "q": "What is ham?"},
    {"y": "ham", "yhat": "ham", "p": 0.1, "t": 0.5, "q": "Why filter?"},
]
TEXT = [
    {"ctx": ["Spam is junk mail."], "a": "Spam is junk mail.", "ref": "junk mail"},
    {"ctx": "Ham is wanted mail.", "a": "Ham is a meat.", "ref": "wanted mail"},
    {"ctx": None, "a": "", "ref": ["less junk"]},
]
ROWS = [{**row, **text} for row, text in zip(ROWS, TEXT, strict=True)]

EVALUATORS = [
    Accuracy(label="y", prediction="yhat", name="acc"),
    F1(label="y", prediction="yhat", positive="spam"),
    F1(label="y", prediction="yhat", average="macro", name="f1_macro"),
    RocAuc(label="y", score="p", positive="spam"),
    Rmse(target="t", prediction="p"),
    Groundedness(answer="a", context="ctx", threshold=0.55),
    ContextRelevance(question="q", context="ctx"),
    TaskCompletion(answer="a", reference="ref", match="contains"),
    TaskCompletion(answer="a", rule={"contains": ["mail"], "regex": "^S"}, name="rule_ok"),
]


@pytest.mark.parametrize("evaluator", EVALUATORS, ids=lambda e: e.name)
def test_specs_are_json_and_rebuild_an_equal_evaluator(evaluator, with_lexical):
    spec = json.loads(json.dumps(evaluator.spec(), allow_nan=False))
    rebuilt = from_spec(spec)
    assert rebuilt == evaluator and rebuilt.spec() == spec
    assert rebuilt.evaluate(ROWS) == evaluator.evaluate(ROWS)


def test_builtins_are_evaluators_with_their_type_names():
    kinds = {e.spec()["type"] for e in EVALUATORS}
    assert kinds == {
        "accuracy",
        "f1",
        "roc_auc",
        "rmse",
        "groundedness",
        "context_relevance",
        "task_completion",
    }
    assert all(isinstance(e, Evaluator) for e in EVALUATORS)
    assert from_spec({"type": "f1"}) == F1()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "f1", "params": {"label_col": "y"}}, r"evaluator 'f1': params .* do not fit"),
        ({"type": "roc"}, r"unknown evaluator 'roc': did you mean 'roc_auc'\?"),
        ({"kind": "f1"}, r"is malformed"),
        ({"type": "no_such_module_xyz:Metric"}, r"cannot import evaluator .*importable there"),
        ({"type": "collections:OrderedDict"}, r"is not an Evaluator"),
        ({"type": "accuracy", "params": ["y"]}, r"params must be a dict"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(EvaluationError, match=message):
        from_spec(spec)


class LongAnswers:
    """A custom evaluator: share of answers longer than `words` words."""

    def __init__(self, column: str = "answer", words: int = 3, name: str = "long") -> None:
        self.column, self.words, self.name = column, words, name

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        long = [len(str(r[self.column]).split()) > self.words for r in rows]
        return Score(sum(long) / len(long), len(long), {"long": sum(long)})

    def spec(self) -> dict[str, Any]:
        return custom_spec(self, {"column": self.column, "words": self.words, "name": self.name})


class NanScore(LongAnswers):
    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        return Score(math.nan, len(rows))


class Unrecordable(LongAnswers):
    def spec(self) -> dict[str, Any]:
        return {"type": f"{__name__}:Unrecordable", "params": {"words": {1, 2}}}


def test_a_custom_evaluator_round_trips_by_import():
    custom = LongAnswers(column="a", words=2)
    rebuilt = from_spec(json.loads(json.dumps(custom.spec())))
    assert type(rebuilt) is LongAnswers and rebuilt.words == 2
    scores = evaluate(ROWS, [custom])
    assert scores["metrics"] == {"long": pytest.approx(2 / 3)}
    assert scores["evaluators"] == [custom.spec()]


def test_a_custom_evaluator_runs_in_a_pipeline(workspace):
    @lg.task
    def rows() -> list:
        return ROWS

    @lg.pipeline
    def custom():
        return evaluate(rows(), [LongAnswers(column="a", words=2)])

    result = lg.run(custom, executor="inline", workspace=workspace)
    assert result.ok and result.output()["details"]["long"] == {"long": 2}


def test_custom_evaluators_that_workers_cannot_rebuild_are_refused_up_front():
    class Local(LongAnswers):
        def spec(self) -> dict[str, Any]:
            return custom_spec(self, {})

    with pytest.raises(EvaluationError, match=r"defined inside a function.*module level"):
        evaluate(ROWS, [Local()])
    with pytest.raises(EvaluationError, match=r"spec\(\) must return JSON data"):
        evaluate(ROWS, [Unrecordable()])


def test_a_spec_that_rebuilds_another_metric_is_refused():
    class Renamed(LongAnswers):
        def spec(self) -> dict[str, Any]:
            return custom_spec(LongAnswers(), {"name": "other"})

    with pytest.raises(EvaluationError, match=r"rebuilds an evaluator named 'other'"):
        evaluate(ROWS, [Renamed(name="mine")])


def test_a_nan_score_is_refused_because_a_gate_cannot_compare_it():
    with pytest.raises(EvaluationError, match=r"'long' returned the value nan; .*finite number"):
        evaluate(ROWS, [NanScore(column="a")])


def test_importing_evals_loads_no_heavy_dependency():
    code = (
        "import sys, lockgate.evals; "
        "heavy = [m for m in ('numpy', 'torch', 'sentence_transformers', 'pandas', 'sqlalchemy', "
        "'click', 'rich', 'fsspec', 'lockgate.service', 'lockgate.engine') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
