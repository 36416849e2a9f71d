"""Gate checks: `"accuracy": ">= 0.9"` or `">= production - 0.01"`, parsed and evaluated.

A check compares a metric from the scores with a threshold: a number, or the
same metric of the model version holding a registry alias, plus or minus an
offset. Checks are parsed when the pipeline is traced, so a malformed one is
a definition error naming the gate; a metric missing from the scores fails
the gate at run time (fail closed), never passes it.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.errors import DefinitionError

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_CHECK = re.compile(
    r"\s*(?P<op>>=|<=|==|!=|>|<)\s*"
    r"(?:(?P<number>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"|(?P<alias>[A-Za-z_][A-Za-z0-9_-]*)\s*(?:(?P<sign>[-+])\s*(?P<offset>\d+(?:\.\d+)?))?)\s*"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One metric comparison.

    Attributes:
        metric: the score's name.
        op: one of >=, >, <=, <, ==, !=.
        threshold: an absolute threshold, or None when relative to `alias`.
        alias: compare with this registry alias's version of the model.
        offset: added to the baseline value (negative: "production - 0.01").
        expression: the check as written.
    """

    metric: str
    op: str
    threshold: float | None
    alias: str | None
    offset: float
    expression: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one check."""

    check: Check
    value: float | None
    threshold: float | None
    passed: bool
    reason: str
    baseline_version: int | None = None
    baseline_value: float | None = None


def parse_checks(gate: str, checks: object) -> list[Check]:
    """Parse `{"metric": "OP THRESHOLD"}`.

    Raises:
        DefinitionError: not a non-empty dict of strings, unknown operator, or a
            threshold that is neither a number nor `ALIAS [+|-] NUMBER`.
    """
    if not isinstance(checks, Mapping) or not checks:
        raise DefinitionError(
            f"gate {gate!r}: checks must be a non-empty dict such as "
            '{"accuracy": ">= 0.9", "auc": ">= production - 0.01"}'
        )
    parsed = []
    for metric, expression in checks.items():
        if not isinstance(metric, str) or not metric:
            raise DefinitionError(f"gate {gate!r}: metric names must be non-empty strings")
        if isinstance(expression, int | float) and not isinstance(expression, bool):
            expression = f">= {expression}"
        match = _CHECK.fullmatch(expression) if isinstance(expression, str) else None
        if match is None:
            raise DefinitionError(
                f"gate {gate!r}: check {metric!r}: {expression!r} is not OP THRESHOLD with OP "
                "one of >=, >, <=, <, ==, != and THRESHOLD a number or ALIAS [+|-] NUMBER "
                "(e.g. '>= 0.9', '>= production - 0.01')"
            )
        offset = float(match["offset"] or 0.0) * (-1 if match["sign"] == "-" else 1)
        parsed.append(
            Check(
                metric=metric,
                op=match["op"],
                threshold=float(match["number"]) if match["number"] is not None else None,
                alias=match["alias"],
                offset=offset,
                expression=expression.strip(),
            )
        )
    return parsed


def metric_values(scores: Any) -> dict[str, Any]:
    """The metrics in scores: `scores["metrics"]` (lg.evaluate's output) or a flat dict."""
    if isinstance(scores, Mapping):
        inner = scores.get("metrics")
        return dict(inner) if isinstance(inner, Mapping) else dict(scores)
    return {}


def judge(check: Check, value: Any, baseline: tuple[int, Any] | None) -> Verdict:
    """Evaluate one check; a missing or non-numeric value fails it.

    Args:
        check: the check.
        value: the metric's value in the scores (None if absent).
        baseline: (version, value) of the alias's model version for relative checks;
            None when the alias does not exist yet.
    """
    if value is None:
        return Verdict(
            check, None, check.threshold, False, f"metric {check.metric!r} was not reported"
        )
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return Verdict(
            check,
            None,
            check.threshold,
            False,
            f"metric {check.metric!r} is {value!r}, not a number",
        )
    if check.alias is None:
        assert check.threshold is not None
        threshold, version, base = check.threshold, None, None
    elif baseline is None:
        return Verdict(
            check,
            float(value),
            None,
            True,
            f"no model version holds alias {check.alias!r} yet: nothing to compare",
        )
    else:
        version, base = baseline
        if isinstance(base, bool) or not isinstance(base, int | float):
            return Verdict(
                check,
                float(value),
                None,
                False,
                f"alias {check.alias!r} (version {version}) has no numeric "
                f"{check.metric!r} score to compare with",
                version,
                None,
            )
        threshold = float(base) + check.offset
    passed = _OPS[check.op](float(value), threshold)
    word = "passes" if passed else "fails"
    return Verdict(
        check,
        float(value),
        threshold,
        passed,
        f"{check.metric} {float(value):.6g} {word} {check.op} {threshold:.6g}",
        version,
        None if base is None else float(base),
    )
