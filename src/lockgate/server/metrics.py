"""`GET /metrics`: Prometheus text, read from the database at each scrape.

The server does not run tasks itself (each run is driven by its own driver
process, and several servers may share a database), so there are no
in-process counters to export: a custom collector asks the database at each
scrape. Three kinds of series:

- current counts: runs by status and task runs by state, per pipeline;
- the recent window (`WINDOW_S`, the last hour, of runs that *finished* in
  it): run duration, run queue time and task queue time as histograms,
  retries and gate outcomes per task. These are snapshots of the window, so
  they can go down: use `histogram_quantile` on them directly, not `rate()`;
- this server's health: up, uptime, runs it drives, draining, scheduler lag.

The endpoint needs a `read` token (or `[server] open_reads` on loopback),
like every read of the API; a scraper sends it as a bearer token.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from lockgate.ports.metadata import TaskSample
from lockgate.server.state import ServerState

log = logging.getLogger("lockgate.server.metrics")

#: The recent window the histograms, retries and gate results cover, in seconds.
WINDOW_S = 3600.0
#: Bucket upper bounds, in seconds: runs take minutes to hours, queues seconds to minutes.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
QUEUE_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600)


def histogram(
    family: HistogramMetricFamily,
    labels: list[str],
    values: Sequence[float],
    bounds: Iterable[float],
) -> None:
    """Add one labelled histogram of `values` (cumulative buckets, sum) to `family`."""
    ordered = sorted(values)
    buckets: list[tuple[str, float]] = []
    count = 0
    for bound in bounds:
        while count < len(ordered) and ordered[count] <= bound:
            count += 1
        buckets.append((_le(bound), count))
    buckets.append(("+Inf", len(ordered)))
    family.add_metric(labels, buckets, sum(ordered))


def _le(bound: float) -> str:
    return str(float(bound))


class LockgateCollector(Collector):
    """Reads the metrics of one server and its database at each scrape."""

    def __init__(self, state: ServerState, window: float = WINDOW_S) -> None:
        """Collect for `state`'s server over the last `window` seconds."""
        self.state = state
        self.window = window

    def collect(self) -> Iterator[Metric]:
        """Every lockgate_* family (see docs/observability.md)."""
        yield from self._server()
        try:
            families = list(self._database())
        except Exception:  # a scrape must answer even while the database is down
            log.exception("metrics: reading the database failed")
            yield GaugeMetricFamily(
                "lockgate_database_up", "Whether the last scrape could read the database.", 0
            )
            return
        yield GaugeMetricFamily(
            "lockgate_database_up", "Whether the last scrape could read the database.", 1
        )
        yield from families

    def _server(self) -> Iterator[Metric]:
        state = self.state
        now = time.time()
        yield GaugeMetricFamily("lockgate_up", "1 while this lockgate server answers.", 1)
        yield GaugeMetricFamily(
            "lockgate_server_uptime_seconds",
            "Seconds since this server started.",
            now - state.started_at,
        )
        yield GaugeMetricFamily(
            "lockgate_server_draining",
            "1 while this server drains (stops launching runs before it exits).",
            1 if state.stopping.is_set() else 0,
        )
        yield GaugeMetricFamily(
            "lockgate_server_driving_runs",
            "Runs this server's driver processes are driving now.",
            len(state.launcher.children),
        )
        yield CounterMetricFamily(
            "lockgate_server_launched_runs",
            "Runs this server launched (claimed or took over) since it started.",
            state.launcher.launched,
        )
        yield CounterMetricFamily(
            "lockgate_scheduler_passes", "Scheduler loop passes since start.", state.passes
        )
        yield GaugeMetricFamily(
            "lockgate_scheduler_poll_interval_seconds",
            "How often the scheduler loop is meant to pass.",
            state.poll_interval,
        )
        age = now - (state.last_pass if state.last_pass is not None else state.started_at)
        yield GaugeMetricFamily(
            "lockgate_scheduler_last_pass_age_seconds",
            "Seconds since the scheduler loop last finished a pass.",
            age,
        )
        yield GaugeMetricFamily(
            "lockgate_scheduler_lag_seconds",
            "How far the scheduler loop is behind its poll interval (0 when on time).",
            max(0.0, age - state.poll_interval),
        )

    def _database(self) -> Iterator[Metric]:
        store = self.state.workspace.metadata
        counts = store.state_counts()
        runs = GaugeMetricFamily(
            "lockgate_runs", "Runs in each status, per pipeline.", labels=["pipeline", "status"]
        )
        for (pipeline, status), n in sorted(counts.runs.items()):
            runs.add_metric([pipeline, status], n)
        yield runs
        task_runs = GaugeMetricFamily(
            "lockgate_task_runs",
            "Task runs (nodes and map items) in each state, per pipeline.",
            labels=["pipeline", "state"],
        )
        for (pipeline, task_state), n in sorted(counts.task_runs.items()):
            task_runs.add_metric([pipeline, task_state], n)
        yield task_runs
        yield from self._window()

    def _window(self) -> Iterator[Metric]:
        now = time.time()
        rows = self.state.workspace.metadata.stats_rows(since=now - self.window, until=now)
        yield GaugeMetricFamily(
            "lockgate_metrics_window_seconds",
            "The recent window the windowed lockgate_* series cover.",
            self.window,
        )
        durations: dict[tuple[str, str], list[float]] = defaultdict(list)
        run_queue: dict[str, list[float]] = defaultdict(list)
        for run in rows.runs:
            durations[(run.pipeline, run.status.value)].append(run.finished_at - run.created_at)
            if run.started_at is not None:
                run_queue[run.pipeline].append(max(0.0, run.started_at - run.created_at))
        family = HistogramMetricFamily(
            "lockgate_run_duration_seconds",
            "Trigger to end of the runs that finished in the window, by final status.",
            labels=["pipeline", "status"],
        )
        for (pipeline, status), values in sorted(durations.items()):
            histogram(family, [pipeline, status], values, DURATION_BUCKETS)
        yield family
        family = HistogramMetricFamily(
            "lockgate_run_queue_seconds",
            "Trigger to start (queue time) of the runs that finished in the window.",
            labels=["pipeline"],
        )
        for pipeline, values in sorted(run_queue.items()):
            histogram(family, [pipeline], values, QUEUE_BUCKETS)
        yield family
        yield from self._tasks(rows.tasks)

    def _tasks(self, samples: Sequence[TaskSample]) -> Iterator[Metric]:
        queue: dict[str, list[float]] = defaultdict(list)
        for task in samples:
            queue[task.pipeline].extend(task.queue_times)
        family = HistogramMetricFamily(
            "lockgate_task_queue_seconds",
            "Queued to started of the task attempts of runs that finished in the window.",
            labels=["pipeline"],
        )
        for pipeline, values in sorted(queue.items()):
            histogram(family, [pipeline], values, QUEUE_BUCKETS)
        yield family
        executed = GaugeMetricFamily(
            "lockgate_task_runs_executed",
            "Task runs that ran at least one attempt, in runs that finished in the window.",
            labels=["pipeline", "task"],
        )
        retries = GaugeMetricFamily(
            "lockgate_task_retries",
            "Attempts beyond the first, in runs that finished in the window.",
            labels=["pipeline", "task"],
        )
        gates = GaugeMetricFamily(
            "lockgate_gate_evaluations",
            "Gate decisions by result, in runs that finished in the window.",
            labels=["pipeline", "task", "result"],
        )
        for task in sorted(samples, key=lambda t: (t.pipeline, t.task_name)):
            labels = [task.pipeline, task.task_name]
            executed.add_metric(labels, task.executed)
            retries.add_metric(labels, task.retries)
            if task.gate_evaluations:
                gates.add_metric([*labels, "passed"], task.gate_passed)
                gates.add_metric([*labels, "failed"], task.gate_evaluations - task.gate_passed)
        yield executed
        yield retries
        yield gates


def registry_for(state: ServerState) -> CollectorRegistry:
    """A registry holding only lockgate's collector for `state` (no process metrics)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LockgateCollector(state))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in the Prometheus text format."""
    return generate_latest(registry)
