"""The evaluator contract: `Score`, the `Evaluator` protocol, specs and their errors.

An evaluator scores a *set* of rows (mappings from column name to value) and
returns one `Score`. Set-level metrics (F1, ROC AUC) need the whole set at
once; row-level ones (groundedness) average their per-row values and keep the
worst rows in `details["rows"]`.

Every evaluator describes itself as a JSON-able spec,
`{"type": "accuracy", "params": {"label": "y"}}`, so it can be recorded in a
pipeline graph (constants in a pipeline body must be JSON-like) and rebuilt
in a worker process with `from_spec`. Invariants:

- `from_spec(e.spec())` builds an evaluator that scores every row set exactly
  as `e` does.
- A built-in's `type` is a short registered name (`BUILTINS`). A custom
  evaluator's `type` is `"module:QualName"` of a class whose constructor takes
  the `params` as keyword arguments; it is rebuilt by import, so it must be
  defined at module level of a module every worker can import.
- `Score.value` is a finite float and `Score.details` is JSON-able; whatever
  cannot be computed raises `EvaluationError` instead of returning NaN, so a
  gate never passes on a value that does not exist.
"""

from __future__ import annotations

import difflib
import importlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from lockgate.errors import EvaluationError

# How many rows of per-row details one Score keeps (the worst ones).
ROW_DETAILS_LIMIT = 50

# Built-in type name -> "module:QualName". A table rather than import-time
# registration, so `from_spec` works no matter which modules were imported.
BUILTINS: dict[str, str] = {
    "accuracy": "lockgate.evals.metrics:Accuracy",
    "f1": "lockgate.evals.metrics:F1",
    "roc_auc": "lockgate.evals.metrics:RocAuc",
    "rmse": "lockgate.evals.metrics:Rmse",
    "groundedness": "lockgate.evals.llm:Groundedness",
    "context_relevance": "lockgate.evals.llm:ContextRelevance",
    "task_completion": "lockgate.evals.llm:TaskCompletion",
}

_METRIC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")


@dataclass(frozen=True, slots=True)
class Score:
    """One evaluator's result over a set of rows.

    Attributes:
        value: the metric, a finite float.
        n: how many rows were scored.
        details: JSON-able extras: the method used, per-row values of the worst
            rows (`details["rows"]`), counts behind the value.
    """

    value: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Evaluator(Protocol):
    """Scores a set of rows. Implement it to add a custom metric.

    Attributes:
        name: the metric name in the scores and in gates ("accuracy").
    """

    name: str

    def evaluate(self, rows: Sequence[Mapping[str, Any]]) -> Score:
        """Score `rows` (each a mapping of column name to value) as one set.

        Raises:
            EvaluationError: a column is missing or holds a value the metric cannot use.
        """
        ...

    def spec(self) -> dict[str, Any]:
        """`{"type": ..., "params": {...}}`, JSON-able, such that `from_spec` rebuilds it."""
        ...


def from_spec(spec: Mapping[str, Any]) -> Evaluator:
    """Rebuild an evaluator from its spec.

    Args:
        spec: `{"type": NAME, "params": {...}}` where NAME is a built-in
            ("accuracy", "groundedness", ...) or `"module:QualName"` of a custom
            evaluator class that takes `params` as keyword arguments.

    Returns:
        The evaluator.

    Raises:
        EvaluationError: the spec is malformed, the type is unknown or cannot be
            imported, or the params do not fit its constructor.
    """
    if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
        raise EvaluationError(
            f"evaluator spec {spec!r} is malformed: expected "
            '{"type": "accuracy", "params": {...}} (a built-in name or "module:QualName")'
        )
    kind: str = spec["type"]
    params = spec.get("params", {})
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise EvaluationError(
            f"evaluator spec of type {kind!r}: params must be a dict with str keys, got {params!r}"
        )
    target = BUILTINS.get(kind)
    if target is None:
        if ":" not in kind:
            raise unknown_evaluator(kind)
        target = kind
    cls = _import(target, kind)
    try:
        evaluator = cls(**params)
    except TypeError as exc:
        raise EvaluationError(
            f"evaluator {kind!r}: params {dict(params)!r} do not fit its constructor: {exc}"
        ) from None
    if not isinstance(evaluator, Evaluator):
        raise EvaluationError(
            f"evaluator {kind!r}: {target} built {evaluator!r}, which is not an Evaluator "
            "(it needs a `name` attribute and `evaluate(rows)` and `spec()` methods)"
        )
    return evaluator


def unknown_evaluator(kind: str) -> EvaluationError:
    """The error for a type name that is neither built in nor `module:QualName`."""
    close = difflib.get_close_matches(kind, list(BUILTINS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return EvaluationError(
        f"unknown evaluator {kind!r}: {hint}built-ins are {', '.join(sorted(BUILTINS))}; "
        "a custom evaluator's spec type is 'module:QualName'"
    )


def _import(target: str, kind: str) -> Any:
    module_name, _, qualname = target.partition(":")
    if "<locals>" in qualname:
        raise EvaluationError(
            f"evaluator {kind!r} is a class defined inside a function; workers rebuild "
            "evaluators by import, so define it at module level of an importable module"
        )
    try:
        value: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise EvaluationError(
            f"cannot import evaluator {kind!r} ({exc}); custom evaluators are rebuilt by "
            "import in worker processes, so the module must be importable there "
            "(installed, or on the path of the pipeline file)"
        ) from None
    return value


def custom_spec(evaluator: object, params: Mapping[str, Any]) -> dict[str, Any]:
    """A spec for a custom evaluator class: its `module:QualName` and `params`.

    Handy inside a custom evaluator's `spec()`:
    `return custom_spec(self, {"column": self.column})`.
    """
    cls = type(evaluator)
    return {"type": f"{cls.__module__}:{cls.__qualname__}", "params": dict(params)}


def check_spec(evaluator: Evaluator) -> dict[str, Any]:
    """The evaluator's spec, checked to be JSON data that `from_spec` rebuilds.

    Raises:
        EvaluationError: the spec is not JSON data, names a class no worker can
            import, or rebuilds an evaluator with another name.
    """
    name = getattr(evaluator, "name", type(evaluator).__name__)
    spec = evaluator.spec()
    try:
        text = json.dumps(spec, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise EvaluationError(
            f"evaluator {name!r}: spec() must return JSON data (str, finite numbers, bool, "
            f"None, lists, dicts with str keys) to be recorded in the graph: {exc}"
        ) from None
    data: dict[str, Any] = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise EvaluationError(
            f"evaluator {name!r}: spec() returned {spec!r}; expected "
            '{"type": "module:QualName", "params": {...}}'
        )
    rebuilt = from_spec(data)
    if rebuilt.name != name:
        raise EvaluationError(
            f"evaluator {name!r}: its spec() rebuilds an evaluator named {rebuilt.name!r}; "
            "spec() must describe the evaluator exactly (include every constructor param)"
        )
    return data


def check_name(name: object, owner: str) -> str:
    """Return `name` if it is a valid metric name, else raise EvaluationError."""
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        raise EvaluationError(
            f"{owner}: name={name!r} is not a valid metric name; use letters, digits, "
            "'_', '.' or '-', starting with a letter (e.g. 'accuracy_v2')"
        )
    return name


def require_rows(name: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Raise EvaluationError unless `rows` is a non-empty sequence of mappings."""
    if isinstance(rows, str | bytes) or not isinstance(rows, Sequence):
        raise EvaluationError(
            f"{name}: expected a list of rows (dicts of column -> value), got {type(rows).__name__}"
        )
    if not rows:
        raise EvaluationError(f"{name}: there are no rows to score; pass at least one row")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise EvaluationError(
                f"{name}: row {index} is a {type(row).__name__}, not a dict of column -> value"
            )


def column(name: str, rows: Sequence[Mapping[str, Any]], key: str, param: str) -> list[Any]:
    """The values of column `key` in every row.

    Args:
        name: the evaluator's metric name, for messages.
        rows: the rows.
        key: the column.
        param: the evaluator parameter that names the column, for the fix in the message.

    Raises:
        EvaluationError: a row lacks the column.
    """
    values = []
    for index, row in enumerate(rows):
        try:
            values.append(row[key])
        except KeyError:
            columns = ", ".join(sorted(map(str, row))) or "none"
            raise EvaluationError(
                f"{name}: row {index} has no column {key!r} (its columns: {columns}); add the "
                f"column to the rows or name another one with {param}=..."
            ) from None
    return values


def real(name: str, values: Sequence[Any], what: str) -> list[float]:
    """`values` as finite floats.

    Raises:
        EvaluationError: naming the first row whose value is not a finite real number.
    """
    out = []
    for index, value in enumerate(values):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, str | bytes) or not math.isfinite(number):
            raise EvaluationError(
                f"{name}: row {index} has {what}={value!r}; expected a finite number"
            )
        out.append(number)
    return out


def worst_rows(per_row: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most `ROW_DETAILS_LIMIT` row details, lowest `value` first, then by row."""
    ordered = sorted(per_row, key=lambda item: (item["value"], item["row"]))
    return ordered[:ROW_DETAILS_LIMIT]


def dataclass_spec(kind: str, evaluator: Any) -> dict[str, Any]:
    """The spec of a built-in evaluator dataclass: its type and every field as a param."""
    names = evaluator.__dataclass_fields__
    return {"type": kind, "params": {key: getattr(evaluator, key) for key in names}}
