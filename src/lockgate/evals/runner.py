"""`evaluate`: score a dataset with several evaluators, overall and per cohort, as a node.

Inside a pipeline body, `evaluate(...)` records one node of the built-in task
`evaluate` (or `name=`) whose arguments are the rows (usually a placeholder),
the evaluators' JSON specs and `by`, and returns the placeholder of the
scores; a worker rebuilds the evaluators with `from_spec`, and lockgate stores
the scores as a JSON artifact. Outside a pipeline it scores real rows at once.

The scores (plain JSON data):

    {
      "metrics": {"accuracy": 0.91, "groundedness": 0.84},    # over all rows
      "n": 120,                                                # rows scored
      "by": "cohort",                                          # or null
      "cohorts": {                                             # {} when by is null
        "billing": {"metrics": {"accuracy": 0.95, ...}, "n": 40},
        ...
      },
      "details": {                                             # per metric, all rows
        "accuracy": {"correct": 109},
        "groundedness": {"method": "embeddings:all-MiniLM-L6-v2", "threshold": 0.7,
                         "rows": [{"row": 17, "value": 0.5, "unsupported": [...]}, ...]}
      },
      "evaluators": [{"type": "accuracy", "params": {...}}, ...]
    }

Invariants: metric names are unique within one call; every metric value is
a finite float (an evaluator that cannot compute one raises, naming the
cohort); cohorts are keyed by the `by` column's value as a str (JSON
spelling for non-strs: `null`, `true`, `3`; a pandas NaN is `null`) in sorted
order; details are kept only for the whole set, with at most
`ROW_DETAILS_LIMIT` rows per metric (`"row"` is the row's position in the
dataset), so the scores stay small.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from lockgate.errors import EvaluationError
from lockgate.evals.base import (
    ROW_DETAILS_LIMIT,
    Evaluator,
    Score,
    check_spec,
    from_spec,
    require_rows,
)
from lockgate.model.task import Task, task
from lockgate.model.tracing import active_builder, contains_placeholder


def evaluate(
    dataset: Any,
    evaluators: Sequence[Evaluator | str | Mapping[str, Any]] | Evaluator | str,
    *,
    by: str | None = None,
    name: str | None = None,
) -> Any:
    """Score `dataset` with `evaluators`, overall and per cohort.

    Inside an `@lg.pipeline` body this records a node and returns the
    placeholder of its scores; outside one it returns the scores.

    Args:
        dataset: the rows: a list of dicts, a pandas DataFrame, or (in a pipeline
            body) the output of a task that returns either.
        evaluators: Evaluator objects, built-in names ("accuracy", "f1", "roc_auc",
            "rmse", "groundedness", "context_relevance", "task_completion") or specs.
        by: a column whose value groups rows into cohorts, scored separately too.
        name: the node's name in the graph (default "evaluate", then "evaluate_2", ...).

    Returns:
        The scores (see the module docstring), or their placeholder in a pipeline body.

    Raises:
        EvaluationError: unknown evaluator, duplicate metric names, a missing column,
            or a value an evaluator cannot score.
        InvalidPolicyError: `name` is not a Python identifier.
    """
    built = _evaluators(evaluators)
    specs = [check_spec(e) for e in built]
    if by is not None and (not isinstance(by, str) or not by):
        raise EvaluationError(f"evaluate: by={by!r} must be a column name (a string) or None")
    node = evaluate_node if name is None else _named(name)
    if active_builder() is not None or contains_placeholder([dataset]):
        # Outside a pipeline, a placeholder makes the task refuse with its usual message.
        rows = dataset if contains_placeholder([dataset]) else records(dataset)
        return node(rows, evaluators=specs, by=by)
    return score(records(dataset), built, by=by)


def _run_evaluate(rows: Any, evaluators: list[dict[str, Any]], by: str | None = None) -> Any:
    """Score `rows` with the evaluators `evaluators` (specs), per `by` cohort."""
    return score(records(rows), [from_spec(spec) for spec in evaluators], by=by)


evaluate_node: Task = task(name="evaluate")(_run_evaluate)


@functools.cache
def _named(name: str) -> Task:
    return task(name=name)(_run_evaluate)


def score(
    rows: Sequence[Mapping[str, Any]], evaluators: Sequence[Evaluator], *, by: str | None = None
) -> dict[str, Any]:
    """Run `evaluators` over `rows` and over each cohort of `by`; see the module docstring.

    Raises:
        EvaluationError: duplicate metric names, a missing `by` column, or an
            evaluator that cannot score the rows (the message names the cohort).
    """
    require_rows("evaluate", rows)
    _unique(evaluators)
    overall = {e.name: _run(e, rows, "") for e in evaluators}
    result: dict[str, Any] = {
        "metrics": {key: s.value for key, s in overall.items()},
        "n": len(rows),
        "by": by,
        "cohorts": {},
        "details": {key: s.details for key, s in overall.items()},
        "evaluators": [e.spec() for e in evaluators],
    }
    if by is not None:
        for key, subset in _cohorts(rows, by).items():
            where = f"cohort {key!r} of by={by!r} ({len(subset)} rows): "
            result["cohorts"][key] = {
                "metrics": {e.name: _run(e, subset, where).value for e in evaluators},
                "n": len(subset),
            }
    checked: dict[str, Any] = json.loads(json.dumps(result, allow_nan=False))
    return checked


def records(dataset: Any) -> list[Mapping[str, Any]]:
    """`dataset` as a list of rows: a list (or tuple) of dicts, or a pandas DataFrame.

    Raises:
        EvaluationError: `dataset` is something else.
    """
    if isinstance(dataset, list | tuple):
        return list(dataset)
    pandas = sys.modules.get("pandas")  # a DataFrame exists only if pandas was imported
    if pandas is not None and isinstance(dataset, pandas.DataFrame):
        rows: list[Mapping[str, Any]] = dataset.to_dict("records")
        return rows
    hint = " (a dict of columns? pass a list of row dicts)" if isinstance(dataset, Mapping) else ""
    raise EvaluationError(
        f"evaluate: dataset must be a list of row dicts or a pandas DataFrame, got "
        f"{type(dataset).__name__}{hint}"
    )


def _evaluators(
    evaluators: Sequence[Evaluator | str | Mapping[str, Any]] | Evaluator | str,
) -> list[Evaluator]:
    items = [evaluators] if isinstance(evaluators, (str, Mapping, Evaluator)) else list(evaluators)
    if not items:
        raise EvaluationError(
            "evaluate: no evaluators given; pass e.g. ['accuracy'] or [evals.Groundedness()]"
        )
    built: list[Evaluator] = []
    for item in items:
        if isinstance(item, str):
            built.append(from_spec({"type": item, "params": {}}))
        elif isinstance(item, Mapping):
            built.append(from_spec(item))
        elif isinstance(item, Evaluator):
            built.append(item)
        else:
            raise EvaluationError(
                f"evaluate: {item!r} is not an evaluator; pass Evaluator objects (with name, "
                "evaluate() and spec()), built-in names such as 'accuracy', or specs"
            )
    _unique(built)
    return built


def _unique(evaluators: Sequence[Evaluator]) -> None:
    seen: dict[str, Evaluator] = {}
    for evaluator in evaluators:
        first = seen.setdefault(evaluator.name, evaluator)
        if first is not evaluator:
            raise EvaluationError(
                f"evaluate: two evaluators report the metric {evaluator.name!r} ({first!r} and "
                f"{evaluator!r}); metric names must be unique in one call, so give one of "
                f"them another name, e.g. name='{evaluator.name}_2'"
            )


def _run(evaluator: Evaluator, rows: Sequence[Mapping[str, Any]], where: str) -> Score:
    try:
        result = evaluator.evaluate(rows)
    except EvaluationError as exc:
        if not where:
            raise
        raise EvaluationError(f"{where}{exc}") from None
    name = evaluator.name
    if not isinstance(result, Score):
        raise EvaluationError(
            f"{where}evaluator {name!r} returned {result!r}; evaluate() must return a Score"
        )
    value = result.value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EvaluationError(
            f"{where}evaluator {name!r} returned the value {value!r}; a metric must be a "
            "finite number (a gate cannot compare NaN): raise EvaluationError when it is "
            "undefined"
        )
    details = dict(result.details)
    if isinstance(details.get("rows"), list):
        details["rows"] = details["rows"][:ROW_DETAILS_LIMIT]
    try:
        details = json.loads(json.dumps(details, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise EvaluationError(
            f"evaluator {name!r}: Score.details must be JSON data to be stored: {exc}"
        ) from None
    return Score(float(value), result.n, details)


def _cohorts(rows: Sequence[Mapping[str, Any]], by: str) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    spelled: dict[str, Any] = {}
    for index, row in enumerate(rows):
        if by not in row:
            columns = ", ".join(sorted(map(str, row))) or "none"
            raise EvaluationError(
                f"evaluate: row {index} has no column {by!r} to group by (its columns: "
                f"{columns}); add it to every row or pass another by="
            )
        value = row[by]
        if isinstance(value, float) and math.isnan(value):
            value = None  # pandas spells a missing value NaN
        if not isinstance(value, str | int | float | bool | type(None)):
            raise EvaluationError(
                f"evaluate: row {index} has {by}={value!r}; cohort values must be str, int, "
                "float, bool or None"
            )
        key = value if isinstance(value, str) else json.dumps(value)
        if key in spelled and spelled[key] != value:
            raise EvaluationError(
                f"evaluate: cohort values {spelled[key]!r} and {value!r} of {by!r} both "
                f"spell {key!r}; make the column one type"
            )
        spelled.setdefault(key, value)
        groups.setdefault(key, []).append(row)
    return dict(sorted(groups.items()))
