"""Route use cases: set, shift and roll back the weighted targets behind a route.

A route sends each request to one of its targets (registry model versions)
by weight, and a copy to its mirror target if it has one. Every change is
validated here (targets exist in the registry, weights are finite,
non-negative and sum to 100, the mirror is not also served) and recorded by
the store with who made it (`cli:<user>`, `api:<token>`, `run:<id>`), when,
why and the state it replaced. The store serializes changes per route.

`shift` reads the route, recomputes its weights and writes them back fenced
on the version it read; when another writer came between, it reads again
and retries, so concurrent shifts compose instead of overwriting each other.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from lockgate.errors import InvalidRouteError, RouteConflictError
from lockgate.model.versions import check_name
from lockgate.ports.routes import ROUTE_ACTIONS, RouteChange, RouteRecord, RouteTarget
from lockgate.service.compose import Workspace
from lockgate.service.views import iso

#: Weights may be off by this much from summing to 100 (floating-point splits).
TOLERANCE = 1e-6

#: How many times `shift` re-reads a route another writer changed under it.
SHIFT_RETRIES = 20

_TARGET = re.compile(r"^(?:model:)?(?P<model>[^@=\s]+)@(?P<version>\d+)(?:=(?P<weight>.+))?$")


def run_actor(run_id: str) -> str:
    """`run:<id>`: who acts from inside a pipeline run (a canary step)."""
    return f"run:{run_id}"


def parse_target(text: str, *, weighted: bool = True) -> RouteTarget:
    """`model:NAME@VERSION=WEIGHT` (or, with `weighted=False`, `model:NAME@VERSION`).

    The `model:` prefix is optional.

    Raises:
        InvalidRouteError: the text does not have that shape.
    """
    found = _TARGET.match(text.strip())
    shape = "model:NAME@VERSION=WEIGHT" if weighted else "model:NAME@VERSION"
    example = "model:support-bot@4=5" if weighted else "model:support-bot@4"
    if found is None or (found["weight"] is None) == weighted:
        raise InvalidRouteError(f"route target {text!r} is not {shape} (e.g. {example!r})")
    weight = 0.0
    if weighted:
        try:
            weight = float(found["weight"])
        except ValueError:
            raise InvalidRouteError(
                f"route target {text!r} has weight {found['weight']!r}, which is not a number; "
                f"give a percent (e.g. {example!r})"
            ) from None
    return RouteTarget(found["model"], int(found["version"]), weight)


def parse_weights(items: Sequence[str]) -> dict[str, float]:
    """`["model:a@4=50", ...]` as {label: weight} (for `shift_route`)."""
    weights: dict[str, float] = {}
    for item in items:
        target = parse_target(item)
        if target.label in weights:
            raise InvalidRouteError(f"{target.label} is given twice; give each target once")
        weights[target.label] = target.weight
    return weights


def list_routes(workspace: Workspace) -> list[RouteRecord]:
    """Every route, by name."""
    return workspace.metadata.list_routes()


def get_route(workspace: Workspace, name: str) -> RouteRecord:
    """One route's state (RouteNotFoundError names the routes that exist)."""
    return workspace.metadata.get_route(check_name("route", name))


def route_history(workspace: Workspace, name: str, *, limit: int = 100) -> list[RouteChange]:
    """One route's changes, newest first."""
    get_route(workspace, name)
    return workspace.metadata.route_changes(name, limit=limit)


def set_route(
    workspace: Workspace,
    name: str,
    targets: Sequence[RouteTarget],
    *,
    mirror: RouteTarget | None = None,
    by: str,
    reason: str | None = None,
    run_id: str | None = None,
    action: str = "set",
    expected_version: int | None = None,
) -> RouteRecord:
    """Give route `name` these targets and mirror (creating it), recorded as `action`.

    Raises:
        InvalidRouteError: a target is not a registered model version, a weight
            is negative or not finite, the weights do not sum to 100, a target is
            given twice, or the mirror is also served.
        RouteConflictError: `expected_version` is set and the route is at another.
    """
    check_name("route", name)
    _check_action(action)
    checked = validate(workspace, name, targets, mirror)
    return workspace.metadata.change_route(
        name,
        targets=checked,
        mirror=mirror,
        action=action,
        by=by,
        at=time.time(),
        reason=reason,
        run_id=run_id,
        expected_version=expected_version,
    )


def shift_route(
    workspace: Workspace,
    name: str,
    weights: Mapping[str, float],
    *,
    by: str,
    reason: str | None = None,
    run_id: str | None = None,
    action: str = "shift",
    expected_version: int | None = None,
) -> RouteRecord:
    """Set the weights of the targets named in `weights` ({label: percent}).

    A label not on the route is added. The rest of the 100 percent is shared by
    the route's other targets in proportion to their current weights; those
    left at 0 are dropped. The mirror is kept.

    Raises:
        RouteNotFoundError: no such route (create it with `set_route`).
        InvalidRouteError: see `set_route`; also when the other targets have no
            weight to scale and the given weights do not sum to 100.
        RouteConflictError: `expected_version` is set and differs (without it,
            a concurrent change is read again and the shift retried).
    """
    if not weights:
        raise InvalidRouteError(f"shift of route {name!r} names no target; give LABEL=WEIGHT")
    for _ in range(SHIFT_RETRIES):
        current = get_route(workspace, name)
        if expected_version is not None and current.version != expected_version:
            raise RouteConflictError(
                f"route {name!r} changed since it was read: expected version "
                f"{expected_version}, found {current.version}; read it again and retry."
            )
        targets = shifted(current, weights)
        try:
            return set_route(
                workspace,
                name,
                targets,
                mirror=current.mirror,
                by=by,
                reason=reason,
                run_id=run_id,
                action=action,
                expected_version=current.version,
            )
        except RouteConflictError:
            if expected_version is not None:
                raise
    raise RouteConflictError(
        f"route {name!r} kept changing under this shift ({SHIFT_RETRIES} tries); "
        "retry when the other writer is done."
    )


def rollback_route(
    workspace: Workspace,
    name: str,
    *,
    by: str,
    reason: str | None = None,
    run_id: str | None = None,
    action: str = "rollback",
    expected_version: int | None = None,
) -> RouteRecord:
    """Atomically restore the state route `name` had before its last change.

    Raises:
        RouteNotFoundError: no such route.
        RouteStateError: its last change created it: there is no earlier state.
        RouteConflictError: `expected_version` is set and differs.
    """
    _check_action(action)
    return workspace.metadata.rollback_route(
        check_name("route", name),
        by=by,
        at=time.time(),
        reason=reason,
        run_id=run_id,
        action=action,
        expected_version=expected_version,
    )


# --- validation and weights -------------------------------------------------------------


def validate(
    workspace: Workspace,
    name: str,
    targets: Sequence[RouteTarget],
    mirror: RouteTarget | None,
) -> tuple[RouteTarget, ...]:
    """The targets, checked (see `set_route`); weights of the mirror are ignored."""
    if not targets:
        raise InvalidRouteError(
            f"route {name!r} needs at least one target, e.g. `model:support-bot@3=100`"
        )
    seen: set[str] = set()
    for target in targets:
        if target.label in seen:
            raise InvalidRouteError(
                f"route {name!r} names {target.label} twice; give each target once"
            )
        seen.add(target.label)
        if not math.isfinite(target.weight) or target.weight < 0:
            raise InvalidRouteError(
                f"route {name!r}: {target.label} has weight {target.weight:g}; weights are "
                "percentages from 0 to 100"
            )
    total = sum(t.weight for t in targets)
    if abs(total - 100.0) > TOLERANCE:
        given = ", ".join(f"{t.label}={t.weight:g}" for t in targets)
        raise InvalidRouteError(
            f"route {name!r}: weights sum to {total:g}, not 100 ({given}); give percentages "
            "that add up to 100"
        )
    served = {t.label for t in targets if t.weight > 0}
    if mirror is not None and mirror.label in served:
        raise InvalidRouteError(
            f"route {name!r}: the mirror {mirror.label} is also served; a mirror receives "
            "copies whose answers are never returned, so it must not take weight"
        )
    for target in (*targets, *([mirror] if mirror is not None else [])):
        _check_registered(workspace, name, target)
    return tuple(targets)


def shifted(current: RouteRecord, weights: Mapping[str, float]) -> tuple[RouteTarget, ...]:
    """The route's targets with `weights` applied (see `shift_route`)."""
    given = {label: parse_target(label, weighted=False) for label in weights}
    others = [t for t in current.targets if t.label not in given]
    rest = 100.0 - sum(weights.values())
    scale = sum(t.weight for t in others)
    if rest > TOLERANCE and scale <= 0:
        raise InvalidRouteError(
            f"route {current.name!r}: the shift leaves {rest:g}% and no other target has "
            "weight to take it; give weights that sum to 100 (or use `lockgate routes set`)"
        )
    result: dict[str, RouteTarget] = {}
    for target in current.targets:
        if target.label in given:
            result[target.label] = RouteTarget(target.model, target.version, weights[target.label])
        elif scale > 0 and target.weight > 0 and rest > 0:
            share = round(rest * target.weight / scale, 9)
            result[target.label] = RouteTarget(target.model, target.version, share)
    for label, target in given.items():
        if label not in result:
            result[label] = RouteTarget(target.model, target.version, weights[label])
    targets = list(result.values())
    # Proportional shares are rounded: the largest absorbs the rounding so the sum is 100.
    drift = 100.0 - sum(t.weight for t in targets)
    if 0 < abs(drift) <= TOLERANCE * 100 and rest > 0 and others:
        biggest = max((t for t in targets if t.label not in given), key=lambda t: t.weight)
        index = targets.index(biggest)
        targets[index] = RouteTarget(biggest.model, biggest.version, biggest.weight + drift)
    return tuple(targets)


def _check_registered(workspace: Workspace, route: str, target: RouteTarget) -> None:
    check_name("model", target.model)
    if workspace.metadata.resolve_version("model", target.model, target.version) is not None:
        return
    latest = workspace.metadata.resolve_version("model", target.model, None)
    known = (
        f"its latest version is {latest.version}"
        if latest is not None
        else "no model of that name is registered"
    )
    raise InvalidRouteError(
        f"route {route!r}: {target.label} is not a registered model version ({known}); "
        f"register it with lg.register(...) in a pipeline, or see `lockgate models list "
        f"{target.model}`"
    )


def _check_action(action: str) -> None:
    if action not in ROUTE_ACTIONS:
        raise InvalidRouteError(f"route change action {action!r} is not one of {ROUTE_ACTIONS}")


# --- views ------------------------------------------------------------------------------


def route_view(route: RouteRecord) -> dict[str, Any]:
    """A route's state as JSON data."""
    return {
        "name": route.name,
        "version": route.version,
        "targets": [{"target": t.label, "weight": t.weight} for t in route.targets],
        "mirror": None if route.mirror is None else route.mirror.label,
        "updated_at": iso(route.updated_at),
        "updated_by": route.updated_by,
    }


def change_view(change: RouteChange) -> dict[str, Any]:
    """A route change as JSON data, with the state it replaced and the state it made."""
    return {
        "version": change.version,
        "action": change.action,
        "by": change.by,
        "reason": change.reason,
        "run_id": change.run_id,
        "at": iso(change.at),
        "previous": None if change.previous is None else state_view(change.previous),
        "state": state_view(change.state),
    }


def state_view(state: Mapping[str, Any]) -> dict[str, Any]:
    """A stored route state with targets as labels: {"version", "targets", "mirror"}."""
    mirror = state.get("mirror")
    return {
        "version": state.get("version"),
        "targets": [
            {"target": RouteTarget.from_dict(t).label, "weight": float(t.get("weight", 0.0))}
            for t in state.get("targets") or ()
        ],
        "mirror": None if mirror is None else RouteTarget.from_dict(mirror).label,
    }
