"""Work kept off the response path: writing samples (scored first) and mirroring requests.

`SampleWriter` takes one `GatewaySample` per answered request into a bounded
queue and a background thread writes them in batches: every
`flush_interval` seconds or `flush_size` samples, one transaction each
(`record_samples`). Before writing, it runs the online evaluators on each
response (`[[gateway.evaluators]]`) and puts their values into the sample's
`scores`. A request never waits on SQLite or an evaluator.

What is lost, by design, when the gateway process dies: the samples still in
the queue (at most `flush_interval` seconds of traffic, or `queue_size`
samples) and mirror copies not yet answered. Responses already sent are not
affected. A clean stop (SIGTERM) writes everything queued first. When the
queue is full (the database is slower than the traffic), new samples are
dropped and counted (`lockgate_gateway_dropped_total{what="sample"}`) rather
than slowing requests; a batch whose write fails is retried once, then
dropped and counted (`reason="write_failed"`).

`Mirror` sends a copy of each request of a route with a mirror target to
that target, in its own thread: its output is scored and recorded with
cohort "mirror" and never returned. Copies beyond `queue_size` waiting are
dropped and counted (`what="mirror"`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.errors import ConfigError, EvaluationError, PredictionError
from lockgate.evals.base import Evaluator, from_spec
from lockgate.ports.metadata import MetadataStore
from lockgate.ports.routes import GatewaySample
from lockgate.server.gateway.metrics import GatewayMetrics
from lockgate.server.gateway.serving import Served
from lockgate.service.gatewayconfig import EvaluatorSetting

log = logging.getLogger("lockgate.gateway")

#: The longest the writer waits for a sample before checking whether it should stop.
_WAKE = 0.05


@dataclass(frozen=True, slots=True)
class Pending:
    """A sample waiting to be written, with the row its evaluators score (None: none)."""

    sample: GatewaySample
    row: Mapping[str, Any] | None = None


def build_evaluators(
    settings: Sequence[EvaluatorSetting],
) -> list[tuple[EvaluatorSetting, Evaluator]]:
    """The `[[gateway.evaluators]]`, built.

    Raises:
        ConfigError: an evaluator's type or params are wrong.
    """
    built = []
    for setting in settings:
        try:
            built.append((setting, from_spec(setting.spec())))
        except EvaluationError as exc:
            raise ConfigError(f"[[gateway.evaluators]] type = {setting.type!r}: {exc}") from None
    return built


def score_row(inputs: Any, output: Any, context: Any) -> dict[str, Any]:
    """The row online evaluators score for one response (see service/gatewayconfig.py)."""

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, default=str)

    return {
        "inputs": inputs,
        "question": text(inputs),
        "output": output,
        "answer": text(output),
        "context": context,
    }


class SampleWriter:
    """Scores and writes samples in batches from a background thread."""

    def __init__(
        self,
        store: MetadataStore,
        metrics: GatewayMetrics,
        evaluators: Sequence[tuple[EvaluatorSetting, Evaluator]] = (),
        *,
        flush_interval: float = 0.2,
        flush_size: int = 500,
        queue_size: int = 10_000,
    ) -> None:
        """Write into `store`; count into `metrics`."""
        self.store = store
        self.metrics = metrics
        self.evaluators = list(evaluators)
        self.flush_interval = flush_interval
        self.flush_size = flush_size
        self.queue: queue.Queue[Pending] = queue.Queue(maxsize=queue_size)
        self.written = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lockgate-samples", daemon=True)

    def add(self, sample: GatewaySample, row: Mapping[str, Any] | None = None) -> None:
        """Queue one sample (never blocks; dropped and counted when the queue is full)."""
        try:
            self.queue.put_nowait(Pending(sample, row if self.evaluators else None))
        except queue.Full:
            self.metrics.dropped.labels("sample", "queue_full").inc()

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        retry: list[GatewaySample] = []
        while True:
            stopping = self._stop.is_set()
            batch = self._take()
            if batch or retry:
                retry = self._write(retry, [self._score(p) for p in batch])
            if stopping and self.queue.empty():
                if retry:
                    self._write([], retry)
                return

    def _take(self) -> list[Pending]:
        """Up to `flush_size` samples, waiting at most `flush_interval` (less once stopping)."""
        batch: list[Pending] = []
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.flush_size:
            try:
                batch.append(self.queue.get_nowait())
                continue
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                break
            try:  # short waits, so a stop is noticed within _WAKE seconds
                batch.append(self.queue.get(timeout=min(left, _WAKE)))
            except queue.Empty:
                continue
        return batch

    def _score(self, pending: Pending) -> GatewaySample:
        sample = pending.sample
        if pending.row is None or sample.error is not None:
            return sample
        scores = dict(sample.scores)
        for setting, evaluator in self.evaluators:
            if not setting.applies_to(sample.route):
                continue
            try:
                value = evaluator.evaluate([pending.row]).value
            except Exception as exc:  # a bad row or a broken custom evaluator: count, go on
                self.metrics.evaluator_errors.labels(sample.route, evaluator.name).inc()
                log.debug("evaluator %s on %s: %s", evaluator.name, sample.request_id, exc)
                continue
            scores[evaluator.name] = value
            self.metrics.scores.labels(
                sample.route, sample.target, sample.cohort, evaluator.name
            ).observe(value)
        return dataclasses.replace(sample, scores=scores)

    def _write(self, retry: list[GatewaySample], fresh: list[GatewaySample]) -> list[GatewaySample]:
        """Write `retry`, then `fresh`; return what to retry (a twice-failed batch is dropped)."""
        if retry:
            try:
                self.store.record_samples(retry)
                self.written += len(retry)
            except Exception:
                log.exception("dropping %d gateway samples: their write failed twice", len(retry))
                self.metrics.dropped.labels("sample", "write_failed").inc(len(retry))
        if not fresh:
            return []
        try:
            self.store.record_samples(fresh)
            self.written += len(fresh)
        except Exception:
            log.exception("writing %d gateway samples failed; retrying once", len(fresh))
            return fresh
        return []


@dataclass(frozen=True, slots=True)
class _Copy:
    route: str
    route_version: int
    target: Served
    request_id: str
    inputs: Any
    context: Any
    method: str | None


class Mirror:
    """Answers copies of requests with mirror targets, off the response path."""

    def __init__(self, writer: SampleWriter, metrics: GatewayMetrics, queue_size: int) -> None:
        """Record mirror samples through `writer`."""
        self.writer = writer
        self.metrics = metrics
        self.queue: queue.Queue[_Copy | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="lockgate-mirror", daemon=True)

    def submit(
        self,
        route: str,
        route_version: int,
        target: Served,
        request_id: str,
        inputs: Any,
        context: Any,
        method: str | None,
    ) -> None:
        """Queue a copy for `target` (never blocks; dropped and counted when full)."""
        copy = _Copy(route, route_version, target, request_id, inputs, context, method)
        try:
            self.queue.put_nowait(copy)
        except queue.Full:
            self.metrics.dropped.labels("mirror", "queue_full").inc()

    def start(self) -> None:
        """Start the mirror thread."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Answer the copies already queued, then stop."""
        while self._thread.is_alive():
            try:
                self.queue.put(None, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            copy = self.queue.get()
            if copy is None:
                return
            started = time.perf_counter()
            error, output = None, None
            try:
                output = copy.target.answer(copy.inputs, copy.context, copy.method)
            except PredictionError as exc:
                error = str(exc)
            latency = time.perf_counter() - started
            self.metrics.observe(copy.route, copy.target.label, "mirror", latency, error)
            sample = GatewaySample(
                route=copy.route,
                request_id=copy.request_id,
                target=copy.target.label,
                cohort="mirror",
                route_version=copy.route_version,
                latency_s=latency,
                error=error,
                at=time.time(),
            )
            self.writer.add(sample, score_row(copy.inputs, output, copy.context))
