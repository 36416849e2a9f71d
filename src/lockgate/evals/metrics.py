"""Classic metrics over labelled rows: accuracy, F1, ROC AUC and RMSE.

Each metric is a frozen dataclass whose fields are its spec params; column
names are params with defaults (`label`, `prediction`, `score`, `target`).
They are pure Python (exact sums with `math.fsum`), so they work on a base
install without numpy, and they agree with scikit-learn's `accuracy_score`,
`f1_score`, `roc_auc_score` and `root_mean_squared_error` (tested).

Undefined values are refused, never returned as NaN: ROC AUC over rows with a
single class raises `EvaluationError` naming the class and the fix. F1 follows
scikit-learn's `zero_division=0` (no positive labels and no positive
predictions scores 0.0, and `details["undefined"]` says so).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.errors import EvaluationError
from lockgate.evals.base import (
    Score,
    check_name,
    column,
    dataclass_spec,
    real,
    require_rows,
)

_LABEL_TYPES = (str, int, float, bool, type(None))


def _check_columns(owner: str, **columns: object) -> None:
    for param, value in columns.items():
        if not isinstance(value, str) or not value:
            raise EvaluationError(f"{owner}: {param}={value!r} must be a column name (a string)")


def _check_label(owner: str, param: str, value: object) -> None:
    if not isinstance(value, _LABEL_TYPES):
        raise EvaluationError(
            f"{owner}: {param}={value!r} must be a str, int, float, bool or None so the "
            "evaluator can be recorded in a pipeline graph"
        )


def _classes(name: str, labels: Sequence[Any], predictions: Sequence[Any]) -> set[Any]:
    try:
        return set(labels) | set(predictions)
    except TypeError:
        bad = next(v for v in [*labels, *predictions] if not isinstance(v, Hashable))
        raise EvaluationError(
            f"{name}: labels and predictions must be hashable values (str, int, bool), "
            f"found {type(bad).__name__} {bad!r}"
        ) from None


def _show(values: set[Any]) -> str:
    return ", ".join(sorted(map(repr, values)))


@dataclass(frozen=True, slots=True)
class Accuracy:
    """Share of rows whose `prediction` equals their `label`.

    Args:
        label: the column with the true label.
        prediction: the column with the predicted label.
        name: the metric name in the scores.
    """

    label: str = "label"
    prediction: str = "prediction"
    name: str = "accuracy"

    def __post_init__(self) -> None:
        check_name(self.name, "Accuracy")
        _check_columns(self.name, label=self.label, prediction=self.prediction)

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows`; see the class docstring."""
        require_rows(self.name, rows)
        labels = column(self.name, rows, self.label, "label")
        predictions = column(self.name, rows, self.prediction, "prediction")
        correct = sum(1 for y, p in zip(labels, predictions, strict=True) if y == p)
        return Score(correct / len(rows), len(rows), {"correct": correct})

    def spec(self) -> dict[str, Any]:
        """This evaluator as `{"type": "accuracy", "params": {...}}`."""
        return dataclass_spec("accuracy", self)


@dataclass(frozen=True, slots=True)
class F1:
    """F1 score: binary for the `positive` label, or the macro average over classes.

    Binary F1 is `2·TP / (2·TP + FP + FN)` with `positive` as the positive
    class; rows must hold at most two classes (labels and predictions
    together), and when they hold two, `positive` must be one of them.
    `average="macro"` is the unweighted mean of each class's F1 over every
    class seen in labels or predictions.

    Args:
        label: the column with the true label.
        prediction: the column with the predicted label.
        positive: the positive class (binary only).
        average: "binary" or "macro".
        name: the metric name in the scores.
    """

    label: str = "label"
    prediction: str = "prediction"
    positive: Any = 1
    average: str = "binary"
    name: str = "f1"

    def __post_init__(self) -> None:
        check_name(self.name, "F1")
        _check_columns(self.name, label=self.label, prediction=self.prediction)
        _check_label(self.name, "positive", self.positive)
        if self.average not in ("binary", "macro"):
            raise EvaluationError(
                f"{self.name}: average={self.average!r} is not supported; use 'binary' (with "
                "positive=...) or 'macro'"
            )

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows`; see the class docstring."""
        require_rows(self.name, rows)
        labels = column(self.name, rows, self.label, "label")
        predictions = column(self.name, rows, self.prediction, "prediction")
        classes = _classes(self.name, labels, predictions)
        pairs = list(zip(labels, predictions, strict=True))
        if self.average == "macro":
            per_class = {c: _f1_for(c, pairs)[0] for c in classes}
            value = math.fsum(per_class.values()) / len(per_class)
            shown = sorted(per_class.items(), key=lambda item: repr(item[0]))[:50]
            return Score(
                value,
                len(rows),
                {"average": "macro", "classes": len(classes), "per_class": _keyed(shown)},
            )
        if len(classes) > 2:
            raise EvaluationError(
                f"{self.name}: binary F1 needs at most two classes, found {len(classes)} "
                f"({_show(classes)}); use F1(average='macro') for multiclass"
            )
        if len(classes) == 2 and self.positive not in classes:
            raise EvaluationError(
                f"{self.name}: positive={self.positive!r} is not one of the classes "
                f"{_show(classes)}; pass F1(positive=...) naming the positive class"
            )
        value, precision, recall = _f1_for(self.positive, pairs)
        details: dict[str, Any] = {
            "average": "binary",
            "positive": self.positive,
            "precision": precision,
            "recall": recall,
            "support": sum(1 for y in labels if y == self.positive),
        }
        if not any(y == self.positive or p == self.positive for y, p in pairs):
            details["undefined"] = "no positive labels and no positive predictions: scored 0.0"
        return Score(value, len(rows), details)

    def spec(self) -> dict[str, Any]:
        """This evaluator as `{"type": "f1", "params": {...}}`."""
        return dataclass_spec("f1", self)


def _f1_for(positive: Any, pairs: Sequence[tuple[Any, Any]]) -> tuple[float, float, float]:
    """(F1, precision, recall) of class `positive`, each 0.0 where its denominator is 0."""
    tp = fp = fn = 0
    for y, p in pairs:
        if p == positive:
            if y == positive:
                tp += 1
            else:
                fp += 1
        elif y == positive:
            fn += 1
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return f1, precision, recall


def _keyed(items: Sequence[tuple[Any, float]]) -> dict[str, float]:
    return {(key if isinstance(key, str) else repr(key)): value for key, value in items}


@dataclass(frozen=True, slots=True)
class RocAuc:
    """Area under the ROC curve of a binary `label` against a real-valued `score`.

    Computed from ranks (the Mann-Whitney U statistic): the probability that a
    random positive row scores higher than a random negative one, ties counting
    one half. Rows must hold exactly two label classes; with one class the AUC
    is undefined and `evaluate` raises `EvaluationError` (a gate must not pass
    on a value that does not exist).

    Args:
        label: the column with the true label.
        score: the column with the predicted score or probability of `positive`.
        positive: the positive class.
        name: the metric name in the scores.
    """

    label: str = "label"
    score: str = "score"
    positive: Any = 1
    name: str = "roc_auc"

    def __post_init__(self) -> None:
        check_name(self.name, "RocAuc")
        _check_columns(self.name, label=self.label, score=self.score)
        _check_label(self.name, "positive", self.positive)

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows`; see the class docstring."""
        require_rows(self.name, rows)
        labels = column(self.name, rows, self.label, "label")
        scores = real(self.name, column(self.name, rows, self.score, "score"), self.score)
        classes = _classes(self.name, labels, [])
        if len(classes) != 2:
            found = f"only {_show(classes)}" if len(classes) == 1 else _show(classes)
            raise EvaluationError(
                f"{self.name}: ROC AUC needs exactly two label classes in {self.label!r}, found "
                f"{found} in {len(rows)} rows, so it is undefined; evaluate a set with both "
                "classes (a coarser by=, or more rows), or use another metric for it"
            )
        if self.positive not in classes:
            raise EvaluationError(
                f"{self.name}: positive={self.positive!r} is not one of the classes "
                f"{_show(classes)}; pass RocAuc(positive=...) naming the positive class"
            )
        positives = [y == self.positive for y in labels]
        n_pos = sum(positives)
        n_neg = len(rows) - n_pos
        ranks = _average_ranks(scores)
        rank_sum = math.fsum(r for r, is_pos in zip(ranks, positives, strict=True) if is_pos)
        value = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        return Score(value, len(rows), {"positives": n_pos, "negatives": n_neg})

    def spec(self) -> dict[str, Any]:
        """This evaluator as `{"type": "roc_auc", "params": {...}}`."""
        return dataclass_spec("roc_auc", self)


def _average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of `values`; tied values share the mean of their ranks."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        mean_rank = (start + end) / 2 + 1
        for position in range(start, end + 1):
            ranks[order[position]] = mean_rank
        start = end + 1
    return ranks


@dataclass(frozen=True, slots=True)
class Rmse:
    """Root mean squared error between a real `target` and a real `prediction`.

    Lower is better (gate it with `"<= ..."`). `details` also holds the mean
    and the largest absolute error.

    Args:
        target: the column with the true value.
        prediction: the column with the predicted value.
        name: the metric name in the scores.
    """

    target: str = "target"
    prediction: str = "prediction"
    name: str = "rmse"

    def __post_init__(self) -> None:
        check_name(self.name, "Rmse")
        _check_columns(self.name, target=self.target, prediction=self.prediction)

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows`; see the class docstring."""
        require_rows(self.name, rows)
        targets = real(self.name, column(self.name, rows, self.target, "target"), self.target)
        predictions = real(
            self.name, column(self.name, rows, self.prediction, "prediction"), self.prediction
        )
        errors = [abs(t - p) for t, p in zip(targets, predictions, strict=True)]
        value = math.sqrt(math.fsum(e * e for e in errors) / len(errors))
        if not math.isfinite(value):
            raise EvaluationError(f"{self.name}: the squared errors overflow a float")
        details = {"mae": math.fsum(errors) / len(errors), "max_abs_error": max(errors)}
        return Score(value, len(rows), details)

    def spec(self) -> dict[str, Any]:
        """This evaluator as `{"type": "rmse", "params": {...}}`."""
        return dataclass_spec("rmse", self)
