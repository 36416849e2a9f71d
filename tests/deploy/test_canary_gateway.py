"""lg.canary behind a real gateway on 127.0.0.1, with a load generator and a real pager.

Version 1 of `support-bot` (grounded on 80% of requests) serves the route; a
pipeline registers a candidate and runs `lg.canary` while a load generator
thread posts predictions (and, for the feedback metric, a user's rating of
each answer) to the gateway. The gateway scores each answer with its online
`groundedness` evaluator and writes the samples; the canary reads them.
Bounded: at most `MAX_REQUESTS` loopback requests per test.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from canary_models import (
    CONTEXT,
    REFUNDS,
    SHIPPING,
    canary_groundedness,
    canary_helpful,
    canary_mirror,
    ship,
)

import lockgate as lg
from lockgate.model.states import RunState
from lockgate.ports.routes import RouteTarget
from lockgate.service import record
from lockgate.service.alerts import alert_pass

ROUTE = "support-bot"
V1, V2 = "model:support-bot@1", "model:support-bot@2"
MAX_REQUESTS = 4000
PACE = 0.03  # seconds between requests: about 30 a second
EVALUATOR = '[[gateway.evaluators]]\ntype = "groundedness"\nroutes = ["support-bot"]\n'


@dataclass
class Load:
    """Posts requests to the gateway until stopped (or MAX_REQUESTS), keeping every answer."""

    client: httpx.Client
    feedback: bool = False
    answers: list[tuple[int, str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for n in range(MAX_REQUESTS):
                # Paced like live traffic: unpaced, a busy CI machine's online scorer
                # fell minutes behind and the canary saw no sample of the shifted route.
                if self.stop.wait(PACE):
                    return
                body = {"request_id": f"q-{n}", "inputs": {"n": n}, "context": CONTEXT}
                response = self.client.post(f"/v1/routes/{ROUTE}/predict", json=body)
                output = response.json().get("output")
                self.answers.append(
                    (response.status_code, response.headers.get("x-lockgate-model", ""), output)
                )
                if self.feedback and response.status_code == 200:
                    helpful = 1.0 if output in (REFUNDS, SHIPPING) else 0.0
                    rating = {"request_id": f"q-{n}", "metric": "helpful", "value": helpful}
                    self.client.post(f"/v1/routes/{ROUTE}/feedback", json=rating)
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> list[tuple[int, str, Any]]:
        self.stop.set()
        self.thread.join(60)
        if self.error is not None:
            raise self.error
        return self.answers


@pytest.fixture
def pager() -> Iterator[dict[str, Any]]:
    """A webhook receiver on 127.0.0.1 that keeps every JSON body it gets."""
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


@pytest.fixture
def live(gateway_for: Callable[..., Any], pager: dict[str, Any]) -> Any:
    """A gateway scoring groundedness, paging `pager` on rollbacks; v1 serving the route."""
    alerts = '[[alerts]]\nname = "oncall"\non = ["rollback"]\nnotifier = "webhook"\n'
    alerts += f'url = "{pager["url"]}"\n'
    gateway = gateway_for(EVALUATOR + alerts)
    assert lg.run(ship, workspace=gateway.workspace, executor="inline").ok
    gateway.workspace.metadata.change_route(
        ROUTE,
        targets=[RouteTarget("support-bot", 1, 100.0)],
        mirror=None,
        action="set",
        by="cli:test",
        at=time.time(),
    )
    return gateway


def served_now(live: Any, n: int = 20) -> set[str]:
    """The models that answer `n` fresh requests once the gateway has the route's version."""
    version = live.workspace.metadata.get_route(ROUTE).version
    deadline = time.monotonic() + 10
    while live.gateway.table.get(ROUTE).route.version != version:
        assert time.monotonic() < deadline, "the gateway never loaded the new route version"
        time.sleep(0.02)
    return {
        live.predict(ROUTE, {"inputs": {"n": i}, "context": CONTEXT}).headers["x-lockgate-model"]
        for i in range(n)
    }


def test_a_worse_candidate_is_rolled_back_within_its_window_and_pages(
    live: Any, pager: dict[str, Any]
) -> None:
    load = Load(live.client)
    result = lg.run(
        canary_groundedness, {"kind": "worse"}, workspace=live.workspace, executor="inline"
    )
    answers = load.finish()
    assert result.status is RunState.GATE_FAILED
    assert "worse than allowed" in result.record.error  # an early stop, well within 60 s
    assert all(status == 200 for status, _, _ in answers)
    assert {model for _, model, _ in answers} == {V1, V2}  # the candidate did serve, briefly
    assert served_now(live) == {V1}
    assert live.workspace.metadata.alias_version("model", "support-bot", "production").version == 1

    sent = alert_pass(live.workspace.metadata, live.workspace.project.alerts)
    assert sent.sent == 1
    (page,) = pager["bodies"]
    assert page["event"] == "rollback" and page["run_id"] == result.run_id
    assert page["details"]["route"] == ROUTE and page["details"]["target"] == V2
    assert page["details"]["candidate"]["mean"] < page["details"]["incumbent"]["mean"]

    (canary,) = record.build(live.workspace, result.run_id)["canary"]
    assert canary["decision"] == "rollback" and canary["metric"] == "groundedness"
    assert canary["candidate_cohort"]["mean"] == pytest.approx(0.2, abs=0.15)
    assert canary["incumbent_cohort"]["mean"] == pytest.approx(0.8, abs=0.1)


def test_a_better_candidate_on_user_feedback_is_promoted(live: Any) -> None:
    load = Load(live.client, feedback=True)
    result = lg.run(canary_helpful, {"kind": "better"}, workspace=live.workspace, executor="inline")
    answers = load.finish()
    assert result.ok, result.record.error
    assert all(status == 200 for status, _, _ in answers)
    route = live.workspace.metadata.get_route(ROUTE)
    assert [(t.label, t.weight) for t in route.targets] == [(V2, 100.0)] and route.mirror is None
    assert live.workspace.metadata.alias_version("model", "support-bot", "production").version == 2
    assert served_now(live) == {V2}
    decided = result.output("canary")
    assert decided["decision"] == "promote" and decided["metric"] == "helpful"
    assert decided["candidate"]["n"] >= 30 and decided["incumbent"]["n"] >= 30
    assert decided["candidate"]["mean"] == 1.0
    assert decided["incumbent"]["mean"] == pytest.approx(0.8, abs=0.1)
    assert decided["lower"] >= -0.02


def test_mirror_mode_never_returns_the_candidates_answers(live: Any) -> None:
    load = Load(live.client)
    result = lg.run(
        canary_mirror, {"kind": "shipping"}, workspace=live.workspace, executor="inline"
    )
    answers = load.finish()
    assert result.ok, result.record.error
    during = [a for a in answers if a[1] == V1]
    assert len(during) >= 30
    # Until the promotion, every answer came from v1: the mirror's never reached a client.
    first_v2 = next((i for i, a in enumerate(answers) if a[1] == V2), len(answers))
    assert all(model == V1 and output != SHIPPING for _, model, output in answers[:first_v2])
    mirrored = [
        s for s in live.workspace.metadata.route_samples(ROUTE, since=0.0) if s.cohort == "mirror"
    ]
    assert len(mirrored) >= 30 and {s.target for s in mirrored} == {V2}
    assert all(s.scores.get("groundedness") == 1.0 for s in mirrored)
    decided = result.output("canary")
    assert decided["mode"] == "mirror" and decided["candidate"]["n"] >= 30
