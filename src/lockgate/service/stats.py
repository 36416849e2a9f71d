"""The six run metrics over a time window (`lockgate stats`, `lg.stats`).

A window is every run that *finished* in [now - since, now): all six
metrics describe the same runs, so they can be compared with each other and
across trend buckets. Per pipeline and per task:

- DAG success rate: runs that succeeded without manual intervention over
  finished runs. A run resumed by a person (`run_resumed` with `by` other
  than `recover`, the automatic takeover of an orphaned run) is an
  intervention; a run that stopped to wait for an approval and went on when
  it was decided is not. Flagged below 95 %.
- End-to-end run time: `finished_at - created_at` (from the trigger to the
  end of the last task), p50 and p95.
- Retry rate per task: attempts beyond the first, averaged over the task's
  executed task runs (cache hits and skipped nodes execute nothing). Flagged
  above 2.
- Queue time: `started_at - created_at` of runs, `started_at - queued_at` of
  task attempts, p50 and p95.
- Artifact lineage completeness: the share of model versions registered by
  the window's runs whose ancestry reaches a dataset version and a Git SHA
  (the definition of `service.lineage.lineage_completeness`).
- Evaluator-gate pass rate: gate evaluations (a gate node's checks, decided
  together) whose every check passed.

Percentiles interpolate linearly between the nearest ranks (numpy's
default, `statistics.quantiles(method="inclusive")`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.errors import PipelineNotFoundError, UsageError
from lockgate.model.states import RunState, Trigger
from lockgate.ports.metadata import ModelLineage, RunSample, StatsRows, TaskSample
from lockgate.service.compose import Workspace

SUCCESS_RATE_TARGET = 0.95
RETRY_RATE_LIMIT = 2.0
DEFAULT_WINDOW = "7d"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_WINDOW = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_WINDOW_FORMS = "a number and a unit: 30m, 24h, 7d or 2w (units s, m, h, d, w)"


Window = str | dt.timedelta | float


def parse_window(since: Window) -> float:
    """A window's length in seconds: text like `30m`, `24h`, `7d`, `2w`, a timedelta or seconds.

    Raises:
        UsageError: not one of those forms, or not positive.
    """
    if isinstance(since, dt.timedelta):
        seconds = since.total_seconds()
    elif isinstance(since, int | float) and not isinstance(since, bool):
        seconds = float(since)
    elif isinstance(since, str):
        match = _WINDOW.fullmatch(since.strip().lower())
        if match is None:
            raise UsageError(f"--since {since!r} is not a window; give {_WINDOW_FORMS}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise UsageError(f"since={since!r} is not a window; give a timedelta or {_WINDOW_FORMS}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"the window {since!r} is empty; give {_WINDOW_FORMS}")
    return seconds


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of sorted values, interpolated; None for no values."""
    if not ordered:
        return None
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50 and p95 of `count` durations, in seconds (None without any)."""

    count: int
    p50: float | None
    p95: float | None

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles:
        """The percentiles of unsorted values."""
        return cls.of_sorted(sorted(values))

    @classmethod
    def of_sorted(cls, ordered: Sequence[float]) -> Percentiles:
        """The percentiles of values already in ascending order."""
        p50, p95 = percentile(ordered, 0.5), percentile(ordered, 0.95)
        return cls(
            len(ordered),
            None if p50 is None else round(p50, 6),
            None if p95 is None else round(p95, 6),
        )


@dataclass(frozen=True, slots=True)
class GateStats:
    """Gate evaluations and how many passed; `pass_rate` is None without any."""

    evaluations: int
    passed: int
    pass_rate: float | None


@dataclass(frozen=True, slots=True)
class IncompleteModel:
    """A model version whose ancestry lacks a dataset version or a Git SHA."""

    model: str
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LineageStats:
    """Model versions registered in the window with complete ancestry."""

    complete: int
    total: int
    ratio: float | None
    incomplete: tuple[IncompleteModel, ...]


@dataclass(frozen=True, slots=True)
class TaskStats:
    """The metrics of one task of one pipeline.

    Attributes:
        task_runs: executed task runs (at least one attempt).
        retry_rate: retries per executed task run (None without any).
        retry_flagged: the rate is above 2.
        gates: for gate nodes, their evaluations; None for other tasks.
    """

    pipeline: str
    task: str
    task_runs: int
    retries: int
    retry_rate: float | None
    max_retries: int
    retry_flagged: bool
    queue_s: Percentiles
    gates: GateStats | None


@dataclass(frozen=True, slots=True)
class PipelineStats:
    """The metrics of one pipeline (or, with `pipeline` None, of all of them).

    Attributes:
        finished_runs: runs that finished in the window, in any end state.
        succeeded: of those, the ones that succeeded.
        succeeded_clean: succeeded without manual intervention.
        success_rate: `succeeded_clean / finished_runs` (None without runs).
        success_flagged: the rate is below 95 %.
    """

    pipeline: str | None
    finished_runs: int
    succeeded: int
    succeeded_clean: int
    success_rate: float | None
    success_flagged: bool
    run_time_s: Percentiles
    run_queue_s: Percentiles
    task_queue_s: Percentiles
    gates: GateStats
    lineage: LineageStats
    tasks: tuple[TaskStats, ...]


@dataclass(frozen=True, slots=True)
class Stats:
    """The run metrics of one window: per pipeline (with its tasks) and in total."""

    since: float
    until: float
    window: str
    pipeline: str | None
    pipelines: tuple[PipelineStats, ...]
    totals: PipelineStats

    def to_dict(self) -> dict[str, Any]:
        """JSON data (what `lockgate stats --json` prints)."""
        data = dataclasses.asdict(self)
        data["since"] = _iso(self.since)
        data["until"] = _iso(self.until)
        data["window_s"] = round(self.until - self.since, 6)
        data["thresholds"] = {
            "success_rate_min": SUCCESS_RATE_TARGET,
            "retry_rate_max": RETRY_RATE_LIMIT,
        }
        return data


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds")


def intervened(run: RunSample) -> bool:
    """True if a person resumed the run (an approval decision does not count)."""
    return any(
        by != Trigger.RECOVER.value and previous != RunState.WAITING.value
        for by, previous in run.resumes
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _gates(evaluations: int, passed: int) -> GateStats:
    return GateStats(evaluations, passed, _rate(passed, evaluations))


def _lineage(models: Sequence[ModelLineage]) -> LineageStats:
    incomplete = []
    for model in models:
        missing = []
        if not model.has_dataset:
            missing.append("no dataset version upstream")
        if not model.has_git_sha:
            missing.append("no Git SHA recorded")
        if missing:
            incomplete.append(IncompleteModel(model.label, tuple(missing)))
    total = len(models)
    complete = total - len(incomplete)
    return LineageStats(complete, total, _rate(complete, total), tuple(incomplete))


def _task(sample: TaskSample) -> TaskStats:
    rate = _rate(sample.retries, sample.executed)
    return TaskStats(
        pipeline=sample.pipeline,
        task=sample.task_name,
        task_runs=sample.executed,
        retries=sample.retries,
        retry_rate=rate,
        max_retries=sample.max_retries,
        retry_flagged=rate is not None and rate > RETRY_RATE_LIMIT,
        queue_s=Percentiles.of_sorted(sample.queue_times),
        gates=_gates(sample.gate_evaluations, sample.gate_passed)
        if sample.gate_evaluations
        else None,
    )


def _pipeline(
    name: str | None,
    runs: Sequence[RunSample],
    tasks: Sequence[TaskSample],
    models: Sequence[ModelLineage],
) -> PipelineStats:
    succeeded = [r for r in runs if r.status is RunState.SUCCEEDED]
    clean = sum(1 for r in succeeded if not intervened(r))
    rate = _rate(clean, len(runs))
    return PipelineStats(
        pipeline=name,
        finished_runs=len(runs),
        succeeded=len(succeeded),
        succeeded_clean=clean,
        success_rate=rate,
        success_flagged=rate is not None and rate < SUCCESS_RATE_TARGET,
        run_time_s=Percentiles.of([max(0.0, r.finished_at - r.created_at) for r in runs]),
        run_queue_s=Percentiles.of(
            [max(0.0, r.started_at - r.created_at) for r in runs if r.started_at is not None]
        ),
        # Each task's times come sorted: sorting their concatenation merges runs.
        task_queue_s=Percentiles.of(
            list(itertools.chain.from_iterable(t.queue_times for t in tasks))
        ),
        gates=_gates(sum(t.gate_evaluations for t in tasks), sum(t.gate_passed for t in tasks)),
        lineage=_lineage(models),
        tasks=tuple(_task(t) for t in tasks) if name is not None else (),
    )


def summarize(
    rows: StatsRows, *, since: float, until: float, window: str, pipeline: str | None
) -> Stats:
    """The metrics of a window from the store's rows."""
    runs: dict[str, list[RunSample]] = defaultdict(list)
    tasks: dict[str, list[TaskSample]] = defaultdict(list)
    models: dict[str, list[ModelLineage]] = defaultdict(list)
    for run in rows.runs:
        runs[run.pipeline].append(run)
    for task in rows.tasks:
        tasks[task.pipeline].append(task)
    for model in rows.models:
        models[model.pipeline].append(model)
    names = sorted(runs.keys() | tasks.keys() | models.keys() | ({pipeline} if pipeline else set()))
    return Stats(
        since=since,
        until=until,
        window=window,
        pipeline=pipeline,
        pipelines=tuple(_pipeline(n, runs[n], tasks[n], models[n]) for n in names),
        totals=_pipeline(None, rows.runs, rows.tasks, rows.models),
    )


def _known(workspace: Workspace, pipeline: str | None) -> None:
    if pipeline is not None and not workspace.metadata.list_runs(limit=1, pipeline=pipeline):
        raise PipelineNotFoundError(
            f"no run of pipeline {pipeline!r} was ever recorded here; `lockgate runs` "
            "lists the runs there are (or drop --pipeline to see every pipeline)"
        )


def run_stats(
    workspace: Workspace,
    *,
    pipeline: str | None = None,
    since: Window = DEFAULT_WINDOW,
    now: float | None = None,
) -> Stats:
    """The six run metrics over the runs that finished in [now - since, now).

    Args:
        workspace: the installation whose runs to read.
        pipeline: only this pipeline's runs.
        since: the window's length: `30m`, `24h`, `7d`, `2w`, a timedelta or seconds.
        now: the window's end (epoch seconds; default: the current time).

    Raises:
        UsageError: `since` is not a window.
    """
    seconds = parse_window(since)
    _known(workspace, pipeline)
    until = time.time() if now is None else now
    label = since if isinstance(since, str) else f"{seconds:g}s"
    rows = workspace.metadata.stats_rows(since=until - seconds, until=until, pipeline=pipeline)
    return summarize(rows, since=until - seconds, until=until, window=label, pipeline=pipeline)


def stats_trend(
    workspace: Workspace,
    *,
    pipeline: str | None = None,
    since: Window = DEFAULT_WINDOW,
    buckets: int = 7,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The window cut into `buckets` equal spans, oldest first, with each span's metrics.

    Each item is a JSON-ready dict:
    `{"start": ISO, "end": ISO, "start_ts": float, "end_ts": float,
    "finished_runs": int, "success_rate": float | None,
    "run_time_p50_s": float | None, "run_time_p95_s": float | None,
    "queue_p95_s": float | None, "gate_pass_rate": float | None}`,
    where `queue_p95_s` is the runs' queue time and None means the span had
    nothing to measure. A run belongs to the span it finished in.

    Raises:
        UsageError: `since` is not a window or `buckets` is not 1..500.
    """
    if not 1 <= buckets <= 500:
        raise UsageError(f"buckets must be between 1 and 500, got {buckets}")
    seconds = parse_window(since)
    _known(workspace, pipeline)
    until = time.time() if now is None else now
    step = seconds / buckets
    trend = []
    for i in range(buckets):
        start, end = until - seconds + i * step, until - seconds + (i + 1) * step
        rows = workspace.metadata.stats_rows(since=start, until=end, pipeline=pipeline)
        totals = summarize(rows, since=start, until=end, window="", pipeline=pipeline).totals
        trend.append(
            {
                "start": _iso(start),
                "end": _iso(end),
                "start_ts": start,
                "end_ts": end,
                "finished_runs": totals.finished_runs,
                "success_rate": totals.success_rate,
                "run_time_p50_s": totals.run_time_s.p50,
                "run_time_p95_s": totals.run_time_s.p95,
                "queue_p95_s": totals.run_queue_s.p95,
                "gate_pass_rate": totals.gates.pass_rate,
            }
        )
    return trend


def stats(
    pipeline: str | None = None,
    *,
    since: Window = DEFAULT_WINDOW,
    workspace: Workspace | None = None,
) -> Stats:
    """The six run metrics from Python (see `lockgate stats`).

    Args:
        pipeline: only this pipeline's runs.
        since: the window, ending now: `30m`, `24h`, `7d`, `2w`, a timedelta or seconds.
        workspace: stores to read (default: from LOCKGATE_HOME / LOCKGATE_DB_URL).

    Returns:
        Per pipeline and per task: success rate, run time, retry rate, queue
        times, lineage completeness and gate pass rate; `.to_dict()` for JSON.

    Raises:
        UsageError: `since` is not a window.
    """
    own = workspace is None
    workspace = workspace or Workspace()
    try:
        return run_stats(workspace, pipeline=pipeline, since=since)
    finally:
        if own:
            workspace.close()
