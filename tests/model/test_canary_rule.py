"""The canary's decision rule and the lg.canary definition checks (pure: no store)."""

from __future__ import annotations

import pytest

import lockgate as lg
from lockgate.errors import DefinitionError
from lockgate.model.canary import CanaryRule, decide

RULE = CanaryRule(metric="groundedness", min_samples=20, max_wait=600.0, max_regression=0.02)


def spread(mean: float, n: int, width: float = 0.1) -> list[float]:
    """n values evenly spread over [mean - width, mean + width] (their mean is `mean`)."""
    return [mean - width + 2 * width * i / (n - 1) for i in range(n)]


def test_an_equal_candidate_with_enough_samples_is_promoted():
    verdict = decide(RULE, spread(0.80, 200), spread(0.80, 400), elapsed=30)
    assert verdict.decision == "promote"
    assert verdict.comparison is not None and verdict.comparison.lower >= -0.02
    assert "lower bound" in verdict.reason and "candidate n=200, incumbent n=400" in verdict.reason


def test_too_few_samples_keep_watching_until_max_wait_then_roll_back():
    few = decide(RULE, spread(0.9, 10), spread(0.8, 400), elapsed=30)
    assert few.decision == "watch"
    late = decide(RULE, spread(0.9, 10), spread(0.8, 400), elapsed=600)
    assert late.decision == "rollback"
    assert "no decision after 600 s: fewer than 20 values per cohort" in late.reason


def test_a_clearly_worse_candidate_is_rolled_back_early():
    # Early look: 2 values per cohort are enough (ceil(20 / 10) = 2) when the bound is clear.
    verdict = decide(RULE, spread(0.5, 5, 0.01), spread(0.8, 50, 0.01), elapsed=1)
    assert verdict.decision == "rollback"
    assert verdict.comparison is not None and verdict.comparison.upper < -0.02
    assert "worse than allowed" in verdict.reason


def test_an_inconclusive_comparison_is_not_promoted():
    # Means 0.01 apart but so noisy that a 0.02 regression is not ruled out.
    noisy = decide(RULE, spread(0.79, 25, 0.5), spread(0.80, 25, 0.5), elapsed=10)
    assert noisy.decision == "watch"
    assert noisy.comparison is not None and noisy.comparison.lower < -0.02 < noisy.comparison.upper
    timeout = decide(RULE, spread(0.79, 25, 0.5), spread(0.80, 25, 0.5), elapsed=601)
    assert timeout.decision == "rollback" and "is not ruled out" in timeout.reason


def test_a_small_regression_inside_the_allowance_is_promoted():
    verdict = decide(RULE, spread(0.795, 500, 0.01), spread(0.80, 500, 0.01), elapsed=10)
    assert verdict.decision == "promote" and verdict.comparison.difference == pytest.approx(-0.005)


def test_lower_is_better_metrics():
    latency = CanaryRule("latency", 20, 600.0, 0.01, higher_is_better=False)
    faster = decide(latency, spread(0.10, 50, 0.01), spread(0.20, 50, 0.01), elapsed=5)
    assert faster.decision == "promote" and faster.comparison.difference == pytest.approx(0.1)
    slower = decide(latency, spread(0.30, 50, 0.01), spread(0.20, 50, 0.01), elapsed=5)
    assert slower.decision == "rollback"


def test_the_verdict_as_json_and_the_rule_text():
    verdict = decide(RULE, spread(0.8, 30), [0.8], elapsed=0)
    view = verdict.as_dict()
    assert view["decision"] == "watch" and view["lower"] is None
    assert view["incumbent"] == {"n": 1, "mean": 0.8, "sd": None}
    assert RULE.text() == (
        "one-sided Welch bounds at 95% on D = (mean_candidate - mean_incumbent): roll back once "
        "both cohorts have >= 2 values and upper < -0.02; promote once both have >= 20 values "
        "and lower >= -0.02; roll back after 600 s without either"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": ""}, "metric must name a live score"),
        ({"min_samples": 1}, "min_samples must be an int >= 2"),
        ({"max_wait": "soon"}, "max_wait: 'soon' is not a duration"),
        ({"max_wait": 0}, "max_wait must be positive"),
        ({"max_regression": -0.1}, "max_regression must be a number >= 0"),
        ({"confidence": 1.2}, r"confidence must be in \(0.5, 1\)"),
        ({"mode": "shadow"}, "mode must be 'serve' or 'mirror'"),
        ({"percent": 100}, "percent must be a number between 0 and 100"),
        ({"check_every": "-1s"}, "check_every"),
        ({"candidate": "dataset:rows@1"}, "is a dataset; it must be a model"),
        ({"candidate": "support-bot"}, "is not a version reference"),
        ({"route": "Support Bot"}, "route name 'Support Bot' is invalid"),
    ],
)
def test_bad_canary_arguments_are_definition_errors(kwargs, message):
    args = {"route": "support-bot", "candidate": "model:support-bot@2", "metric": "groundedness"}
    with pytest.raises(DefinitionError, match=message):
        lg.canary(**{**args, **kwargs})


def test_canary_outside_a_pipeline_says_where_it_belongs():
    with pytest.raises(lg.errors.RegistryError, match=r"lg\.canary are pipeline nodes"):
        lg.canary(route="support-bot", candidate="model:support-bot@2", metric="groundedness")
