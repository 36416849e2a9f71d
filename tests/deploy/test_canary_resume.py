"""A canary survives its driver: kill -9 mid-canary, recover, and the same canary goes on.

`lockgate run` drives the canary in its own process; once the route has
shifted and some samples are in, the process is killed. `lockgate recover`
then takes the orphaned run over: the canary finds its `canary_start` route
change, keeps its start time and route version, counts the samples recorded
before the crash, and decides without shifting the route again. A cancelled
canary puts the route back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lockgate.model.states import RunState, TaskState
from lockgate.ports.routes import GatewaySample, RouteTarget
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))
ROUTE = "support-bot"
V1, V2 = "model:support-bot@1", "model:support-bot@2"

PIPELINES = """
import lockgate as lg


@lg.task
def train(weight: float) -> dict:
    return {"weights": [weight]}


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": 0.95}


def registered(weight):
    model = train(weight)
    return lg.register(
        model, name="support-bot", scores=lg.gate(score(model), {"accuracy": ">= 0.9"})
    )


@lg.pipeline
def ship(weight: float = 1.0):
    return lg.promote(registered(weight), name="support-bot", alias="production")


@lg.pipeline
def try_serve(weight: float = 2.0):
    return lg.canary(
        route="support-bot",
        candidate=registered(weight),
        metric="groundedness",
        percent=20,
        min_samples=30,
        max_wait="60s",
        check_every="0.05s",
    )
"""


@pytest.fixture
def project(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "canaries.py").write_text(PIPELINES)
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(tmp_path / "home"),
        "LOCKGATE_HEARTBEAT_INTERVAL": "0.2",
        "LOCKGATE_HEARTBEAT_TIMEOUT": "1",
    }
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_FAILPOINTS"):
        env.pop(name, None)
    settings = {k: v for k, v in env.items() if k.startswith("LOCKGATE_")}
    ws = Workspace(Settings.from_env(settings, home=tmp_path / "home"))
    project = {"dir": tmp_path, "env": env, "ws": ws}
    done = lockgate(project, "run", "canaries.py:ship", "--executor", "inline")
    assert done.returncode == 0, done.stderr
    ws.metadata.change_route(
        ROUTE,
        targets=[RouteTarget("support-bot", 1, 100.0)],
        mirror=None,
        action="set",
        by="cli:test",
        at=time.time(),
    )
    yield project
    ws.close()


def lockgate(project: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOCKGATE, *args],
        cwd=project["dir"],
        env=project["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_canary(project: dict[str, Any]) -> tuple[subprocess.Popen[str], int]:
    """`lockgate run canaries.py:try_serve` in the background, once its route has shifted."""
    proc = subprocess.Popen(
        [LOCKGATE, "run", "canaries.py:try_serve", "--executor", "inline"],
        cwd=project["dir"],
        env=project["env"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        change = project["ws"].metadata.route_changes(ROUTE, limit=1)[0]
        if change.action == "canary_start":
            return proc, change.version
        assert proc.poll() is None, "lockgate run ended before the canary started"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the canary never started")


def feed(ws: Workspace, version: int, n: int, tag: str) -> None:
    """n samples per cohort: the candidate at 0.9 +- 0.05, the incumbent at 0.8 +- 0.05."""
    now = time.time()
    rows = []
    for i in range(n):
        wobble = 0.05 * (2 * i / max(1, n - 1) - 1)
        for target, mean in ((V2, 0.9), (V1, 0.8)):
            rows.append(
                GatewaySample(
                    ROUTE,
                    f"{tag}-{target}-{i}",
                    target,
                    "serve",
                    version,
                    0.01,
                    None,
                    {"groundedness": mean + wobble},
                    now,
                )
            )
    ws.metadata.record_samples(rows)


def test_a_recovered_run_continues_the_same_canary(project: dict[str, Any]) -> None:
    ws: Workspace = project["ws"]
    proc, version = start_canary(project)
    feed(ws, version, 15, "before")  # half of min_samples: the canary keeps watching
    time.sleep(0.3)
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    feed(ws, version, 15, "after")
    time.sleep(1.5)  # the heartbeat goes stale (timeout 1 s)

    recovered = lockgate(project, "recover", "--executor", "inline")
    assert recovered.returncode == 0, recovered.stderr

    (run,) = [r for r in ws.metadata.list_runs(limit=10) if r.pipeline == "try_serve"]
    assert run.status is RunState.SUCCEEDED, run.error
    changes = list(reversed(ws.metadata.route_changes(ROUTE)))
    assert [c.action for c in changes] == ["set", "canary_start", "canary_promote"]
    start = changes[1]
    decided = next(
        e.payload for e in ws.metadata.events(run.id) if e.kind.value == "canary_decided"
    )
    # Both halves count: the same canary (same start, same route version) went on.
    assert decided["candidate"]["n"] == 30 and decided["incumbent"]["n"] == 30
    assert decided["started_at"] == start.at and decided["decision"] == "promote"
    canary = next(t for t in ws.metadata.task_runs(run.id) if t.node_id == "canary")
    attempts = [a for a in ws.metadata.attempts(run.id) if a.task_run_id == canary.id]
    assert [a.state.value for a in attempts] == ["failed", "succeeded"]
    assert ws.metadata.alias_version("model", "support-bot", "production").version == 2


def test_cancelling_a_run_mid_canary_puts_the_route_back(project: dict[str, Any]) -> None:
    ws: Workspace = project["ws"]
    proc, _ = start_canary(project)
    (run,) = [r for r in ws.metadata.list_runs(limit=10) if r.pipeline == "try_serve"]
    cancelled = lockgate(project, "cancel", run.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert proc.wait(30) != 0
    (run,) = [r for r in ws.metadata.list_runs(limit=10) if r.pipeline == "try_serve"]
    assert run.status is RunState.CANCELLED
    last = ws.metadata.route_changes(ROUTE, limit=1)[0]
    assert last.action == "canary_rollback" and "aborted: cancelled" in (last.reason or "")
    route = ws.metadata.get_route(ROUTE)
    assert [(t.label, t.weight) for t in route.targets] == [(V1, 100.0)]
    canary = next(t for t in ws.metadata.task_runs(run.id) if t.node_id == "canary")
    assert canary.state is TaskState.CANCELLED
