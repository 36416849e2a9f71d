"""The canary's decision rule: promote, roll back or keep watching. Pure: no I/O.

Given the live metric values of the candidate's cohort and the incumbent's
since the canary started, and how long it has been watching:

1. **Roll back early (worse)** once both cohorts have at least
   `early_samples` values (max(2, ceil(min_samples / 10))) and the upper
   bound shows the candidate is worse than allowed: `upper < -max_regression`.
2. **Promote** once both cohorts have at least `min_samples` values and the
   lower bound shows any regression is within the allowance:
   `lower >= -max_regression`.
3. **Roll back (timeout)** when `max_wait` has passed without either: too few
   samples, or a bound that settles nothing. Fail safe: no evidence, no promotion.
4. Otherwise keep watching.

`lower`/`upper` are the one-sided Welch bounds at `confidence` (default 95%)
on the improvement D = s * (mean_candidate - mean_incumbent), s = +1 when
higher values are better and -1 otherwise (see `lockgate.model.comparison`).
`max_regression` is absolute, in the metric's units. Rule 1 is checked before
rule 2, and both are checked on every look, so the early stop is a repeated
look: its false-rollback rate is above 1 - confidence, which errs on the safe
side (a false rollback keeps the incumbent serving).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lockgate.errors import DefinitionError
from lockgate.model.comparison import Cohort, Comparison, welch
from lockgate.model.units import parse_duration

Decision = Literal["promote", "rollback", "watch"]
MODES = ("serve", "mirror")

RULE_TEXT = (
    "one-sided Welch bounds at {confidence:.0%} on D = {sign}(mean_candidate - mean_incumbent): "
    "roll back once both cohorts have >= {early} values and upper < -{delta:g}; promote once "
    "both have >= {min_samples} values and lower >= -{delta:g}; roll back after {wait:g} s "
    "without either"
)


@dataclass(frozen=True, slots=True)
class CanaryRule:
    """The statistical rule of one canary (validated by `CanaryRule.build`)."""

    metric: str
    min_samples: int
    max_wait: float
    max_regression: float
    higher_is_better: bool = True
    confidence: float = 0.95

    @classmethod
    def build(
        cls,
        label: str,
        *,
        metric: object,
        min_samples: object,
        max_wait: object,
        max_regression: object,
        higher_is_better: object = True,
        confidence: object = 0.95,
    ) -> CanaryRule:
        """Validate the arguments of `lg.canary`.

        Raises:
            DefinitionError: naming the canary and the bad argument.
        """
        where = f"canary {label!r}"
        if not isinstance(metric, str) or not metric:
            raise DefinitionError(f"{where}: metric must name a live score, e.g. 'groundedness'")
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 2:
            raise DefinitionError(f"{where}: min_samples must be an int >= 2, got {min_samples!r}")
        try:
            wait = parse_duration(max_wait)
        except ValueError as exc:
            raise DefinitionError(f"{where}: max_wait: {exc}") from None
        if wait <= 0:
            raise DefinitionError(f"{where}: max_wait must be positive, got {max_wait!r}")
        delta = _number(max_regression)
        if delta is None or delta < 0:
            raise DefinitionError(
                f"{where}: max_regression must be a number >= 0 in the metric's units "
                f"(e.g. 0.02), got {max_regression!r}"
            )
        if not isinstance(higher_is_better, bool):
            raise DefinitionError(f"{where}: higher_is_better must be True or False")
        level = _number(confidence)
        if level is None or not 0.5 < level < 1:
            raise DefinitionError(f"{where}: confidence must be in (0.5, 1), got {confidence!r}")
        return cls(metric, min_samples, wait, delta, higher_is_better, level)

    @property
    def early_samples(self) -> int:
        """How many values each cohort needs before an early rollback is considered."""
        return max(2, math.ceil(self.min_samples / 10))

    def text(self) -> str:
        """The rule in words, with this canary's numbers (stored with the decision)."""
        return RULE_TEXT.format(
            confidence=self.confidence,
            sign="" if self.higher_is_better else "-",
            early=self.early_samples,
            delta=self.max_regression,
            min_samples=self.min_samples,
            wait=self.max_wait,
        )


def _number(value: object) -> float | None:
    """`value` as a finite float, or None when it is not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One look at the cohorts: the decision, why, and the numbers behind it."""

    decision: Decision
    reason: str
    candidate: Cohort
    incumbent: Cohort
    comparison: Comparison | None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (non-finite numbers become None)."""
        c = self.comparison

        def num(x: float | None) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        def cohort(v: Cohort) -> dict[str, Any]:
            return {"n": v.n, "mean": num(v.mean), "sd": num(v.sd)}

        return {
            "decision": self.decision,
            "reason": self.reason,
            "candidate": cohort(self.candidate),
            "incumbent": cohort(self.incumbent),
            "difference": num(c.difference) if c else None,
            "se": num(c.se) if c else None,
            "df": num(c.df) if c else None,
            "quantile": num(c.quantile) if c else None,
            "lower": num(c.lower) if c else None,
            "upper": num(c.upper) if c else None,
            "confidence": c.confidence if c else None,
        }


def decide(
    rule: CanaryRule,
    candidate: Sequence[float],
    incumbent: Sequence[float],
    elapsed: float,
) -> Verdict:
    """Apply the rule (module docstring) to the values seen so far, `elapsed` s in."""
    cand, inc = Cohort.of(candidate), Cohort.of(incumbent)
    comparison = None
    if cand.n >= 2 and inc.n >= 2:
        comparison = welch(
            cand, inc, confidence=rule.confidence, higher_is_better=rule.higher_is_better
        )
    delta = rule.max_regression
    counts = f"candidate n={cand.n}, incumbent n={inc.n}"
    if comparison is not None:
        bounds = (
            f"D={comparison.difference:.4g}, {rule.confidence:.0%} bounds "
            f"[{comparison.lower:.4g}, {comparison.upper:.4g}]"
        )
        enough_early = min(cand.n, inc.n) >= rule.early_samples
        if enough_early and comparison.upper < -delta:
            reason = (
                f"{rule.metric}: candidate is worse than allowed: upper bound "
                f"{comparison.upper:.4g} < -{delta:g} ({bounds}; {counts})"
            )
            return Verdict("rollback", reason, cand, inc, comparison)
        if min(cand.n, inc.n) >= rule.min_samples and comparison.lower >= -delta:
            reason = (
                f"{rule.metric}: regression within allowance: lower bound "
                f"{comparison.lower:.4g} >= -{delta:g} ({bounds}; {counts})"
            )
            return Verdict("promote", reason, cand, inc, comparison)
    if elapsed >= rule.max_wait:
        if min(cand.n, inc.n) < rule.min_samples:
            why = f"fewer than {rule.min_samples} values per cohort ({counts})"
        else:
            assert comparison is not None
            why = (
                f"lower bound {comparison.lower:.4g} < -{delta:g}: a regression larger than "
                f"allowed is not ruled out ({counts})"
            )
        reason = f"{rule.metric}: no decision after {rule.max_wait:g} s: {why}"
        return Verdict("rollback", reason, cand, inc, comparison)
    return Verdict("watch", f"{rule.metric}: watching ({counts})", cand, inc, comparison)
