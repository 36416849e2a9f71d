"""Accuracy, F1, ROC AUC and RMSE agree with scikit-learn and refuse what is undefined."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from lockgate.evals import F1, Accuracy, EvaluationError, Rmse, RocAuc

SETTINGS = settings(max_examples=60, deadline=None)

binary = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60)


def rows_of(**columns: list) -> list[dict]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


@SETTINGS
@given(pairs=binary)
def test_accuracy_matches_sklearn(pairs):
    y, p = (list(c) for c in zip(*pairs, strict=True))
    score = Accuracy().evaluate(rows_of(label=y, prediction=p))
    assert score.value == pytest.approx(skm.accuracy_score(y, p))
    assert score.n == len(pairs)
    assert score.details["correct"] == sum(a == b for a, b in pairs)


@SETTINGS
@given(pairs=binary, positive=st.sampled_from([0, 1]))
def test_binary_f1_matches_sklearn(pairs, positive):
    y, p = (list(c) for c in zip(*pairs, strict=True))
    score = F1(positive=positive).evaluate(rows_of(label=y, prediction=p))
    expected = skm.f1_score(y, p, pos_label=positive, labels=[0, 1], zero_division=0)
    assert score.value == pytest.approx(expected)
    assert score.details["precision"] == pytest.approx(
        skm.precision_score(y, p, pos_label=positive, labels=[0, 1], zero_division=0)
    )


@SETTINGS
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd")), min_size=1, max_size=60
    )
)
def test_macro_f1_matches_sklearn_on_string_classes(pairs):
    y, p = (list(c) for c in zip(*pairs, strict=True))
    score = F1(average="macro").evaluate(rows_of(label=y, prediction=p))
    assert score.value == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0))
    assert score.details["classes"] == len(set(y) | set(p))


@SETTINGS
@given(
    data=st.lists(
        # Few distinct scores, so ties between and within classes are common.
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.9, 1.0])),
        min_size=2,
        max_size=80,
    ).filter(lambda d: len({y for y, _ in d}) == 2)
)
def test_roc_auc_matches_sklearn_with_ties(data):
    y, s = (list(c) for c in zip(*data, strict=True))
    score = RocAuc().evaluate(rows_of(label=y, score=s))
    assert score.value == pytest.approx(skm.roc_auc_score(y, s))
    assert score.details == {"positives": sum(y), "negatives": len(y) - sum(y)}


def test_roc_auc_matches_sklearn_on_a_large_seeded_sample():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 5000)
    s = np.round(rng.random(5000) + 0.3 * y, 2)  # informative, with many ties
    rows = rows_of(label=[str(v) for v in y], score=s.tolist())
    score = RocAuc(positive="1").evaluate(rows)
    assert score.value == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert 0.5 < score.value < 1.0


@SETTINGS
@given(
    pairs=st.lists(
        st.tuples(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False)),
        min_size=1,
        max_size=60,
    )
)
def test_rmse_matches_sklearn(pairs):
    t, p = (list(c) for c in zip(*pairs, strict=True))
    score = Rmse().evaluate(rows_of(target=t, prediction=p))
    assert score.value == pytest.approx(skm.root_mean_squared_error(t, p), rel=1e-9, abs=1e-9)
    assert score.details["mae"] == pytest.approx(skm.mean_absolute_error(t, p), abs=1e-9)


def test_column_names_are_params():
    rows = [{"y": "spam", "yhat": "spam", "p": 0.9}, {"y": "ham", "yhat": "spam", "p": 0.8}]
    assert Accuracy(label="y", prediction="yhat").evaluate(rows).value == 0.5
    assert F1(label="y", prediction="yhat", positive="spam").evaluate(rows).value == 2 / 3
    assert RocAuc(label="y", score="p", positive="spam").evaluate(rows).value == 1.0


def test_numpy_values_are_accepted():
    rows = [{"target": np.float32(1.5), "prediction": np.int64(1)}]
    assert Rmse().evaluate(rows).value == 0.5


def test_roc_auc_refuses_a_single_class_instead_of_returning_nan():
    rows = rows_of(label=[1, 1, 1], score=[0.2, 0.5, 0.9])
    with pytest.raises(EvaluationError, match=r"roc_auc: .*two label classes.*only 1.*undefined"):
        RocAuc().evaluate(rows)


def test_roc_auc_refuses_a_positive_label_that_is_not_there():
    rows = rows_of(label=["spam", "ham"], score=[0.2, 0.5])
    with pytest.raises(EvaluationError, match=r"positive=1 is not one of the classes.*RocAuc"):
        RocAuc().evaluate(rows)


def test_binary_f1_refuses_three_classes_and_points_to_macro():
    rows = rows_of(label=["a", "b", "c"], prediction=["a", "b", "b"])
    with pytest.raises(EvaluationError, match=r"found 3 .*average='macro'"):
        F1(positive="a").evaluate(rows)


def test_f1_without_any_positive_scores_zero_and_says_why():
    score = F1().evaluate(rows_of(label=[0, 0], prediction=[0, 0]))
    assert score.value == 0.0 and "no positive" in score.details["undefined"]


@pytest.mark.parametrize(
    ("evaluator", "rows", "message"),
    [
        (Accuracy(), [{"label": 1, "pred": 1}], r"accuracy: row 0 has no column 'prediction' "),
        (Rmse(), [{"target": 1.0, "prediction": "high"}], r"rmse: row 0 has prediction='high'"),
        (RocAuc(), [{"label": 1, "score": math.nan}], r"roc_auc: row 0 has score=nan"),
        (Accuracy(), [], r"accuracy: there are no rows"),
    ],
)
def test_bad_rows_name_the_evaluator_the_row_and_the_column(evaluator, rows, message):
    with pytest.raises(EvaluationError, match=message):
        evaluator.evaluate(rows)


def test_missing_column_message_lists_columns_and_the_fix():
    with pytest.raises(EvaluationError) as caught:
        Accuracy().evaluate([{"label": 1, "pred": 1}])
    assert "its columns: label, pred" in str(caught.value)
    assert "prediction=..." in str(caught.value)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: F1(average="micro"), r"average='micro' is not supported"),
        (lambda: Accuracy(name="my accuracy"), r"not a valid metric name"),
        (lambda: Rmse(target=""), r"target='' must be a column name"),
        (lambda: RocAuc(positive=[1]), r"positive=\[1\] must be a str, int"),
    ],
)
def test_bad_params_fail_at_construction(build, message):
    with pytest.raises(EvaluationError, match=message):
        build()
