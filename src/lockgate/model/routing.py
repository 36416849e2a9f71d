"""Sticky weighted picks: which target of a route serves a request key.

A pick is a pure function of (route name, request key, weights): the key is
hashed (SHA-256 of `route NUL key`) to a point in [0, 100), and the target
whose cumulative-weight interval holds the point serves it. So:

- the same key goes to the same target while the route's weights (and the
  order of its targets) are unchanged, on every gateway process, across
  restarts;
- over many distinct keys, each target gets its weight's share (the hash is
  uniform; tests/model/test_routing.py checks the distribution);
- the point of a key does not depend on the weights, so growing a canary
  from 5% to 10% keeps the first 5%'s keys on the canary and moves only new
  ones: a user never flips back and forth while a rollout only grows.

Weights are percentages that sum to 100 (the route service checks that);
`pick` also accepts any positive total by scaling the point to it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from lockgate.errors import DefinitionError

#: How many bits of the hash make the point (plenty for a uniform [0, 100)).
_BITS = 64


def point(route: str, key: str) -> float:
    """Where `key` falls in [0, 100) for `route` (uniform over keys, fixed per key)."""
    digest = hashlib.sha256(f"{route}\x00{key}".encode()).digest()
    whole: int = int.from_bytes(digest[: _BITS // 8], "big")
    return whole / float(2**_BITS) * 100.0


def pick(route: str, key: str, weights: Sequence[float]) -> int:
    """The index of the target that serves `key`, given the targets' weights in route order.

    Targets with weight 0 never serve. The intervals are half-open,
    `[start, start + weight)`, laid out in route order.

    Raises:
        DefinitionError: no weights, a negative or non-finite weight, or all zero.
    """
    total = 0.0
    for weight in weights:
        if not weight >= 0 or weight == float("inf"):
            raise DefinitionError(
                f"route {route!r}: weights must be finite and >= 0, got {list(weights)!r}; "
                "set them with `lockgate routes set`"
            )
        total += weight
    if total <= 0:
        raise DefinitionError(
            f"route {route!r} has no target with a positive weight ({list(weights)!r}); "
            "give one a weight with `lockgate routes shift`"
        )
    at = point(route, key) / 100.0 * total
    start = 0.0
    last = 0
    for index, weight in enumerate(weights):
        if weight <= 0:
            continue
        last = index
        if at < start + weight:
            return index
        start += weight
    return last  # rounding at the very top of the range: the last positive target
