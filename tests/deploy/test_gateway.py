"""The gateway end to end: a real uvicorn on 127.0.0.1, real SQLite, a bounded load generator.

Tolerances: with n requests of distinct keys and a target weight p, the
target's share has standard deviation sqrt(p(1-p)/n); the split tests accept
4 of them (a false alarm about once in 16,000 key sets; the keys here are
fixed, so each run sees the same split).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from gateway_models import SENTINEL, publish
from prometheus_client.parser import text_string_to_metric_families

from lockgate.server.gateway.app import MODEL_HEADER, ROUTE_VERSION_HEADER
from lockgate.service import tokens


def tolerance(n: int, p: float) -> float:
    return 4 * math.sqrt(p * (1 - p) / n)


def load(live, route: str, n: int, *, prefix: str = "req", workers: int = 8) -> list:
    """`n` predictions with request ids prefix-0..n-1 from a thread pool; all responses."""

    def one(i: int):
        return live.predict(route, {"request_id": f"{prefix}-{i}", "inputs": [i]})

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


@pytest.fixture
def canary(gateway_for):
    live = gateway_for()
    current = publish(live.workspace, "current")
    candidate = publish(live.workspace, "candidate")
    live.set_route("support-bot", [("support-bot", current, 95.0), ("support-bot", candidate, 5.0)])
    return live, current, candidate


def test_five_percent_split_is_sticky_and_labelled(canary):
    live, _, candidate = canary
    n = 2000
    responses = load(live, "support-bot", n)
    assert all(r.status_code == 200 for r in responses)
    served = Counter(r.headers[MODEL_HEADER] for r in responses)
    share = served[f"model:support-bot@{candidate}"] / n
    # sqrt(.05 * .95 / 2000) = 0.49 points: 4 of them is +-1.95 points around 5%.
    assert abs(share - 0.05) <= tolerance(n, 0.05), served
    for r in responses:
        body = r.json()
        label = r.headers[MODEL_HEADER]
        assert body["model"] == label and r.headers[ROUTE_VERSION_HEADER] == "1"
        assert body["output"] == ["candidate" if label.endswith(f"@{candidate}") else "current"]
    again = load(live, "support-bot", 300)
    assert [r.headers[MODEL_HEADER] for r in again] == [
        r.headers[MODEL_HEADER] for r in responses[:300]
    ]
    keyed = {live.predict("support-bot", {"key": "user-7", "inputs": [1]}) for _ in range(5)}
    assert len({r.headers[MODEL_HEADER] for r in keyed}) == 1
    samples = live.flushed("support-bot", n + 300 + 5)
    assert len(samples) == n + 300 + 5
    assert {s.cohort for s in samples} == {"serve"} and all(s.error is None for s in samples)
    by_target = Counter(s.target for s in samples[:n])
    assert by_target == served


def test_mirror_output_is_recorded_never_returned(gateway_for):
    live = gateway_for()
    current = publish(live.workspace, "current")
    sentinel = publish(live.workspace, "sentinel")
    live.set_route(
        "support-bot", [("support-bot", current, 100.0)], mirror=("support-bot", sentinel)
    )
    n = 500
    responses = load(live, "support-bot", n)
    assert all(r.status_code == 200 for r in responses)
    assert not any(SENTINEL in r.text for r in responses)
    assert {r.headers[MODEL_HEADER] for r in responses} == {f"model:support-bot@{current}"}
    samples = live.flushed("support-bot", 2 * n)
    mirrored = [s for s in samples if s.cohort == "mirror"]
    assert len(mirrored) == n and {s.target for s in mirrored} == {f"model:support-bot@{sentinel}"}
    assert {s.request_id for s in mirrored} == {f"req-{i}" for i in range(n)}


def test_a_route_change_under_load_drops_no_request(canary):
    live, _, candidate = canary
    n = 1500
    answered = threading.Semaphore(0)

    def one(i: int):
        response = live.predict("support-bot", {"request_id": f"switch-{i}", "inputs": [i]})
        answered.release()
        return response

    def shift():
        for _ in range(300):  # change the route once 300 requests are answered: mid-load
            answered.acquire()
        live.set_route("support-bot", [("support-bot", candidate, 100.0)])

    changer = threading.Thread(target=shift)
    changer.start()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(one, range(n)))
    changer.join()
    assert [r.status_code for r in responses].count(200) == n
    versions = [r.headers[ROUTE_VERSION_HEADER] for r in responses]
    assert set(versions) == {"1", "2"}, "the load ended before the route change was seen"
    last = [r for r in responses if r.headers[ROUTE_VERSION_HEADER] == "2"]
    assert {r.headers[MODEL_HEADER] for r in last} == {f"model:support-bot@{candidate}"}
    after = live.predict("support-bot", {"inputs": [1]})
    assert after.headers[ROUTE_VERSION_HEADER] == "2"


class Receiver:
    """A local webhook receiver collecting alert bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                import json

                length = int(self.headers["content-length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not self.bodies and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.bodies


def test_a_target_that_cannot_load_keeps_the_previous_one_serving_and_alerts(gateway_for):
    receiver = Receiver()
    try:
        live = gateway_for(
            f"""
[[alerts]]
name = "oncall"
on = ["gateway_load_failed"]
notifier = "webhook"
url = "{receiver.url}"
"""
        )
        current = publish(live.workspace, "current")
        broken = publish(live.workspace, "unloadable")
        live.set_route("support-bot", [("support-bot", current, 100.0)])
        assert live.predict("support-bot", {"inputs": [1]}).status_code == 200
        live.set_route("support-bot", [("support-bot", broken, 100.0)])
        (alert,) = receiver.wait()
        assert alert["event"] == "gateway_load_failed"
        assert alert["details"]["target"] == f"model:support-bot@{broken}"
        assert "needs a library the gateway lacks" in alert["details"]["error"]
        responses = load(live, "support-bot", 200, prefix="after")
        assert {r.status_code for r in responses} == {200}
        assert {r.headers[MODEL_HEADER] for r in responses} == {f"model:support-bot@{current}"}
        assert {r.headers[ROUTE_VERSION_HEADER] for r in responses} == {"1"}
        status = live.client.get("/v1/routes").json()["support-bot"]
        assert status["version"] == 1 and status["failed"]["version"] == 2
        metrics = families(live)
        failures = metrics["lockgate_gateway_model_load_failures"].samples
        assert any(s.value == 1 and s.labels["target"].endswith(f"@{broken}") for s in failures)
    finally:
        receiver.server.shutdown()


def test_a_route_that_never_loaded_answers_503(gateway_for):
    live = gateway_for()
    broken = publish(live.workspace, "unloadable")
    live.set_route("broken-route", [("support-bot", broken, 100.0)])
    response = live.predict("broken-route", {"inputs": [1]})
    assert response.status_code == 503 and response.json()["error"] == "model_unavailable"


def test_bad_requests_get_4xx_in_the_api_shape(canary):
    live, _, _ = canary
    unknown = live.predict("no-such-route", {"inputs": [1]})
    assert unknown.status_code == 404 and unknown.json()["error"] == "route_not_found"
    not_json = live.client.post(
        "/v1/routes/support-bot/predict",
        content=b"inputs=1",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code == 415 and not_json.json()["error"] == "unsupported_media_type"
    pickle_ish = live.client.post(
        "/v1/routes/support-bot/predict",
        content=b"\x80\x04K\x01.",
        headers={"content-type": "application/python-pickle"},
    )
    assert pickle_ish.status_code == 415
    broken_json = live.client.post(
        "/v1/routes/support-bot/predict",
        content=b'{"inputs": ',
        headers={"content-type": "application/json"},
    )
    assert broken_json.status_code == 422 and broken_json.json()["error"] == "invalid_request"
    missing = live.predict("support-bot", {"input": [1]})
    assert missing.status_code == 422
    wheres = {f["where"] for f in missing.json()["detail"]}
    assert "body.inputs" in wheres and "body.input" in wheres
    huge = live.predict("support-bot", {"inputs": "x" * (1024 * 1024 + 1)})
    assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"
    bad_method = live.predict("support-bot", {"inputs": [1], "method": "fit"})
    assert bad_method.status_code == 422
    bad_host = live.client.post(
        "/v1/routes/support-bot/predict", json={"inputs": [1]}, headers={"host": "evil.example"}
    )
    assert bad_host.status_code == 400 and bad_host.json()["error"] == "bad_host"


def test_inputs_a_model_refuses_are_422_and_recorded(gateway_for):
    live = gateway_for()
    picky = publish(live.workspace, "picky")
    live.set_route("picky", [("picky", picky, 100.0)])
    ok = live.predict("picky", {"request_id": "ok", "inputs": [1, 2.5]})
    assert ok.status_code == 200 and ok.json()["output"] == 3.5
    refused = live.predict("picky", {"request_id": "bad", "inputs": "three"})
    assert refused.status_code == 422 and refused.json()["error"] == "invalid_inputs"
    assert "expected a list of numbers" in refused.json()["detail"]
    assert refused.headers[MODEL_HEADER] == f"model:picky@{picky}"
    samples = {s.request_id: s for s in live.flushed("picky", 2)}
    assert samples["ok"].error is None and "expected a list" in samples["bad"].error


def test_sklearn_callables_and_prompts_are_served(gateway_for):
    live = gateway_for('answerer = "gateway_models:answer"\n')
    clf = publish(live.workspace, "sklearn")
    doubler = publish(live.workspace, "double")
    prompt = publish(live.workspace, "prompt")
    live.set_route("clf", [("clf", clf, 100.0)])
    live.set_route("doubler", [("doubler", doubler, 100.0)])
    live.set_route("answers", [("answerer", prompt, 100.0)])
    assert live.predict("clf", {"inputs": [[0.0], [3.0]]}).json()["output"] == [0, 1]
    proba = live.predict("clf", {"inputs": [[3.0]], "method": "predict_proba"}).json()["output"]
    assert len(proba[0]) == 2 and proba[0][1] > 0.5
    assert live.predict("doubler", {"inputs": [1, 2]}).json()["output"] == [2, 4]
    answered = live.predict(
        "answers", {"inputs": {"topic": "refunds"}, "context": "Refunds take 30 days."}
    )
    assert answered.json()["output"] == "Answer about refunds: Refunds take 30 days."


def test_online_evaluators_score_each_cohort_and_feedback_is_merged(gateway_for, monkeypatch):
    monkeypatch.setenv("LOCKGATE_EVALS_EMBEDDINGS", "lexical")
    live = gateway_for(
        'answerer = "gateway_models:answer"\n\n[[gateway.evaluators]]\ntype = "groundedness"\n'
    )
    prompt = publish(live.workspace, "prompt")
    live.set_route("answers", [("answerer", prompt, 100.0)])
    context = "Refunds are issued within 30 days of purchase."
    r = live.predict("answers", {"request_id": "q1", "inputs": {"topic": "x"}, "context": context})
    assert r.status_code == 200
    fed = live.client.post(
        "/v1/routes/answers/feedback", json={"request_id": "q1", "metric": "thumbs", "value": 1}
    )
    assert fed.status_code == 202
    (sample,) = live.flushed("answers", 1)
    assert 0.0 <= sample.scores["groundedness"] <= 1.0 and sample.scores["thumbs"] == 1.0
    bad = live.client.post(
        "/v1/routes/answers/feedback", json={"request_id": "q1", "metric": "x", "value": "NaN"}
    )
    assert bad.status_code == 422
    unknown = live.client.post(
        "/v1/routes/nope/feedback", json={"request_id": "q1", "metric": "x", "value": 1}
    )
    assert unknown.status_code == 404
    scores = families(live)["lockgate_gateway_score"].samples
    assert any(s.name.endswith("_count") and s.labels["metric"] == "groundedness" for s in scores)


def test_predict_needs_a_run_token_unless_open(gateway_for):
    live = gateway_for(open_=False)
    current = publish(live.workspace, "current")
    live.set_route("support-bot", [("support-bot", current, 100.0)])
    reader = tokens.create_token(live.workspace, "reader", "read")
    runner = tokens.create_token(live.workspace, "runner", "run")
    assert live.predict("support-bot", {"inputs": [1]}).status_code == 401
    forbidden = live.predict(
        "support-bot", {"inputs": [1]}, headers={"authorization": f"Bearer {reader}"}
    )
    assert forbidden.status_code == 403
    ok = live.predict("support-bot", {"inputs": [1]}, headers={"authorization": f"Bearer {runner}"})
    assert ok.status_code == 200
    assert live.client.get("/metrics").status_code == 401
    scrape = live.client.get("/metrics", headers={"authorization": f"Bearer {reader}"})
    assert scrape.status_code == 200
    assert live.client.get("/healthz").status_code == 200


def test_an_open_gateway_still_wants_a_token_for_what_a_proxy_relays(gateway_for):
    live = gateway_for()  # [gateway] open = true, bound to 127.0.0.1
    current = publish(live.workspace, "current")
    live.set_route("support-bot", [("support-bot", current, 100.0)])
    assert live.predict("support-bot", {"inputs": [1]}).status_code == 200
    relayed = {"x-forwarded-for": "203.0.113.9"}
    assert live.predict("support-bot", {"inputs": [1]}, headers=relayed).status_code == 401
    runner = tokens.create_token(live.workspace, "runner", "run")
    with_token = {**relayed, "authorization": f"Bearer {runner}"}
    assert live.predict("support-bot", {"inputs": [1]}, headers=with_token).status_code == 200


def families(live) -> dict:
    text = live.client.get("/metrics").text
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_prometheus_counts_requests_errors_and_latency_per_target(canary):
    live, current, candidate = canary
    load(live, "support-bot", 400)
    metrics = families(live)
    requests = {
        s.labels["target"]: s.value
        for s in metrics["lockgate_gateway_requests"].samples
        if s.name == "lockgate_gateway_requests_total"
    }
    assert sum(requests.values()) == 400
    assert set(requests) == {f"model:support-bot@{current}", f"model:support-bot@{candidate}"}
    latency = [
        s
        for s in metrics["lockgate_gateway_request_seconds"].samples
        if s.name.endswith("_count") and s.labels["cohort"] == "serve"
    ]
    assert sum(s.value for s in latency) == 400
    version = metrics["lockgate_gateway_route_version"].samples
    assert [(s.labels["route"], s.value) for s in version] == [("support-bot", 1.0)]
    weights = {
        s.labels["target"]: s.value for s in metrics["lockgate_gateway_target_weight"].samples
    }
    assert weights == {f"model:support-bot@{current}": 95.0, f"model:support-bot@{candidate}": 5.0}
