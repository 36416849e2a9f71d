"""lg.canary end to end on SQLite: real runs, real routes, samples in the real store.

The gateway's part (recording samples) is played here by a feeder thread that
writes `GatewaySample`s through `store.record_samples` once the canary has
shifted the route, exactly as a gateway would; tests/deploy/test_canary_gateway.py
runs the same canaries behind a real gateway on loopback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import lockgate as lg
from lockgate.model.states import EventKind, RunState, TaskState
from lockgate.ports.routes import GatewaySample, RouteTarget
from lockgate.service import record
from lockgate.service.alerts import alert_pass
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.project import parse

ROUTE = "support-bot"
V1, V2 = "model:support-bot@1", "model:support-bot@2"


@lg.task
def train(weight: float) -> dict:
    return {"weights": [weight]}


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": 0.95}


def registered(weight: Any) -> Any:
    model = train(weight)
    checked = lg.gate(score(model), {"accuracy": ">= 0.9"})
    return lg.register(model, name="support-bot", scores=checked)


@lg.pipeline
def ship(weight: float = 1.0):
    return lg.promote(registered(weight), name="support-bot", alias="production")


CANARY = {
    "route": ROUTE,
    "metric": "groundedness",
    "percent": 20,
    "min_samples": 30,
    "max_wait": "30s",
    "max_regression": 0.02,
    "check_every": "0.05s",
}


@lg.pipeline
def try_serve(weight: float = 2.0):
    return lg.canary(candidate=registered(weight), **CANARY)


@lg.pipeline
def try_mirror(weight: float = 2.0):
    return lg.canary(candidate=registered(weight), mode="mirror", **CANARY)


@lg.pipeline
def try_briefly(weight: float = 2.0):
    return lg.canary(candidate=registered(weight), **{**CANARY, "max_wait": "0.5s"})


@pytest.fixture
def live(workspace: Workspace) -> Workspace:
    """Version 1 in production and serving route `support-bot` at 100%."""
    return serving_v1(workspace)


@pytest.fixture
def live_pg(pg_url: str, tmp_path: Path) -> Iterator[Workspace]:
    """The same on PostgreSQL."""
    workspace = Workspace(Settings.from_env({"LOCKGATE_DB_URL": pg_url}, home=tmp_path / "home"))
    yield serving_v1(workspace)
    workspace.close()


def serving_v1(workspace: Workspace) -> Workspace:
    assert lg.run(ship, workspace=workspace, executor="inline").ok
    workspace.metadata.change_route(
        ROUTE,
        targets=[RouteTarget("support-bot", 1, 100.0)],
        mirror=None,
        action="set",
        by="cli:test",
        at=time.time(),
    )
    return workspace


def canary_started(ws: Workspace, timeout: float = 20.0) -> int:
    """Wait for the canary's route change; return the route version it made."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        change = ws.metadata.route_changes(ROUTE, limit=1)[0]
        if change.action == "canary_start":
            return change.version
        time.sleep(0.02)
    raise AssertionError("the canary never shifted the route")


def samples(
    version: int, target: str, cohort: str, values: list[float], tag: str
) -> list[GatewaySample]:
    now = time.time()
    return [
        GatewaySample(
            ROUTE, f"{tag}-{i}", target, cohort, version, 0.01, None, {"groundedness": v}, now
        )
        for i, v in enumerate(values)
    ]


def spread(mean: float, n: int, width: float = 0.05) -> list[float]:
    return [mean - width + 2 * width * i / (n - 1) for i in range(n)]


class Feeder:
    """Plays the gateway: once the canary starts, records both cohorts' samples."""

    def __init__(self, ws: Workspace, feed: Callable[[int], list[GatewaySample]]) -> None:
        self.error: BaseException | None = None

        def run() -> None:
            try:
                ws.metadata.record_samples(feed(canary_started(ws)))
            except BaseException as exc:  # reported by join()
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> None:
        self.thread.join(30)
        if self.error is not None:
            raise self.error


def both(
    candidate: list[float], incumbent: list[float], cohort: str = "serve", target: str = V2
) -> Any:
    def feed(version: int) -> list[GatewaySample]:
        return samples(version, target, cohort, candidate, "c") + samples(
            version, V1, "serve", incumbent, "i"
        )

    return feed


def current(ws: Workspace) -> tuple[list[tuple[str, float]], str | None]:
    route = ws.metadata.get_route(ROUTE)
    return [(t.label, t.weight) for t in route.targets], route.mirror and route.mirror.label


def production(ws: Workspace) -> int:
    return ws.metadata.alias_version("model", "support-bot", "production").version


@pytest.fixture
def receiver() -> Iterator[dict[str, Any]]:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it gets."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    got: dict[str, Any] = {"bodies": []}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got["bodies"].append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got["url"] = f"http://127.0.0.1:{server.server_address[1]}/page"
    yield got
    server.shutdown()
    server.server_close()


def test_a_better_candidate_is_promoted(live: Workspace) -> None:
    feeder = Feeder(live, both(spread(0.90, 40), spread(0.80, 160)))
    result = lg.run(try_serve, workspace=live, executor="inline")
    feeder.join()
    assert result.ok, result.record.error
    assert current(live) == ([(V2, 100.0)], None)
    assert production(live) == 2
    actions = [c.action for c in reversed(live.metadata.route_changes(ROUTE))]
    assert actions == ["set", "canary_start", "canary_promote"]
    start = live.metadata.route_changes(ROUTE)[1]
    assert start.by == f"run:{result.run_id}" and start.run_id == result.run_id
    assert start.state["targets"] == [
        {"model": "support-bot", "version": 1, "weight": 80.0},
        {"model": "support-bot", "version": 2, "weight": 20.0},
    ]
    (move,) = [e for e in live.metadata.alias_events("model", "support-bot") if e.version == 2]
    assert (move.action, move.previous_version, move.actor) == (
        "promote",
        1,
        f"run:{result.run_id}",
    )
    assert move.reason.startswith("canary canary on route support-bot: groundedness")
    output = result.output("canary")
    assert output["decision"] == "promote" and output["target"] == V2
    assert output["candidate"]["n"] == 40 and output["incumbent"]["n"] == 160
    assert output["difference"] == pytest.approx(0.10)
    assert output["lower"] > -0.02

    doc = record.build(live, result.run_id)
    (canary,) = doc["canary"]
    assert canary["decision"] == "promote" and canary["candidate"] == V2
    assert canary["candidate_cohort"]["mean"] == pytest.approx(0.90)
    assert canary["rule"].startswith("one-sided Welch bounds at 95%")
    assert [r["action"] for r in doc["routes"]] == ["canary_start", "canary_promote"]
    assert doc["verification"]["ok"]
    assert "## Canary" in record.to_markdown(doc)


def test_a_worse_candidate_is_rolled_back_and_pages(
    live: Workspace, receiver: dict[str, Any], tmp_path: Path
) -> None:
    before = live.metadata.get_route(ROUTE).state()
    feeder = Feeder(live, both(spread(0.50, 10), spread(0.80, 50)))
    result = lg.run(try_serve, workspace=live, executor="inline")
    feeder.join()
    assert result.status is RunState.GATE_FAILED
    assert result.nodes["canary"].state is TaskState.FAILED
    assert "rolled route 'support-bot' back from model:support-bot@2" in result.record.error
    assert "worse than allowed" in result.record.error  # the early stop, not the timeout
    restored = live.metadata.get_route(ROUTE)
    assert current(live) == ([(V1, 100.0)], None)
    assert restored.state()["targets"] == before["targets"]
    assert production(live) == 1  # the registry is untouched
    last = live.metadata.route_changes(ROUTE, limit=1)[0]
    assert last.action == "canary_rollback" and last.run_id == result.run_id

    path = tmp_path / "lockgate.toml"
    path.write_text(
        f'[[alerts]]\nname = "oncall"\non = ["rollback"]\nnotifier = "webhook"\n'
        f'url = "{receiver["url"]}"\n'
    )
    sent = alert_pass(live.metadata, parse(path).alerts)
    assert sent.sent == 1
    (page,) = receiver["bodies"]
    assert page["event"] == "rollback" and page["run_id"] == result.run_id
    assert "route support-bot: canary canary of run" in page["summary"]
    assert page["details"]["target"] == V2 and page["details"]["upper"] < -0.02

    doc = record.build(live, result.run_id)
    (canary,) = doc["canary"]
    assert canary["decision"] == "rollback" and canary["candidate_cohort"]["n"] == 10
    assert [a["event"] for a in doc["alerts"]] == ["rollback"]


def test_no_evidence_before_max_wait_rolls_back(live: Workspace) -> None:
    result = lg.run(try_briefly, workspace=live, executor="inline")
    assert result.status is RunState.GATE_FAILED
    assert "no decision after 0.5 s: fewer than 30 values per cohort" in result.record.error
    assert current(live) == ([(V1, 100.0)], None)
    events = [e for e in live.metadata.events(result.run_id) if e.kind is EventKind.CANARY_DECIDED]
    assert events[0].payload["candidate"]["n"] == 0


def test_mirror_mode_compares_without_serving_the_candidate(live: Workspace) -> None:
    seen: list[tuple[list[tuple[str, float]], str | None]] = []

    def feed(version: int) -> list[GatewaySample]:
        seen.append(current(live))
        return both(spread(0.85, 40), spread(0.84, 40), cohort="mirror")(version)

    feeder = Feeder(live, feed)
    result = lg.run(try_mirror, workspace=live, executor="inline")
    feeder.join()
    assert result.ok, result.record.error
    assert seen == [([(V1, 100.0)], V2)]  # during the canary: V1 serves, V2 only mirrors
    assert current(live) == ([(V2, 100.0)], None)
    assert result.output("canary")["mode"] == "mirror"


def test_a_person_changing_the_route_mid_canary_wins(live: Workspace) -> None:
    def feed(version: int) -> list[GatewaySample]:
        live.metadata.change_route(
            ROUTE,
            targets=[RouteTarget("support-bot", 1, 100.0)],
            mirror=None,
            action="set",
            by="cli:alice",
            at=time.time(),
        )
        return []

    feeder = Feeder(live, feed)
    result = lg.run(try_serve, workspace=live, executor="inline")
    feeder.join()
    assert result.status is RunState.FAILED
    assert "changed by cli:alice" in result.record.error
    assert live.metadata.route_changes(ROUTE, limit=1)[0].by == "cli:alice"
    assert production(live) == 1


def test_both_outcomes_on_postgresql(live_pg: Workspace) -> None:
    feeder = Feeder(live_pg, both(spread(0.50, 10), spread(0.80, 50)))
    worse = lg.run(try_serve, workspace=live_pg, executor="inline")
    feeder.join()
    assert worse.status is RunState.GATE_FAILED
    assert current(live_pg) == ([(V1, 100.0)], None) and production(live_pg) == 1
    v3 = "model:support-bot@3"  # its feeder waits for the second canary_start
    better = Feeder(live_pg, both(spread(0.90, 40), spread(0.80, 160), target=v3))
    result = lg.run(try_serve, {"weight": 3.0}, workspace=live_pg, executor="inline")
    better.join()
    assert result.ok, result.record.error
    assert current(live_pg) == ([(v3, 100.0)], None)
    assert production(live_pg) == 3
    actions = [c.action for c in reversed(live_pg.metadata.route_changes(ROUTE))]
    assert actions == [
        "set",
        "canary_start",
        "canary_rollback",
        "canary_start",
        "canary_promote",
    ]
