"""A run's route changes (canary steps) appear in its reliability record."""

from __future__ import annotations

import pytest
from registered_models import bot, register_versions

from lockgate.service import routes
from lockgate.service.compose import Workspace
from lockgate.service.record import record


@pytest.fixture
def ws(workspace: Workspace) -> Workspace:
    register_versions(workspace, 4)
    return workspace


def test_a_runs_route_changes_are_in_its_reliability_record(ws: Workspace):
    (run, *_) = ws.metadata.list_runs(limit=1)
    routes.set_route(ws, "support", [bot(3, 100)], by="cli:ann")
    routes.shift_route(
        ws,
        "support",
        {"model:support-bot@4": 5},
        by=routes.run_actor(run.id),
        run_id=run.id,
        action="canary_start",
        reason="canary of support-bot@4",
    )
    routes.rollback_route(
        ws, "support", by=routes.run_actor(run.id), run_id=run.id, action="canary_rollback"
    )
    data = record(run.id, workspace=ws)
    assert [(c["route"], c["action"], c["version"], c["by"]) for c in data["routes"]] == [
        ("support", "canary_start", 2, f"run:{run.id}"),
        ("support", "canary_rollback", 3, f"run:{run.id}"),
    ]
    assert data["routes"][0]["previous"]["targets"] == [
        {"model": "support-bot", "version": 3, "weight": 100.0}
    ]
