"""The gateway's Prometheus series, counted in process as requests are answered.

Unlike `lockgate server`'s /metrics (read from the database at each scrape),
the gateway itself answers the requests, so it counts them as they happen;
the counters restart at 0 with the process, as Prometheus expects.

- `lockgate_gateway_requests_total{route,target,cohort}`: requests answered or failed;
- `lockgate_gateway_errors_total{route,target,cohort}`: of those, the ones the target failed;
- `lockgate_gateway_request_seconds{route,target,cohort}`: histogram of the target's time;
- `lockgate_gateway_score{route,target,cohort,metric}`: online evaluator scores, a
  summary (`_sum / _count` is the mean);
- `lockgate_gateway_feedback_total{route,metric}`: feedback signals received;
- `lockgate_gateway_model_load_failures_total{route,target}`: targets that could not load;
- `lockgate_gateway_route_version{route}`: the route version being served;
- `lockgate_gateway_target_weight{route,target}`: the weight of each served target;
- `lockgate_gateway_dropped_total{what,reason}`: samples or mirror copies dropped
  (`queue_full`, `write_failed`);
- `lockgate_gateway_evaluator_errors_total{route,metric}`: responses an evaluator
  could not score.

Cohort is "serve" (answers returned) or "mirror" (copies, never returned).
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

#: Latency bucket upper bounds in seconds: in-process models answer in ms, LLM calls in s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TARGET = ("route", "target", "cohort")


class GatewayMetrics:
    """Every series of one gateway process, in a registry of its own."""

    def __init__(self) -> None:
        """Fresh series at 0."""
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lockgate_gateway_requests", "Requests answered or failed.", _TARGET, registry=r
        )
        self.errors = Counter(
            "lockgate_gateway_errors", "Requests the target failed.", _TARGET, registry=r
        )
        self.latency = Histogram(
            "lockgate_gateway_request_seconds",
            "Time the target took to answer, in seconds.",
            _TARGET,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Summary(
            "lockgate_gateway_score",
            "Online evaluator scores of responses (sum/count is the mean).",
            (*_TARGET, "metric"),
            registry=r,
        )
        self.feedback = Counter(
            "lockgate_gateway_feedback",
            "Feedback signals received.",
            ("route", "metric"),
            registry=r,
        )
        self.load_failures = Counter(
            "lockgate_gateway_model_load_failures",
            "Route targets the gateway could not load (it kept serving the previous ones).",
            ("route", "target"),
            registry=r,
        )
        self.route_version = Gauge(
            "lockgate_gateway_route_version",
            "The route version being served.",
            ("route",),
            registry=r,
        )
        self.weight = Gauge(
            "lockgate_gateway_target_weight",
            "Percent of a route's requests each served target gets.",
            ("route", "target"),
            registry=r,
        )
        self.dropped = Counter(
            "lockgate_gateway_dropped",
            "Samples or mirror copies dropped instead of delaying requests.",
            ("what", "reason"),
            registry=r,
        )
        self.evaluator_errors = Counter(
            "lockgate_gateway_evaluator_errors",
            "Responses an online evaluator could not score.",
            ("route", "metric"),
            registry=r,
        )
        self._served: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def observe(
        self, route: str, target: str, cohort: str, latency_s: float, error: str | None
    ) -> None:
        """Count one request of `target`."""
        self.requests.labels(route, target, cohort).inc()
        self.latency.labels(route, target, cohort).observe(latency_s)
        if error is not None:
            self.errors.labels(route, target, cohort).inc()

    def serving(self, route: str, version: int, weights: dict[str, float]) -> None:
        """Note the version and weights now served for `route` (old targets' gauges go)."""
        with self._lock:
            self.route_version.labels(route).set(version)
            for gone in self._served.get(route, set()) - set(weights):
                self.weight.remove(route, gone)
            for label, weight in weights.items():
                self.weight.labels(route, label).set(weight)
            self._served[route] = set(weights)

    def render(self) -> bytes:
        """The Prometheus text format."""
        return generate_latest(self.registry)
