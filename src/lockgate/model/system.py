"""System nodes: gate, register, promote, approval and canary, wired like tasks, run by lockgate.

They appear in the graph like any node (so they are drawn, hashed and
skipped like tasks), but the coordinator runs them itself, because they read
and write the registry: a gate compares scores with thresholds (possibly
relative to a registry alias) and records its verdict; register records a
model version with its scores; promote moves an alias; approval waits for a
person; canary shifts live traffic to a candidate, watches it and promotes or
rolls it back. Everything they decide is committed with the node's result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lockgate.errors import DefinitionError, GateError, RegistryError
from lockgate.model.canary import MODES, CanaryRule
from lockgate.model.gates import judge, metric_values, parse_checks
from lockgate.model.policy import Resources, RetryPolicy
from lockgate.model.task import Task, TaskSpec
from lockgate.model.units import parse_duration
from lockgate.model.versions import VersionRef, check_name, parse_version_ref

SYSTEM_KINDS = ("gate", "register", "promote", "approval", "canary")


def _system_task(kind: str, fn: Any, name: str | None) -> Task:
    node_name = name or kind
    if not node_name.isidentifier():
        raise DefinitionError(f"{kind} name {node_name!r} must be a Python identifier")
    spec = TaskSpec(
        name=node_name,
        version=f"lockgate.{kind}/1",
        retry=RetryPolicy(),
        timeout=None,
        cache=None,
        pool=None,
        resources=Resources(),
        system=kind,
    )
    return Task(fn, spec)


def _gate(scores: Any, checks: Mapping[str, str], model: str | None = None) -> Any:
    # Outside a pipeline (a notebook, a test): absolute checks only.
    verdicts = []
    for check in parse_checks("gate", checks):
        if check.alias is not None:
            raise GateError(
                f"gate check {check.metric!r} is relative to alias {check.alias!r}, which needs "
                "the registry: use the gate inside a pipeline"
            )
        verdicts.append(judge(check, metric_values(scores).get(check.metric), None))
    failed = [v for v in verdicts if not v.passed]
    if failed:
        raise GateError("gate failed: " + "; ".join(v.reason for v in failed))
    return scores


def gate(
    scores: Any,
    checks: Mapping[str, Any],
    *,
    model: str | None = None,
    name: str | None = None,
    after: Any = (),
) -> Any:
    """A node that passes `scores` on only if every check holds.

    Args:
        scores: evaluator scores (the output of `lg.evaluate`, or a dict of metrics).
        checks: `{"metric": "OP THRESHOLD"}`; THRESHOLD is a number or
            `ALIAS [+|-] NUMBER`, relative to the model version holding that alias.
        model: the registry model whose aliases relative thresholds refer to.
        name: the node id (default `gate`, `gate_2`, ...).
        after: nodes that must finish first, without passing data.

    Returns:
        Inside a pipeline, the placeholder of the checked scores: give it to
        `lg.register(..., scores=...)` so registration runs only after a pass.

    Raises:
        DefinitionError: a malformed check, or a relative check without `model`.
    """
    label = name or "gate"
    parsed = parse_checks(label, checks)
    if any(c.alias for c in parsed) and model is None:
        raise DefinitionError(
            f"gate {label!r} compares with a registry alias "
            f"({next(c.expression for c in parsed if c.alias)!r}); say which model: "
            "lg.gate(scores, {...}, model='support-bot')"
        )
    if model is not None:
        check_name("model", model)
    return _system_task("gate", _gate, name)(scores, checks=dict(checks), model=model, after=after)


def _needs_pipeline(*_: Any, **__: Any) -> Any:
    raise RegistryError(
        "lg.register, lg.promote, lg.approval and lg.canary are pipeline nodes: call them inside "
        "an @lg.pipeline body (from a shell, use `lockgate models promote` / `lockgate approve`)"
    )


def register(model: Any, *, name: str, scores: Any = None, after: Any = ()) -> Any:
    """A node that records `model` as a version of registry model `name`, with its scores.

    The same content registers once (re-runs return the existing version). A
    version whose scores come through a passing `lg.gate` (or that waits for
    one with `after=[gate]`) is marked gated; only gated versions can be
    promoted without `--force`.

    Returns:
        The placeholder of the model (pass it to `lg.promote`).
    """
    check_name("model", name)
    return _system_task("register", _needs_pipeline, None)(
        model, name=name, scores=scores, after=after
    )


def promote(
    model: Any, *, name: str, alias: str, reason: str | None = None, after: Any = ()
) -> Any:
    """A node that points registry alias `alias` of model `name` at this model's version.

    Refused (the node fails) when the version was not registered through a
    passing gate. The move is recorded in the alias audit log with the run id.
    """
    check_name("model", name)
    if not isinstance(alias, str) or not alias.replace("-", "_").isidentifier():
        raise DefinitionError(f"promote: alias {alias!r} must be a name such as 'production'")
    return _system_task("promote", _needs_pipeline, None)(
        model, name=name, alias=alias, reason=reason, after=after
    )


def approval(
    message: str,
    *,
    approvers: Iterable[str] | None = None,
    name: str | None = None,
    after: Any = (),
) -> Any:
    """A node that waits, holding no worker, until someone approves or rejects it.

    `lockgate approve RUN NODE --reason ...` (or `reject`) decides; the run
    waits (state `waiting`) and survives restarts meanwhile. Rejection fails
    the node and skips everything downstream.

    Args:
        message: what is being approved, shown to approvers.
        approvers: who may decide (default: anyone).
        name: the node id (default `approval`).
        after: nodes that must finish before approval is asked for.
    """
    if not isinstance(message, str) or not message:
        raise DefinitionError("lg.approval needs a message saying what is being approved")
    who = sorted(set(approvers)) if approvers is not None else None
    if who is not None and not all(isinstance(a, str) and a for a in who):
        raise DefinitionError("lg.approval: approvers must be non-empty strings")
    return _system_task("approval", _needs_pipeline, name)(message, approvers=who, after=after)


def canary(
    *,
    route: str,
    candidate: Any,
    metric: str,
    percent: float = 5,
    min_samples: int = 500,
    max_wait: float | str = "30m",
    max_regression: float = 0.02,
    mode: str = "serve",
    higher_is_better: bool = True,
    confidence: float = 0.95,
    model: str | None = None,
    check_every: float | str = "10s",
    name: str | None = None,
    after: Any = (),
) -> Any:
    """A node that tries `candidate` on live traffic, then promotes it or rolls it back.

    Start: route `route` gives the candidate `percent`% of requests (mode
    "serve"; the other targets keep their proportions) or makes it the mirror
    (mode "mirror": every request is copied to it, its answers are scored and
    never returned; `percent` is unused). The change is a route change
    `canary_start` by `run:<run id>`.

    Watch: every `check_every`, the live values of `metric` (an online score
    or feedback) of the candidate's requests and of the incumbent's since the
    start are compared. With D = s * (mean_candidate - mean_incumbent) (s = +1
    if `higher_is_better`, else -1), SE = sqrt(var_c/n_c + var_i/n_i), df by
    Welch-Satterthwaite and q the t quantile at `confidence`, the one-sided
    bounds are lower = D - q*SE and upper = D + q*SE. Then:

    - roll back as soon as both cohorts have >= max(2, ceil(min_samples/10))
      values and upper < -max_regression (the candidate is worse than allowed);
    - promote once both cohorts have >= `min_samples` values and
      lower >= -max_regression (any regression is within the allowance);
    - roll back when `max_wait` passes without either (fail safe).

    Promote: the route serves the candidate at 100% (mirror cleared) and the
    registry alias `production` of the model moves to the candidate's version.
    Roll back: the route returns to its state before the canary, the registry
    is untouched, a `rollback` alert fact is raised (pages `[[alerts]]` rules
    on "rollback") and the node fails with a gate verdict: the run ends
    `gate_failed`. The driver watches without holding a worker, and a resumed
    run continues the same canary (same start time, same samples).

    Args:
        route: the route's name.
        candidate: the model version to try: a registered model (the output of
            `lg.register`), `lg.Model.ref("support-bot", 4)`, or
            `"model:support-bot@4"`. It must have passed a gate.
        metric: the live score compared (a gateway score or feedback metric).
        percent: the candidate's share of requests in mode "serve" (0 < p < 100).
        min_samples: values each cohort needs before a promotion.
        max_wait: the longest watch (seconds or "30m").
        max_regression: the allowed regression, absolute, in the metric's units.
        mode: "serve" or "mirror".
        higher_is_better: False for metrics such as latency.
        confidence: the level of the one-sided bounds.
        model: the registry model name when `candidate` is a node output
            (default: the model of the route's current targets).
        check_every: how often the cohorts are compared.
        name: the node id (default `canary`).
        after: nodes that must finish first, without passing data.

    Returns:
        The placeholder of the decision (a dict with the statistics).

    Raises:
        DefinitionError: a bad argument, named.
    """
    label = name or "canary"
    check_name("route", route)
    rule = CanaryRule.build(
        label,
        metric=metric,
        min_samples=min_samples,
        max_wait=max_wait,
        max_regression=max_regression,
        higher_is_better=higher_is_better,
        confidence=confidence,
    )
    if mode not in MODES:
        raise DefinitionError(f"canary {label!r}: mode must be 'serve' or 'mirror', got {mode!r}")
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not 0 < percent < 100:
        raise DefinitionError(
            f"canary {label!r}: percent must be a number between 0 and 100 (exclusive), "
            f"got {percent!r}"
        )
    try:
        every = parse_duration(check_every)
    except ValueError as exc:
        raise DefinitionError(f"canary {label!r}: check_every: {exc}") from None
    if every <= 0:
        raise DefinitionError(f"canary {label!r}: check_every must be positive")
    if model is not None:
        check_name("model", model)
    if isinstance(candidate, str):
        candidate = parse_version_ref(candidate)
    if isinstance(candidate, VersionRef) and candidate.kind != "model":
        raise DefinitionError(
            f"canary {label!r}: candidate {candidate} is a {candidate.kind}; it must be a model"
        )
    if candidate is None:
        raise DefinitionError(f"canary {label!r}: say which model version to try (candidate=)")
    return _system_task("canary", _needs_pipeline, name)(
        candidate,
        route=route,
        metric=rule.metric,
        percent=float(percent),
        min_samples=rule.min_samples,
        max_wait=rule.max_wait,
        max_regression=rule.max_regression,
        mode=mode,
        higher_is_better=rule.higher_is_better,
        confidence=rule.confidence,
        model=model,
        check_every=every,
        after=after,
    )
