"""Routes as users change them: set, shift, rollback, validation, the audit log, the record.

Model versions are registered by real pipeline runs on a real SQLite workspace.
"""

from __future__ import annotations

import pytest
from registered_models import bot, register_versions

from lockgate.errors import (
    DefinitionError,
    InvalidRouteError,
    RouteConflictError,
    RouteNotFoundError,
    RouteStateError,
)
from lockgate.ports.routes import RouteTarget
from lockgate.service import routes
from lockgate.service.compose import Workspace


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    register_versions(workspace, 5)
    return workspace


def test_set_then_shift_then_rollback_keeps_a_full_audit_log(ws: Workspace):
    first = routes.set_route(ws, "support", [bot(3, 100)], by="cli:ann", reason="launch")
    assert (first.version, first.weights) == (1, {"model:support-bot@3": 100.0})
    shifted = routes.shift_route(
        ws, "support", {"model:support-bot@4": 5}, by="api:deploy", reason="try @4"
    )
    assert shifted.weights == {"model:support-bot@3": 95.0, "model:support-bot@4": 5.0}
    back = routes.rollback_route(ws, "support", by="cli:bob", reason="errors up")
    assert (back.version, back.weights) == (3, {"model:support-bot@3": 100.0})
    history = routes.route_history(ws, "support")
    assert [(c.action, c.by, c.reason) for c in history] == [
        ("rollback", "cli:bob", "errors up"),
        ("shift", "api:deploy", "try @4"),
        ("set", "cli:ann", "launch"),
    ]
    view = routes.change_view(history[0])
    assert view["previous"]["targets"] == [
        {"target": "model:support-bot@3", "weight": 95.0},
        {"target": "model:support-bot@4", "weight": 5.0},
    ]
    assert view["state"] == {
        "version": 3,
        "targets": [{"target": "model:support-bot@3", "weight": 100.0}],
        "mirror": None,
    }


def test_shift_shares_the_rest_in_proportion_and_drops_targets_left_at_zero(ws: Workspace):
    routes.set_route(ws, "support", [bot(1, 50), bot(2, 30), bot(3, 20)], by="x")
    got = routes.shift_route(ws, "support", {"model:support-bot@3": 60}, by="x")
    assert got.weights == {
        "model:support-bot@1": 25.0,
        "model:support-bot@2": 15.0,
        "model:support-bot@3": 60.0,
    }
    # Promoting: the candidate takes everything, the others are dropped...
    done = routes.shift_route(ws, "support", {"support-bot@3": 100}, by="x")
    assert done.weights == {"model:support-bot@3": 100.0}
    # ...unless named at 0 explicitly (kept listed, serving nothing).
    kept = routes.shift_route(
        ws, "support", {"model:support-bot@3": 100, "model:support-bot@4": 0}, by="x"
    )
    assert kept.weights == {"model:support-bot@3": 100.0, "model:support-bot@4": 0.0}
    # A third of 100 each: the floating-point remainder still sums to 100.
    routes.set_route(ws, "thirds", [bot(1, 50), bot(2, 50)], by="x")
    thirds = routes.shift_route(ws, "thirds", {"model:support-bot@3": 100 / 3}, by="x")
    assert abs(sum(thirds.weights.values()) - 100) < 1e-9


def test_the_mirror_is_kept_by_shift_and_restored_by_rollback(ws: Workspace):
    routes.set_route(ws, "support", [bot(3, 100)], mirror=bot(5), by="x")
    got = routes.shift_route(ws, "support", {"model:support-bot@4": 10}, by="x")
    assert got.mirror == bot(5)
    routes.set_route(ws, "support", [bot(3, 100)], by="x")
    assert routes.get_route(ws, "support").mirror is None
    assert routes.rollback_route(ws, "support", by="x").mirror == bot(5)


@pytest.mark.parametrize(
    ("targets", "mirror", "message"),
    [
        ([], None, "needs at least one target"),
        ([bot(3, 90)], None, "weights sum to 90, not 100"),
        ([bot(3, 120), bot(4, -20)], None, "has weight -20"),
        ([bot(3, float("nan")), bot(4, 100)], None, "has weight nan"),
        ([bot(3, 50), bot(3, 50)], None, "names model:support-bot@3 twice"),
        ([bot(9, 100)], None, "its latest version is 5"),
        ([RouteTarget("nobody", 1, 100)], None, "no model of that name is registered"),
        ([bot(3, 100)], bot(9), "model:support-bot@9 is not a registered model version"),
        ([bot(3, 100)], bot(3), "the mirror model:support-bot@3 is also served"),
    ],
)
def test_invalid_routes_are_refused_naming_the_fix(ws, targets, mirror, message):
    with pytest.raises(InvalidRouteError, match=message.replace("@", ".")):
        routes.set_route(ws, "support", targets, mirror=mirror, by="x")
    assert routes.list_routes(ws) == []


def test_bad_shifts_and_names_are_refused(ws: Workspace):
    with pytest.raises(RouteNotFoundError, match="lockgate routes set support"):
        routes.shift_route(ws, "support", {"model:support-bot@4": 5}, by="x")
    routes.set_route(ws, "support", [bot(3, 100)], by="x")
    with pytest.raises(InvalidRouteError, match="leaves 50% and no other target"):
        routes.shift_route(ws, "support", {"model:support-bot@3": 50}, by="x")
    with pytest.raises(InvalidRouteError, match="not a registered model version"):
        routes.shift_route(ws, "support", {"model:support-bot@8": 5}, by="x")
    with pytest.raises(InvalidRouteError, match="names no target"):
        routes.shift_route(ws, "support", {}, by="x")
    with pytest.raises(RouteConflictError, match="expected version 7, found 1"):
        routes.shift_route(ws, "support", {"model:support-bot@4": 5}, by="x", expected_version=7)
    with pytest.raises(DefinitionError, match="route name 'Bad Name' is invalid"):
        routes.set_route(ws, "Bad Name", [bot(3, 100)], by="x")
    with pytest.raises(RouteStateError, match="no earlier state"):
        routes.rollback_route(ws, "support", by="x")
    assert routes.get_route(ws, "support").version == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("support-bot=5", "is not model:NAME@VERSION=WEIGHT"),
        ("model:support-bot@4", "is not model:NAME@VERSION=WEIGHT"),
        ("model:support-bot@x=5", "is not model:NAME@VERSION=WEIGHT"),
        ("model:support-bot@4=five", "weight 'five', which is not a number"),
    ],
)
def test_target_text_is_parsed_or_refused_with_its_shape(text, message):
    with pytest.raises(InvalidRouteError, match=message):
        routes.parse_target(text)


def test_parsing_targets():
    assert routes.parse_target("model:support-bot@4=5.5") == bot(4, 5.5)
    assert routes.parse_target("support-bot@4", weighted=False) == bot(4)
    assert routes.parse_weights(["model:a@1=60", "b@2=40"]) == {
        "model:a@1": 60.0,
        "model:b@2": 40.0,
    }
    with pytest.raises(InvalidRouteError, match="given twice"):
        routes.parse_weights(["model:a@1=60", "a@1=40"])
