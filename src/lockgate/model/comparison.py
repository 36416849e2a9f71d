"""Compare two cohorts' means: Welch's one-sided confidence bounds, pure Python.

A canary compares a live quality metric between the candidate's requests and
the incumbent's. This module computes the difference of the means with its
one-sided confidence bounds, using Welch's unequal-variance t interval:

    D   = s * (mean_c - mean_i)            s = +1 if higher is better, else -1
    SE  = sqrt(var_c / n_c + var_i / n_i)  sample variances (divisor n - 1)
    df  = SE**4 / ((var_c/n_c)**2 / (n_c-1) + (var_i/n_i)**2 / (n_i-1))   (Welch-Satterthwaite)
    q   = t quantile at `confidence` with df degrees of freedom
    lower = D - q * SE,   upper = D + q * SE

`lower` is a one-sided lower confidence bound on the improvement D (with
probability `confidence`, the true improvement is at least `lower`); `upper`
is the matching one-sided upper bound. When SE is 0 (every value equal in
both cohorts) the bounds are D itself.

No numpy or scipy: the Student t CDF comes from the regularized incomplete
beta function (continued fraction, Lentz's method) and its quantile from
bisection; the normal quantile from `statistics.NormalDist`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

_EPS = 1e-15
_TINY = 1e-300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"incomplete_beta: x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    # The fraction converges fast on this side; use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a).
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with `df` > 0 degrees of freedom (df may be fractional)."""
    if df <= 0 or math.isnan(df):
        raise ValueError(f"t_cdf: degrees of freedom must be > 0, got {df}")
    if math.isinf(df):
        return NormalDist().cdf(t)
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The t with P(T <= t) = p, for Student's t with `df` > 0 degrees of freedom."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_quantile: p must be in (0, 1), got {p}")
    if math.isinf(df):
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    high = 1.0
    while t_cdf(high, df) < p:
        high *= 2.0
    low = 0.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-12 * max(1.0, high):
            break
    return (low + high) / 2.0


@dataclass(frozen=True, slots=True)
class Cohort:
    """Summary of one cohort's metric values: count, mean and sample variance (n - 1)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Cohort:
        """Summarize `values` (one pass, Welford's method: stable for large n)."""
        n, mean, m2 = 0, 0.0, 0.0
        for raw in values:
            value = float(raw)
            n += 1
            delta = value - mean
            mean += delta / n
            m2 += delta * (value - mean)
        return cls(n, mean if n else math.nan, m2 / (n - 1) if n > 1 else math.nan)

    @property
    def sd(self) -> float:
        """The sample standard deviation."""
        return math.sqrt(self.variance) if self.n > 1 else math.nan


@dataclass(frozen=True, slots=True)
class Comparison:
    """The improvement of the candidate over the incumbent, with its one-sided bounds.

    Attributes:
        difference: D, the improvement (candidate minus incumbent, sign-flipped
            when lower values are better).
        se: the standard error of D.
        df: Welch-Satterthwaite degrees of freedom (inf when SE is 0).
        quantile: q, the t quantile used.
        lower: D - q * SE (the one-sided lower bound at `confidence`).
        upper: D + q * SE (the one-sided upper bound at `confidence`).
    """

    difference: float
    se: float
    df: float
    quantile: float
    lower: float
    upper: float
    confidence: float


def welch(
    candidate: Cohort, incumbent: Cohort, *, confidence: float = 0.95, higher_is_better: bool = True
) -> Comparison:
    """One-sided Welch bounds on the candidate's improvement (see the module docstring).

    Raises:
        ValueError: a cohort has fewer than 2 values, or `confidence` is not in (0.5, 1).
    """
    if candidate.n < 2 or incumbent.n < 2:
        raise ValueError(
            f"welch: each cohort needs at least 2 values (candidate {candidate.n}, "
            f"incumbent {incumbent.n})"
        )
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"welch: confidence must be in (0.5, 1), got {confidence}")
    sign = 1.0 if higher_is_better else -1.0
    difference = sign * (candidate.mean - incumbent.mean)
    vc = candidate.variance / candidate.n
    vi = incumbent.variance / incumbent.n
    se = math.sqrt(vc + vi)
    if se == 0.0:
        return Comparison(difference, 0.0, math.inf, 0.0, difference, difference, confidence)
    df = (vc + vi) ** 2 / (vc * vc / (candidate.n - 1) + vi * vi / (incumbent.n - 1))
    q = t_quantile(confidence, df)
    return Comparison(difference, se, df, q, difference - q * se, difference + q * se, confidence)
