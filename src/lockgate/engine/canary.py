"""The canary node, run by the coordinator: shift a route, watch both cohorts, decide.

One call of `run_canary` is one look. The first look shifts the route (a
route change `canary_start` by `run:<run id>`, its reason tagged with the
node id) and asks to be looked at again; later looks read the gateway's
samples since that change and apply the rule of `lockgate.model.canary`.
Everything a look needs is durable: the start time and the pre-canary state
are the `canary_start` change itself, so a resumed run (a new driver, a new
attempt) finds it and continues the same canary; a decision already applied
to the route (`canary_promote` / `canary_rollback` by this run) is finished,
not applied twice.

Cohorts, from samples routed with the canary's route version:
- mode "serve": the candidate's served requests vs the incumbents' (the
  targets serving before the canary);
- mode "mirror": the candidate's mirrored copies vs the served requests.
A sample counts when it has no error and has a value for the metric (an
online score or feedback). Errors are counted and reported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.engine.system import SystemContext, SystemResult, fail
from lockgate.errors import RouteConflictError, RouteNotFoundError
from lockgate.model.canary import CanaryRule, Decision, Verdict, decide
from lockgate.model.graph import Node
from lockgate.model.states import EventKind
from lockgate.model.versions import VersionRef
from lockgate.ports.executor import Invocation, Load
from lockgate.ports.metadata import AliasMove
from lockgate.ports.routes import RouteChange, RouteTarget, targets_of

#: The alias a promoted candidate takes.
PROMOTE_ALIAS = "production"
#: How many of a route's newest changes are searched for this canary's own.
_HISTORY = 1000
#: Samples are read from this long before the start: a gateway's clock may lag the
#: coordinator's. The route version, not the time, says which samples belong.
CLOCK_SKEW = 60.0


@dataclass(frozen=True, slots=True)
class _Canary:
    """One canary's arguments, as the node was defined."""

    route: str
    mode: str
    percent: float
    rule: CanaryRule
    model: str | None
    every: float

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> _Canary:
        rule = CanaryRule(
            metric=kwargs["metric"],
            min_samples=int(kwargs["min_samples"]),
            max_wait=float(kwargs["max_wait"]),
            max_regression=float(kwargs["max_regression"]),
            higher_is_better=bool(kwargs["higher_is_better"]),
            confidence=float(kwargs["confidence"]),
        )
        return cls(
            kwargs["route"],
            kwargs["mode"],
            float(kwargs["percent"]),
            rule,
            kwargs.get("model"),
            float(kwargs["check_every"]),
        )


def tag(node_id: str) -> str:
    """The prefix of the reason of every route change a canary node makes."""
    return f"canary {node_id}:"


def _own_changes(ctx: SystemContext, route: str, node_id: str) -> list[RouteChange]:
    """This run's canary changes of `route` made by this node, newest first."""
    return [
        c
        for c in ctx.store.route_changes(route, limit=_HISTORY)
        if c.run_id == ctx.run_id
        and c.action.startswith("canary_")
        and (c.reason or "").startswith(tag(node_id))
    ]


def _candidate(
    ctx: SystemContext, node: Node, invocation: Invocation, canary: _Canary, serving: Sequence[str]
) -> RouteTarget | SystemResult:
    """The candidate as a route target, or the failure saying why it cannot be one."""
    value = invocation.args[0] if invocation.args else None
    if not isinstance(value, Load):
        return fail("CanaryError", f"node {node.id!r}: candidate must be a registered model")
    source = node.args[0] if node.args else None
    name = source.name if isinstance(source, VersionRef) else canary.model
    if name is None:
        models = sorted(set(serving))
        if len(models) != 1:
            return fail(
                "CanaryError",
                f"node {node.id!r}: route {canary.route!r} serves models {models}; say which "
                "model the candidate is a version of: lg.canary(..., model='NAME')",
            )
        name = models[0]
    version = ctx.store.version_of("model", name, value.ref.sha256)
    if version is None:
        return fail(
            "CanaryError",
            f"node {node.id!r}: the candidate is not a registered version of model {name!r}; "
            f"put lg.register(model, name={name!r}, scores=lg.gate(...)) before lg.canary",
        )
    if not version.gated:
        return fail(
            "CanaryError",
            f"node {node.id!r}: model {name!r} version {version.version} has no passing gate; "
            "register it with scores=lg.gate(...) before trying it on live traffic",
        )
    return RouteTarget(name, version.version, 0.0)


def _start(
    ctx: SystemContext, node: Node, invocation: Invocation, canary: _Canary, tr_id: int
) -> SystemResult:
    """Shift the route to the candidate (the first look)."""
    try:
        route = ctx.store.get_route(canary.route)
    except RouteNotFoundError:
        return fail(
            "CanaryError",
            f"node {node.id!r}: route {canary.route!r} does not exist; create it first "
            f"(lockgate routes set {canary.route} model:NAME@VERSION=100)",
        )
    found = _candidate(ctx, node, invocation, canary, [t.model for t in route.targets])
    if isinstance(found, SystemResult):
        return found
    incumbents = [t for t in route.targets if t.label != found.label and t.weight > 0]
    if not incumbents:
        return fail(
            "CanaryError",
            f"node {node.id!r}: route {canary.route!r} serves nothing but {found.label}: "
            "there is no incumbent to compare the candidate with",
        )
    if canary.mode == "serve":
        share = 100.0 - canary.percent
        total = sum(t.weight for t in incumbents)
        scaled = [RouteTarget(t.model, t.version, t.weight * share / total) for t in incumbents]
        last = scaled[-1]
        scaled[-1] = RouteTarget(
            last.model, last.version, share - sum(t.weight for t in scaled[:-1])
        )
        targets = (*scaled, RouteTarget(found.model, found.version, canary.percent))
        mirror = route.mirror
    else:
        if any(t.label == found.label and t.weight > 0 for t in route.targets):
            return fail(
                "CanaryError",
                f"node {node.id!r}: {found.label} already serves route {canary.route!r}; a "
                "mirror canary needs a candidate whose answers are not served",
            )
        targets, mirror = route.targets, found
    at = ctx.clock.now()
    reason = (
        f"{tag(node.id)} try {found.label} ({canary.mode}"
        + (f", {canary.percent:g}%" if canary.mode == "serve" else "")
        + f") on {canary.rule.metric}"
    )
    try:
        changed = ctx.store.change_route(
            canary.route,
            targets=targets,
            mirror=mirror,
            action="canary_start",
            by=f"run:{ctx.run_id}",
            at=at,
            reason=reason,
            run_id=ctx.run_id,
            expected_version=route.version,
        )
    except RouteConflictError:
        return SystemResult(watch=canary.every)  # changed meanwhile: try again next look
    payload = {
        "route": canary.route,
        "mode": canary.mode,
        "candidate": found.label,
        "percent": canary.percent if canary.mode == "serve" else None,
        "route_version": changed.version,
        "incumbents": [t.label for t in incumbents],
        "metric": canary.rule.metric,
        "rule": canary.rule.text(),
    }
    return SystemResult(watch=canary.every, events=[(EventKind.CANARY_STARTED, payload)])


def _values(
    ctx: SystemContext, canary: _Canary, start: RouteChange, candidate: str, until: float | None
) -> tuple[list[float], list[float], dict[str, int]]:
    """The metric values of the candidate's and incumbents' cohorts, and error counts."""
    previous, _ = targets_of(start.previous or {})
    incumbents = {t.label for t in previous if t.weight > 0 and t.label != candidate}
    candidate_cohort = "serve" if canary.mode == "serve" else "mirror"
    cand: list[float] = []
    inc: list[float] = []
    errors = {"candidate": 0, "incumbent": 0}
    metric = canary.rule.metric
    since = start.at - CLOCK_SKEW
    for sample in ctx.store.route_samples(canary.route, since=since, until=until):
        if sample.route_version != start.version:
            continue
        if sample.cohort == candidate_cohort and sample.target == candidate:
            which, values = "candidate", cand
        elif sample.cohort == "serve" and sample.target in incumbents:
            which, values = "incumbent", inc
        else:
            continue
        if sample.error is not None:
            errors[which] += 1
            continue
        value = sample.scores.get(metric)
        if value is not None:
            values.append(float(value))
    return cand, inc, errors


def _summary(
    canary: _Canary, candidate: str, verdict: Verdict, errors: Mapping[str, int], **extra: Any
) -> dict[str, Any]:
    view = verdict.as_dict()
    view["candidate"]["errors"] = errors["candidate"]
    view["incumbent"]["errors"] = errors["incumbent"]
    return {
        "route": canary.route,
        "mode": canary.mode,
        "target": candidate,
        "metric": canary.rule.metric,
        "rule": canary.rule.text(),
        **view,
        **extra,
    }


def run_canary(
    ctx: SystemContext, node: Node, invocation: Invocation, tr_id: int, *, again: bool = True
) -> SystemResult:
    """One look at the canary: start it, keep watching, or promote / roll back."""
    canary = _Canary.of(invocation.kwargs)
    own = _own_changes(ctx, canary.route, node.id)
    start = next((c for c in own if c.action == "canary_start"), None)
    done = None if start is None else next((c for c in own if c.id > start.id), None)
    if start is None or (done is not None and _aborted(done, node.id)):
        return _start(ctx, node, invocation, canary, tr_id)  # first look, or after a cancel
    previous, previous_mirror = targets_of(start.previous or {})
    found = _candidate(ctx, node, invocation, canary, [t.model for t in previous])
    if isinstance(found, SystemResult):
        return found
    now = ctx.clock.now()
    until = done.at if done is not None else None
    cand, inc, errors = _values(ctx, canary, start, found.label, until)
    verdict = decide(canary.rule, cand, inc, (until or now) - start.at)
    if done is not None:  # decided by an earlier drive of this run: finish it
        action: Decision = "promote" if done.action == "canary_promote" else "rollback"
        reason = (done.reason or "")[len(tag(node.id)) :].strip()
        verdict = Verdict(action, reason, *_numbers(verdict))
        return _finish(ctx, node, canary, found, verdict, errors, start, done.at, done.version)
    try:
        current = ctx.store.get_route(canary.route).version
    except RouteNotFoundError:
        current = None
    if current != start.version:
        return _abandon(ctx, canary, found, verdict, errors, start)
    if verdict.decision == "watch":
        return SystemResult(watch=canary.every)
    try:
        targets: tuple[RouteTarget, ...]
        if verdict.decision == "promote":
            targets, mirror = (RouteTarget(found.model, found.version, 100.0),), None
        else:
            targets, mirror = previous, previous_mirror
        changed = ctx.store.change_route(
            canary.route,
            targets=targets,
            mirror=mirror,
            action=f"canary_{verdict.decision}",
            by=f"run:{ctx.run_id}",
            at=now,
            reason=f"{tag(node.id)} {verdict.reason}",
            run_id=ctx.run_id,
            expected_version=start.version,
        )
    except (RouteConflictError, RouteNotFoundError):
        if again:  # another driver of this run may have decided first: look once more
            return run_canary(ctx, node, invocation, tr_id, again=False)
        return _abandon(ctx, canary, found, verdict, errors, start)
    return _finish(
        ctx, node, canary, found, verdict, errors, start, changed.updated_at, changed.version
    )


def _numbers(verdict: Verdict) -> tuple[Any, Any, Any]:
    return verdict.candidate, verdict.incumbent, verdict.comparison


def _aborted(change: RouteChange, node_id: str) -> bool:
    """A rollback `abort` made when the run was cancelled (a resume starts anew)."""
    return (change.reason or "").startswith(f"{tag(node_id)} aborted:")


def _finish(
    ctx: SystemContext,
    node: Node,
    canary: _Canary,
    found: RouteTarget,
    verdict: Verdict,
    errors: Mapping[str, int],
    start: RouteChange,
    decided_at: float,
    route_version: int,
) -> SystemResult:
    """The node's result once the route carries the decision."""
    summary = _summary(
        canary,
        found.label,
        verdict,
        errors,
        started_at=start.at,
        decided_at=decided_at,
        route_version=route_version,
    )
    event = (EventKind.CANARY_DECIDED, summary)
    if verdict.decision == "promote":
        move = AliasMove(
            name=found.model,
            alias=PROMOTE_ALIAS,
            action="promote",
            actor=f"run:{ctx.run_id}",
            version=found.version,
            reason=f"canary {node.id} on route {canary.route}: {verdict.reason}",
            run_id=ctx.run_id,
        )
        return SystemResult(alias_moves=[move], small_output=summary, events=[event])
    result = fail(
        "CanaryRolledBack",
        f"canary {node.id!r} rolled route {canary.route!r} back from {found.label}: "
        f"{verdict.reason}",
        gate=True,
    )
    result.events.append(event)
    return result


def _abandon(
    ctx: SystemContext,
    canary: _Canary,
    found: RouteTarget,
    verdict: Verdict,
    errors: Mapping[str, int],
    start: RouteChange,
) -> SystemResult:
    """Someone else changed the route during the canary: leave it as they made it."""
    try:
        route = ctx.store.get_route(canary.route)
        who = f"{route.updated_by} (route version {route.version})"
    except RouteNotFoundError:
        who = "someone who deleted it"
    abandoned = Verdict(
        "rollback", f"abandoned: the route was changed by {who}", *_numbers(verdict)
    )
    summary = _summary(canary, found.label, abandoned, errors, started_at=start.at)
    summary["decision"] = "abandoned"
    result = fail(
        "CanaryAbandoned",
        f"canary on route {canary.route!r} abandoned: the route was changed by {who} while it "
        "watched; the route is left as they made it and the registry untouched",
    )
    result.events.append((EventKind.CANARY_DECIDED, summary))
    return result


def abort(ctx: SystemContext, node: Node, invocation: Invocation, why: str) -> None:
    """Undo a watching canary's route change (the run is being cancelled)."""
    canary = _Canary.of(invocation.kwargs)
    own = _own_changes(ctx, canary.route, node.id)
    start = next((c for c in own if c.action == "canary_start"), None)
    if start is None or any(c.id > start.id for c in own):
        return
    previous, previous_mirror = targets_of(start.previous or {})
    try:
        ctx.store.change_route(
            canary.route,
            targets=previous,
            mirror=previous_mirror,
            action="canary_rollback",
            by=f"run:{ctx.run_id}",
            at=ctx.clock.now(),
            reason=f"{tag(node.id)} aborted: {why}",
            run_id=ctx.run_id,
            expected_version=start.version,
        )
    except (RouteConflictError, RouteNotFoundError):
        return  # changed by someone else meanwhile: theirs stands
