"""Registered model versions for route tests: support-bot 1..n from real pipeline runs."""

from __future__ import annotations

import lockgate as lg
from lockgate.ports.routes import RouteTarget
from lockgate.service.compose import Workspace


@lg.task
def train(tag: str) -> dict:
    """A "model": its tag makes each version's content distinct."""
    return {"tag": tag}


@lg.pipeline
def ship(tag: str = "v"):
    """Register one support-bot version."""
    return lg.register(train(tag), name="support-bot")


def register_versions(workspace: Workspace, count: int) -> None:
    """Register support-bot versions 1..count."""
    for i in range(1, count + 1):
        result = lg.run(ship, {"tag": f"v{i}"}, workspace=workspace, executor="inline")
        assert result.ok, result.record.error


def bot(version: int, weight: float = 0.0) -> RouteTarget:
    """support-bot@version at `weight` percent."""
    return RouteTarget("support-bot", version, weight)
