"""Retry and outcome decisions as small pure functions of (policy, state, outcome)."""

from __future__ import annotations

from dataclasses import dataclass

from lockgate.model.policy import RetryPolicy
from lockgate.model.states import AttemptState, TaskState
from lockgate.ports.executor import Outcome


@dataclass(frozen=True, slots=True)
class Decision:
    """What happens to a task run after an attempt ends.

    Attributes:
        attempt_state: how the attempt is recorded.
        task_state: succeeded, retrying or failed.
        delay: seconds to wait before the next attempt (retrying only).
    """

    attempt_state: AttemptState
    task_state: TaskState
    delay: float = 0.0


def retry_delay(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based).

    Exponential: `delay * backoff**(attempt-1)`, capped at `max_delay`, plus up
    to `jitter` of itself; `rand` is a uniform sample in [0, 1).
    """
    base = policy.delay * policy.backoff ** (attempt - 1)
    return min(policy.max_delay, base * (1.0 + policy.jitter * rand))


def decide(policy: RetryPolicy, attempt: int, outcome: Outcome, rand: float) -> Decision:
    """Decide the fate of a task run from the outcome of attempt `attempt`."""
    if outcome.ok:
        return Decision(AttemptState.SUCCEEDED, TaskState.SUCCEEDED)
    attempt_state = AttemptState.TIMED_OUT if outcome.timed_out else AttemptState.FAILED
    retryable = outcome.timed_out or (outcome.error is not None and outcome.error.retryable)
    if retryable and attempt < policy.max_attempts:
        return Decision(attempt_state, TaskState.RETRYING, retry_delay(policy, attempt, rand))
    return Decision(attempt_state, TaskState.FAILED)
