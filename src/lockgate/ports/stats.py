"""What the metadata store reads for run metrics (`lockgate stats`) and
Prometheus: state counts and the rows of a metrics window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lockgate.model.states import RunState


@dataclass(frozen=True, slots=True)
class StateCounts:
    """How many runs are in each status and task runs in each state, per pipeline.

    Attributes:
        runs: (pipeline, run status) -> count.
        task_runs: (pipeline, task state) -> count.
    """

    runs: Mapping[tuple[str, str], int]
    task_runs: Mapping[tuple[str, str], int]


@dataclass(frozen=True, slots=True)
class RunSample:
    """One run that finished in a metrics window, as `lockgate stats` reads it.

    Attributes:
        resumes: (by, previous status) of each `run_resumed` event of the run.
    """

    run_id: str
    pipeline: str
    status: RunState
    created_at: float
    started_at: float | None
    finished_at: float
    resumes: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class TaskSample:
    """One task of one pipeline, aggregated over the task runs of a window's runs.

    Attributes:
        executed: task runs that queued at least one attempt (cache hits and
            skipped nodes have none).
        retries: attempts beyond the first, summed over those task runs.
        max_retries: the most retries one task run needed.
        queue_times: `started_at - queued_at` of every attempt that started,
            in seconds, ascending (so percentiles need no further sort).
        gate_evaluations: task runs that decided gate checks (gate nodes only).
        gate_passed: of those, the ones whose every check passed.
    """

    pipeline: str
    task_name: str
    executed: int
    retries: int
    max_retries: int
    queue_times: tuple[float, ...] = ()
    gate_evaluations: int = 0
    gate_passed: int = 0


@dataclass(frozen=True, slots=True)
class ModelLineage:
    """Whether a model version's recorded ancestry is complete (see `lineage_completeness`).

    Attributes:
        has_dataset: some artifact upstream of the model is a dataset version.
        has_git_sha: some task run upstream of it ran with a recorded Git SHA.
    """

    pipeline: str
    label: str
    has_dataset: bool
    has_git_sha: bool


@dataclass(frozen=True, slots=True)
class StatsRows:
    """The raw rows behind the run metrics of one window (see `MetadataStore.stats_rows`)."""

    runs: list[RunSample]
    tasks: list[TaskSample]
    models: list[ModelLineage]
