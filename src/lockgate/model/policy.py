"""Task policies: how a task retries, times out, caches and what it needs.

Every value is checked when the task is defined, so a bad policy fails at
import time with the task and field named, never halfway through a run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from lockgate.errors import InvalidPolicyError
from lockgate.model.units import parse_duration, parse_size


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """Reuse a previous successful result when the cache key matches.

    Attributes:
        expire: seconds after which a cached result is no longer reused; None keeps it.
    """

    expire: float | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how fast a failed attempt is tried again.

    The delay before attempt n+1 is `delay * backoff**(n-1)`, capped at
    `max_delay`, with up to `jitter` (a fraction) added so that many failing
    tasks do not retry in lockstep.
    """

    retries: int = 0
    delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    @property
    def max_attempts(self) -> int:
        """Attempts allowed in total, the first one included."""
        return self.retries + 1


@dataclass(frozen=True, slots=True)
class Resources:
    """What one invocation needs; executors that can enforce it do."""

    cpu: float | None = None
    gpu: float | None = None
    memory: int | None = None
    extra: Mapping[str, float] = field(default_factory=dict)


def make_retry_policy(
    owner: str,
    *,
    retries: object,
    retry_delay: object,
    backoff: object,
    max_retry_delay: object,
    retry_on: object,
) -> RetryPolicy:
    """Check the retry options of `owner` (e.g. "task 'train'") and build the policy."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidPolicyError.for_field(owner, "retries", retries, "an int >= 0")
    delay = _duration(owner, "retry_delay", retry_delay)
    cap = _duration(owner, "max_retry_delay", max_retry_delay)
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, int | float)
        or not math.isfinite(backoff)
        or backoff < 1
    ):
        raise InvalidPolicyError.for_field(
            owner, "backoff", backoff, "a number >= 1 (1 = constant)"
        )
    if isinstance(retry_on, type):
        retry_on = (retry_on,)
    if (
        not isinstance(retry_on, tuple | list)
        or not retry_on
        or not all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on)
    ):
        raise InvalidPolicyError.for_field(
            owner, "retry_on", retry_on, "an exception class or a tuple of them"
        )
    return RetryPolicy(
        retries=retries,
        delay=delay,
        backoff=float(backoff),
        max_delay=max(cap, delay),
        retry_on=tuple(retry_on),
    )


def make_timeout(owner: str, timeout: object) -> float | None:
    """Check a timeout (seconds or a duration string; None = no limit)."""
    if timeout is None:
        return None
    seconds = _duration(owner, "timeout", timeout)
    if seconds <= 0:
        raise InvalidPolicyError.for_field(owner, "timeout", timeout, "a duration > 0 or None")
    return seconds


def make_cache_policy(owner: str, cache: object) -> CachePolicy | None:
    """Accept `cache=True/False/None` or a `CachePolicy`."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return CachePolicy()
    if isinstance(cache, CachePolicy):
        if cache.expire is not None and (not math.isfinite(cache.expire) or cache.expire <= 0):
            raise InvalidPolicyError.for_field(owner, "cache.expire", cache.expire, "seconds > 0")
        return cache
    raise InvalidPolicyError.for_field(owner, "cache", cache, "True, False or a CachePolicy")


def make_resources(owner: str, resources: object) -> Resources:
    """Check `resources={"cpu": 2, "gpu": 1, "memory": "4GiB", ...}`."""
    if resources is None:
        return Resources()
    if not isinstance(resources, Mapping):
        raise InvalidPolicyError.for_field(
            owner, "resources", resources, 'a dict such as {"cpu": 2, "memory": "4GiB"}'
        )
    values: dict[str, float] = {}
    memory: int | None = None
    for key, value in resources.items():
        if not isinstance(key, str) or not key:
            raise InvalidPolicyError.for_field(owner, "resources", resources, "string keys")
        if key == "memory":
            try:
                memory = parse_size(value)
            except ValueError as exc:
                raise InvalidPolicyError.for_field(
                    owner, "resources['memory']", value, "a size such as '512MiB' or '4GB'"
                ) from exc
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise InvalidPolicyError.for_field(owner, f"resources[{key!r}]", value, "a number >= 0")
        values[key] = float(value)
    return Resources(
        cpu=values.pop("cpu", None),
        gpu=values.pop("gpu", None),
        memory=memory,
        extra=values,
    )


def _duration(owner: str, name: str, value: object) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidPolicyError.for_field(
            owner, name, value, "seconds >= 0 or a duration such as '30s', '5m'"
        ) from exc
