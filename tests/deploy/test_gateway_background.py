"""The gateway's sample writer: batched off the response path, drained on stop, bounded."""

from __future__ import annotations

import time

from lockgate.ports.routes import GatewaySample
from lockgate.server.gateway.background import SampleWriter, build_evaluators, score_row
from lockgate.server.gateway.metrics import GatewayMetrics
from lockgate.service.gatewayconfig import EvaluatorSetting


def sample(i: int, route: str = "r") -> GatewaySample:
    return GatewaySample(route, f"q{i}", "model:m@1", "serve", 1, 0.001, None, {}, time.time())


def dropped(metrics: GatewayMetrics, what: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "lockgate_gateway_dropped_total", {"what": what, "reason": reason}
    )
    return value or 0.0


def test_stop_writes_every_queued_sample(workspace):
    metrics = GatewayMetrics()
    writer = SampleWriter(workspace.metadata, metrics, flush_interval=60.0, flush_size=7)
    writer.start()
    for i in range(50):
        writer.add(sample(i))
    writer.stop()
    stored = workspace.metadata.route_samples("r", since=0.0)
    assert sorted(s.request_id for s in stored) == sorted(f"q{i}" for i in range(50))
    assert writer.written == 50


def test_a_full_queue_drops_and_counts_instead_of_blocking(workspace):
    metrics = GatewayMetrics()
    writer = SampleWriter(workspace.metadata, metrics, queue_size=2)
    for i in range(5):
        writer.add(sample(i))  # not started: nothing drains the queue
    assert dropped(metrics, "sample", "queue_full") == 3
    writer.start()
    writer.stop()
    assert len(workspace.metadata.route_samples("r", since=0.0)) == 2


def test_evaluators_score_only_their_routes_and_successful_answers(workspace, monkeypatch):
    monkeypatch.setenv("LOCKGATE_EVALS_EMBEDDINGS", "lexical")
    metrics = GatewayMetrics()
    evaluators = build_evaluators([EvaluatorSetting("groundedness", {}, ("r",))])
    writer = SampleWriter(workspace.metadata, metrics, evaluators)
    context = "Refunds are issued within 30 days."
    writer.add(sample(1), score_row("q", "Refunds are issued within 30 days.", context))
    writer.add(sample(2, route="other"), score_row("q", "anything", context))
    failed = GatewaySample("r", "q3", "model:m@1", "serve", 1, 0.0, "boom", {}, time.time())
    writer.add(failed, score_row("q", None, context))
    writer.start()
    writer.stop()
    scored = {s.request_id: s.scores for s in workspace.metadata.route_samples("r", since=0.0)}
    assert scored["q1"]["groundedness"] == 1.0 and scored["q3"] == {}
    assert workspace.metadata.route_samples("other", since=0.0)[0].scores == {}
