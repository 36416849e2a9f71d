"""Records of routes and of the gateway's live samples, shared by the store port and services.

A route is a name with weighted targets (registry model versions) and an
optional mirror target. Its `version` increments on every change, and every
change is appended to `route_changes` with who made it, when, why and the
state it replaced, so `rollback` can restore that state. Weights are
percentages (they sum to 100); the service validates them, the store does
not.

The gateway records one `GatewaySample` per answered (or failed) request and
cohort; feedback arrives later for a request id and is merged into the
samples' scores when they are read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: What a route change did (`route_changes.action`).
ROUTE_ACTIONS = ("set", "shift", "rollback", "canary_start", "canary_promote", "canary_rollback")

#: The cohorts of a gateway sample: the served answer, or the mirror's copy.
COHORTS = ("serve", "mirror")


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """One model version behind a route and its share of the traffic.

    Attributes:
        model: the registry model name.
        version: the model version number.
        weight: percent of requests it serves (0..100); unused for a mirror.
    """

    model: str
    version: int
    weight: float = 0.0

    @property
    def label(self) -> str:
        """`model:NAME@VERSION`, the name of this target everywhere."""
        return f"model:{self.model}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        """The stored form: {"model", "version", "weight"}."""
        return {"model": self.model, "version": self.version, "weight": self.weight}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteTarget:
        """The target stored as `as_dict` made it."""
        return cls(str(data["model"]), int(data["version"]), float(data.get("weight", 0.0)))


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """The current state of a route.

    Attributes:
        version: 1 when created, +1 on every change (set, shift, rollback...).
        targets: the weighted targets, in the order they were given.
        mirror: the target that receives a copy of each request, or None.
        updated_by: who made the last change (`cli:<user>`, `api:<token>`, `run:<id>`).
    """

    name: str
    version: int
    targets: tuple[RouteTarget, ...]
    mirror: RouteTarget | None
    updated_at: float
    updated_by: str

    @property
    def weights(self) -> dict[str, float]:
        """Each target's weight by label."""
        return {t.label: t.weight for t in self.targets}

    def state(self) -> dict[str, Any]:
        """The JSON form stored in `route_changes.state` / `previous`."""
        return route_state(self.version, self.targets, self.mirror)


def route_state(
    version: int, targets: tuple[RouteTarget, ...], mirror: RouteTarget | None
) -> dict[str, Any]:
    """The JSON form of a route's state: {"version", "targets": [...], "mirror"}."""
    return {
        "version": version,
        "targets": [t.as_dict() for t in targets],
        "mirror": None if mirror is None else mirror.as_dict(),
    }


def targets_of(state: Mapping[str, Any]) -> tuple[tuple[RouteTarget, ...], RouteTarget | None]:
    """The targets and mirror of a state stored by `route_state`."""
    mirror = state.get("mirror")
    return (
        tuple(RouteTarget.from_dict(t) for t in state.get("targets") or ()),
        None if mirror is None else RouteTarget.from_dict(mirror),
    )


@dataclass(frozen=True, slots=True)
class RouteChange:
    """One change of a route (append-only audit log).

    Attributes:
        version: the route's version after the change.
        action: one of `ROUTE_ACTIONS`.
        by: who (`cli:<user>`, `api:<token>`, `run:<id>`).
        run_id: the run that made it (canary steps), or None.
        previous: the state it replaced (None when it created the route).
        state: the state it made.
    """

    id: int
    route: str
    version: int
    action: str
    by: str
    reason: str | None
    run_id: str | None
    previous: Mapping[str, Any] | None
    state: Mapping[str, Any]
    at: float


@dataclass(frozen=True, slots=True)
class GatewaySample:
    """One request answered (or failed) by one target of a route.

    Attributes:
        target: the target's label (`model:NAME@VERSION`).
        cohort: "serve" (the answer returned) or "mirror" (a copy, never returned).
        route_version: the route version the request was routed with.
        error: why the target failed, or None.
        scores: online evaluator scores, merged on read with feedback for the request.
    """

    route: str
    request_id: str
    target: str
    cohort: str
    route_version: int
    latency_s: float
    error: str | None = None
    scores: Mapping[str, float] = field(default_factory=dict)
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Feedback:
    """A live quality signal for one request of a route (e.g. a user's thumbs up = 1.0)."""

    route: str
    request_id: str
    metric: str
    value: float
    at: float
