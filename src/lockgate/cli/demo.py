"""`lockgate demo`: the examples' whole story on the embedded default, with live progress.

See `lockgate.demo.runner` for what runs. This module draws it: a heading
per step, the usual live run display, and at the end a summary of runs,
gate verdicts, the registry, the route decisions, where the reliability
records are, and how to open the UI on the results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lockgate.demo import runner

out = Console(soft_wrap=True)  # long lines stay whole in logs and pipes
err = Console(stderr=True)


@click.command()
@click.option(
    "--dir",
    "directory",
    default=runner.DEFAULT_DIR,
    show_default=True,
    help="Where the demo project goes (replaced if an earlier demo made it).",
)
@click.option(
    "--examples",
    default=None,
    help="The repository's examples/ directory [default: the checkout's].",
)
@click.option("--day", default="2026-11-24", show_default=True, help="The day the data is from.")
@click.option("--json", "as_json", is_flag=True, help="No live display; print the summary as JSON.")
def demo(directory: str, examples: str | None, day: str, as_json: bool) -> None:
    """Run the examples as one story: nightly eval, index rebuild, canary rollback, promotion.

    Copies examples/nightly_eval, index_rebuild and weekly_finetune into DIR as
    one project on SQLite and local artifacts, runs them in order (the index
    rebuild fired by the data sensor), and prints what happened. Nothing is
    downloaded. Exits 1 if a step did not end the way the story needs.
    """
    project = runner.prepare(directory, runner.find_examples(examples))
    with runner.inside(project):
        summary, root = _play(project, day, as_json)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        _show(summary, root)
    raise SystemExit(0 if _as_told(summary) else 1)


def _play(project: Any, day: str, as_json: bool) -> tuple[dict[str, Any], Path]:
    from lockgate.cli.progress import Progress
    from lockgate.service.catalog import load_catalog

    workspace = runner.open_workspace(project)
    catalog = load_catalog(project)
    run_ids = []
    try:
        for number, step in enumerate(runner.steps(day), 1):
            if not as_json:
                err.rule(f"[bold]{number}. {step.pipeline}[/]: {step.title}")
            nodes = list(catalog.get(step.pipeline).pipeline.graph.order)
            with Progress(err, step.pipeline, nodes, quiet=as_json) as progress:
                result = runner.run_step(workspace, step, progress)
            run_ids.append(result.run_id)
        assert project.path is not None
        root = project.path.parent
        records = runner.write_records(workspace, run_ids, root / "records")
        summary = runner.summary(workspace, run_ids)
    finally:
        workspace.close()
    summary["records"] = [str(p) for p in records]
    summary["directory"] = str(root)
    return summary, root


def _as_told(summary: dict[str, Any]) -> bool:
    """The story held: eval and rebuild succeeded, the canary rolled back, then promoted."""
    statuses = {(r["pipeline"], r["status"]) for r in summary["runs"]}
    decisions = [c.get("decision") for c in summary["canaries"]]
    return (
        ("nightly_eval", "succeeded") in statuses
        and ("index_rebuild", "succeeded") in statuses
        and decisions == ["rollback", "promote"]
    )


def _show(summary: dict[str, Any], root: Path) -> None:
    runs = Table(title="runs", title_justify="left")
    for column in ("run", "pipeline", "trigger", "status", "seconds"):
        runs.add_column(column)
    for run in summary["runs"]:
        seconds = run["duration_s"]
        runs.add_row(
            run["run_id"],
            run["pipeline"],
            run["trigger"],
            run["status"],
            f"{seconds:.1f}" if seconds is not None else "-",
        )
    out.print(runs)
    for gate in summary["gates"]:
        verdict = "[green]passed[/]" if gate["passed"] else "[red]failed[/]"
        checks = "; ".join(
            f"{c['metric']} {c['value']:.3f} {c['expression']}"
            if isinstance(c["value"], int | float)
            else f"{c['metric']} {c['expression']}"
            for c in gate["checks"]
        )
        out.print(f"gate {gate['node']} ({gate['run_id']}): {verdict}  {checks}")
    for canary in summary["canaries"]:
        out.print(
            f"canary on route {canary.get('route')}: candidate {canary.get('candidate')} at "
            f"{canary.get('percent')}% -> [bold]{canary.get('decision')}[/]"
            + (f" ({canary['reason']})" if canary.get("reason") else "")
        )
    for name, model in summary["models"].items():
        out.print(
            f"model {name}: {model['versions']} version(s), production = v{model['production']}"
        )
    for route in summary["routes"]:
        targets = ", ".join(f"{label} {weight:g}%" for label, weight in route["targets"].items())
        out.print(f"route {route['name']}: {targets}")
    out.print(f"reliability records: {root / 'records'}/")
    here = Path(sys.executable).with_name("lockgate")
    command = str(here) if here.exists() else "lockgate"
    out.print(
        f"open the UI on these results:  cd {root} && {command} token create me && "
        f"{command} server   (then log in at http://127.0.0.1:8787/ with the printed token)"
    )


COMMANDS = [demo]
