"""`lockgate stats`: the six run metrics over a window, as tables or JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click
from rich.table import Table

from lockgate.service import stats as stats_service
from lockgate.service.compose import Workspace
from lockgate.service.stats import GateStats, LineageStats, Percentiles, PipelineStats, Stats


def _console() -> Any:
    from lockgate.cli.main import out

    return out


def _workspace(ctx: click.Context) -> Workspace:
    from lockgate.cli.main import _workspace as open_workspace

    return open_workspace(ctx)


def seconds(value: float | None) -> str:
    """A duration for people: `0.42s`, `3m 05s`, `2h 10m`; `-` when there is none."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.2f}s"
    if value < 3600:
        return f"{int(value // 60)}m {int(value % 60):02d}s"
    return f"{int(value // 3600)}h {int(value % 3600 // 60):02d}m"


def _share(part: int, whole: int, rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%} ({part}/{whole})"


def _success(row: PipelineStats) -> str:
    text = _share(row.succeeded_clean, row.finished_runs, row.success_rate)
    if row.success_flagged:
        return f"[bold red]{text} below {stats_service.SUCCESS_RATE_TARGET:.0%}[/]"
    return text


def _gates(gates: GateStats | None) -> str:
    if gates is None or not gates.evaluations:
        return "-"
    return _share(gates.passed, gates.evaluations, gates.pass_rate)


def _lineage(lineage: LineageStats) -> str:
    if not lineage.total:
        return "-"
    text = _share(lineage.complete, lineage.total, lineage.ratio)
    return text if lineage.complete == lineage.total else f"[yellow]{text}[/]"


def _pair(value: Percentiles) -> tuple[str, str]:
    return seconds(value.p50), seconds(value.p95)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def pipelines_table(result: Stats) -> Table:
    """One row per pipeline, and a total row when there are several."""
    table = Table(
        title=f"runs that finished in the last {result.window} "
        f"({_when(result.since)} to {_when(result.until)} UTC)",
        title_justify="left",
    )
    for column in ("pipeline", "runs", "success, no intervention"):
        table.add_column(column)
    for column in ("run time p50", "p95", "run queue p50", "p95", "task queue p50", "p95"):
        table.add_column(column, justify="right")
    table.add_column("gates passed")
    table.add_column("lineage complete")
    rows = list(result.pipelines)
    if len(rows) > 1:
        rows.append(result.totals)
    for row in rows:
        table.add_row(
            row.pipeline if row.pipeline is not None else "[bold]all[/]",
            str(row.finished_runs),
            _success(row),
            *_pair(row.run_time_s),
            *_pair(row.run_queue_s),
            *_pair(row.task_queue_s),
            _gates(row.gates),
            _lineage(row.lineage),
        )
    return table


def tasks_table(result: Stats) -> Table:
    """One row per task of each pipeline: retries, queue time, gate outcomes."""
    table = Table(title="tasks", title_justify="left")
    for column in ("pipeline", "task", "task runs", "retries per run", "most retries"):
        table.add_column(column, justify="left" if column in ("pipeline", "task") else "right")
    for column in ("queue p50", "p95"):
        table.add_column(column, justify="right")
    table.add_column("gates passed")
    for pipeline in result.pipelines:
        for task in pipeline.tasks:
            rate = "-" if task.retry_rate is None else f"{task.retry_rate:.2f}"
            if task.retry_flagged:
                rate = f"[bold red]{rate} > {stats_service.RETRY_RATE_LIMIT:g} retries[/]"
            table.add_row(
                task.pipeline,
                task.task,
                str(task.task_runs),
                rate,
                str(task.max_retries),
                *_pair(task.queue_s),
                _gates(task.gates),
            )
    return table


def render(result: Stats) -> None:
    """Print the tables, then the models whose lineage is incomplete."""
    out = _console()
    if not result.totals.finished_runs:
        scope = f"pipeline {result.pipeline!r}" if result.pipeline else "any pipeline"
        out.print(f"no run of {scope} finished in the last {result.window}", markup=False)
        return
    out.print(pipelines_table(result))
    out.print(tasks_table(result))
    for pipeline in result.pipelines:
        for model in pipeline.lineage.incomplete:
            out.print(
                f"[yellow]incomplete lineage:[/] {model.model} ({pipeline.pipeline}): "
                + "; ".join(model.missing)
            )


@click.command()
@click.option("--pipeline", default=None, help="Only this pipeline's runs.")
@click.option(
    "--since",
    default=stats_service.DEFAULT_WINDOW,
    show_default=True,
    help="The window, ending now: 30m, 24h, 7d, 2w.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def stats(ctx: click.Context, pipeline: str | None, since: str, as_json: bool) -> None:
    """Run metrics over the runs that finished in a window, per pipeline and per task.

    Success rate without manual intervention (flagged below 95%), run time and
    queue time p50/p95, retries per task (flagged above 2), lineage
    completeness of the models registered, and the gate pass rate.
    """
    result = stats_service.run_stats(_workspace(ctx), pipeline=pipeline, since=since)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    else:
        render(result)


COMMANDS = [stats]
