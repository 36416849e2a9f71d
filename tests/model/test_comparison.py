"""Welch bounds and the Student t distribution, against values computed independently.

Quantiles are the published t-table values (to 6 decimals); CDFs are checked
against closed forms (df 1: the Cauchy distribution, df 2) and, for the
fractional degrees of freedom Welch's test produces, against a numerical
integral of the t density computed here.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from lockgate.model.comparison import Cohort, incomplete_beta, t_cdf, t_quantile, welch

# (p, df) -> t, from standard t tables.
TABLE = {
    (0.95, 1): 6.313752,
    (0.95, 2): 2.919986,
    (0.95, 5): 2.015048,
    (0.95, 8): 1.859548,
    (0.95, 10): 1.812461,
    (0.95, 30): 1.697261,
    (0.95, 100): 1.660234,
    (0.975, 10): 2.228139,
    (0.99, 20): 2.527977,
    (0.995, 3): 5.840909,
}


def density(t: float, df: float) -> float:
    """The Student t density, from its definition."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    return c * (1 + t * t / df) ** (-(df + 1) / 2)


def integrated_cdf(t: float, df: float, steps: int = 20_000) -> float:
    """P(T <= t) = 1/2 + integral of the density from 0 to t (Simpson's rule)."""
    h = t / steps
    total = density(0, df) + density(t, df)
    total += sum((4 if i % 2 else 2) * density(i * h, df) for i in range(1, steps))
    return 0.5 + total * h / 3


@pytest.mark.parametrize(("p", "df"), sorted(TABLE))
def test_quantiles_match_the_t_table(p, df):
    assert t_quantile(p, df) == pytest.approx(TABLE[(p, df)], abs=1e-6)
    assert t_quantile(1 - p, df) == pytest.approx(-TABLE[(p, df)], abs=1e-6)


def test_infinite_df_is_the_normal_distribution():
    assert t_quantile(0.95, math.inf) == pytest.approx(1.644854, abs=1e-6)
    assert t_cdf(1.959964, math.inf) == pytest.approx(0.975, abs=1e-6)


@pytest.mark.parametrize("t", [-30.0, -2.5, -0.3, 0.0, 0.7, 1.3, 6.0])
def test_cdf_matches_closed_forms(t):
    assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)


@pytest.mark.parametrize(("t", "df"), [(1.5, 3.4858), (2.1, 7.25), (0.4, 1.5), (3.0, 19.9)])
def test_cdf_at_fractional_df_matches_the_integrated_density(t, df):
    assert t_cdf(t, df) == pytest.approx(integrated_cdf(t, df), abs=1e-9)


def test_incomplete_beta_edges_and_symmetry():
    assert incomplete_beta(2, 3, 0.0) == 0.0 and incomplete_beta(2, 3, 1.0) == 1.0
    # I_x(1, b) = 1 - (1 - x)^b and I_x(a, 1) = x^a.
    assert incomplete_beta(1, 4, 0.3) == pytest.approx(1 - 0.7**4, abs=1e-13)
    assert incomplete_beta(2.5, 1, 0.6) == pytest.approx(0.6**2.5, abs=1e-13)
    assert incomplete_beta(2, 5, 0.2) + incomplete_beta(5, 2, 0.8) == pytest.approx(1, abs=1e-13)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\]"):
        incomplete_beta(1, 1, 1.5)


def test_cohort_summary_is_mean_and_sample_variance():
    c = Cohort.of([1, 2, 3, 4, 5])
    assert (c.n, c.mean, c.variance) == (5, 3.0, 2.5)
    one = Cohort.of([7.0])
    assert one.n == 1 and one.mean == 7.0 and math.isnan(one.variance)
    # Welford stays exact where the naive sum of squares loses everything.
    big = Cohort.of([1e9 + 4, 1e9 + 7, 1e9 + 13, 1e9 + 16])
    assert big.variance == pytest.approx(30.0)


def test_welch_equal_sizes_and_variances():
    # D = 3 - 4 = -1, SE = sqrt(2.5/5 + 2.5/5) = 1, df = 1 / (2 * 0.25 / 4) = 8.
    result = welch(Cohort.of([1, 2, 3, 4, 5]), Cohort.of([2, 3, 4, 5, 6]))
    assert (result.difference, result.se, result.df) == (-1.0, 1.0, pytest.approx(8.0))
    assert result.lower == pytest.approx(-1 - 1.859548, abs=1e-6)
    assert result.upper == pytest.approx(-1 + 1.859548, abs=1e-6)


def test_welch_unequal_sizes_and_variances():
    candidate, incumbent = [10, 12, 14, 16], [10, 10, 11, 11, 12, 12]
    # By hand, exactly: means 13 and 11; variances 20/3 and 4/5.
    vc, vi = Fraction(20, 3) / 4, Fraction(4, 5) / 6
    df = float((vc + vi) ** 2 / (vc**2 / 3 + vi**2 / 5))
    se = math.sqrt(vc + vi)
    result = welch(Cohort.of(candidate), Cohort.of(incumbent), confidence=0.9)
    assert result.df == pytest.approx(df, rel=1e-12)
    assert result.se == pytest.approx(se, rel=1e-12)
    # The quantile is where the integrated density reaches 0.9.
    assert integrated_cdf(result.quantile, df) == pytest.approx(0.9, abs=1e-9)
    assert result.lower == pytest.approx(2 - result.quantile * se)
    assert result.upper == pytest.approx(2 + result.quantile * se)


def test_lower_is_better_flips_the_sign():
    latency_new, latency_old = Cohort.of([1, 2, 3]), Cohort.of([4, 5, 6])
    result = welch(latency_new, latency_old, higher_is_better=False)
    assert result.difference == 3.0 and result.lower > 0


def test_identical_values_give_point_bounds():
    result = welch(Cohort.of([0.5, 0.5, 0.5]), Cohort.of([0.7, 0.7]))
    assert result.se == 0 and result.lower == result.upper == pytest.approx(-0.2)


def test_welch_refuses_too_few_values_or_a_bad_level():
    with pytest.raises(ValueError, match="at least 2 values"):
        welch(Cohort.of([1.0]), Cohort.of([1.0, 2.0]))
    with pytest.raises(ValueError, match="confidence"):
        welch(Cohort.of([1.0, 2.0]), Cohort.of([1.0, 2.0]), confidence=1.0)
