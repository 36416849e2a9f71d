"""Sticky weighted picks: stable per key, weight-shaped over keys, monotone as a canary grows."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from lockgate.errors import DefinitionError
from lockgate.model.routing import pick, point


def binomial_tolerance(n: int, p: float, sigmas: float = 4.0) -> float:
    """`sigmas` standard deviations of the share of n Bernoulli(p) draws."""
    return sigmas * math.sqrt(p * (1 - p) / n)


def test_the_same_key_always_goes_to_the_same_target():
    weights = [95.0, 5.0]
    first = [pick("support-bot", f"user-{i}", weights) for i in range(2000)]
    again = [pick("support-bot", f"user-{i}", weights) for i in range(2000)]
    assert first == again


def test_each_target_gets_its_weights_share_of_keys():
    # 20,000 keys at 5%: the share's standard deviation is sqrt(.05 * .95 / 20000) = 0.154
    # points, so 4 sigmas is +-0.62 points (a false alarm about once in 16,000 key sets).
    n = 20_000
    counts = Counter(pick("support-bot", f"req-{i}", [95.0, 5.0]) for i in range(n))
    tolerance = binomial_tolerance(n, 0.05)
    assert abs(counts[1] / n - 0.05) <= tolerance, counts
    three = Counter(pick("r", f"k{i}", [50.0, 30.0, 20.0]) for i in range(n))
    for index, share in enumerate([0.5, 0.3, 0.2]):
        assert abs(three[index] / n - share) <= binomial_tolerance(n, share), three


def test_points_are_uniform_over_keys():
    n = 10_000
    deciles = Counter(int(point("r", str(i)) // 10) for i in range(n))
    assert set(deciles) == set(range(10))
    for count in deciles.values():
        assert abs(count / n - 0.1) <= binomial_tolerance(n, 0.1)


def test_zero_weight_targets_never_serve():
    assert {pick("r", str(i), [0.0, 100.0, 0.0]) for i in range(500)} == {1}


def test_growing_a_canary_keeps_its_keys_on_it():
    # Candidate first: keys in [0, 5) stay on it when it grows to [0, 10).
    small = {i for i in range(5000) if pick("r", str(i), [5.0, 95.0]) == 0}
    large = {i for i in range(5000) if pick("r", str(i), [10.0, 90.0]) == 0}
    assert small and small <= large and len(large) > len(small)


def test_routes_hash_keys_independently():
    a = [pick("route-a", str(i), [50.0, 50.0]) for i in range(1000)]
    b = [pick("route-b", str(i), [50.0, 50.0]) for i in range(1000)]
    assert a != b


def test_weights_need_not_sum_to_100():
    n = 5000
    counts = Counter(pick("r", str(i), [1.0, 3.0]) for i in range(n))
    assert abs(counts[1] / n - 0.75) <= binomial_tolerance(n, 0.75)


@pytest.mark.parametrize("weights", [[], [0.0, 0.0], [-1.0, 101.0], [math.nan, 100.0]])
def test_bad_weights_are_refused(weights):
    with pytest.raises(DefinitionError, match="route 'r'"):
        pick("r", "key", weights)
