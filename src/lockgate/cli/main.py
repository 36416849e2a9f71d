"""`lockgate` commands. Thin: parse, call a service, print.

Exit codes: 0 succeeded, 1 run failed (or a store/execution error),
2 usage or definition error, 3 gate failed. Errors are rendered in exactly
one place, `LockgateGroup.invoke`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from lockgate.errors import LockgateError
from lockgate.model.drawing import FORMATS, draw
from lockgate.model.states import RunState, Trigger
from lockgate.service import artifacts as artifact_service
from lockgate.service import views
from lockgate.service.compose import EXECUTORS, Workspace
from lockgate.service.loader import load_pipeline
from lockgate.service.runs import small_output, start_run

EXIT_CODES = {
    RunState.SUCCEEDED: 0,
    RunState.FAILED: 1,
    RunState.CANCELLED: 1,
    RunState.GATE_FAILED: 3,
}

# Piped output (CI logs, files) gets a wide page rather than Rich's 80 columns,
# so tables of ids and hashes are not folded.
_PIPE_WIDTH = 160
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _PIPE_WIDTH
)


class LockgateGroup(click.Group):
    """A click group that renders lockgate errors with their exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; turn LockgateError into a message and an exit code."""
        try:
            return super().invoke(ctx)
        except LockgateError as exc:
            err.print(f"[bold red]error:[/] {type(exc).__name__}: ", end="")
            err.print(str(exc), markup=False)
            ctx.exit(exc.exit_code)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=None, default=str))


def _workspace(ctx: click.Context) -> Workspace:
    workspace = Workspace()
    ctx.call_on_close(workspace.close)
    return workspace


@click.group(cls=LockgateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lockgate")
def cli() -> None:
    """lockgate: run ML pipelines as dependency-aware, retry-safe, observable DAGs.

    State lives in LOCKGATE_HOME (default ./.lockgate): a SQLite database and an
    artifact store. LOCKGATE_DB_URL and LOCKGATE_ARTIFACT_ROOT override each.
    """


@cli.command()
@click.argument("ref", metavar="PATH:PIPELINE")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A pipeline parameter; repeat for several. Parsed by the parameter's type.",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default="inline",
    show_default=True,
    help="Where tasks run.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="No live display; print one JSON object with run_id and status at the end.",
)
@click.pass_context
def run(
    ctx: click.Context, ref: str, params: tuple[str, ...], executor: str, as_json: bool
) -> None:
    """Run a pipeline and wait for it to finish.

    Shows each node's state while it runs, prints the run id, and exits 0 if the
    run succeeded, 1 if it failed, 3 if an evaluation gate failed.

    Example: lockgate run pipelines.py:nightly -p day=2026-11-24
    """
    from lockgate.cli.progress import Progress

    pipeline = load_pipeline(ref)
    bound = pipeline.bind_cli(params)
    workspace = _workspace(ctx)
    if as_json:
        result = start_run(
            pipeline, bound, workspace=workspace, executor=executor, trigger=Trigger.CLI
        )
    else:
        progress = Progress(err, pipeline.name, list(pipeline.graph.order))
        with progress:
            result = start_run(
                pipeline,
                bound,
                workspace=workspace,
                executor=executor,
                trigger=Trigger.CLI,
                listener=progress,
            )
    if as_json:
        _json(
            {
                "run_id": result.run_id,
                "status": result.status.value,
                "pipeline": pipeline.name,
                "error": result.record.error,
            }
        )
    else:
        colour = "green" if result.ok else "red"
        out.print(f"run [bold]{result.run_id}[/] [{colour}]{result.status.value}[/]")
        if result.ok:
            printable, value = small_output(workspace, result.run_id)
            if printable:
                out.print("output: ", end="")
                out.print(value if isinstance(value, str) else json.dumps(value), markup=False)
        if not result.ok:
            out.print(f"  {result.record.error}", markup=False)
            out.print(f"  details: lockgate show {result.run_id}", markup=False)
    ctx.exit(EXIT_CODES.get(result.status, 1))


@cli.command("runs")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--pipeline", default=None, help="Only runs of this pipeline.")
@click.option("--status", type=click.Choice([s.value for s in RunState]), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def runs_command(
    ctx: click.Context, limit: int, pipeline: str | None, status: str | None, as_json: bool
) -> None:
    """List recent runs, newest first."""
    from lockgate.cli.render import runs_table

    records = _workspace(ctx).metadata.list_runs(
        limit=limit, pipeline=pipeline, status=RunState(status) if status else None
    )
    if as_json:
        _json([views.run_view(r) for r in records])
    else:
        out.print(runs_table(records))


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print every node and attempt as JSON.")
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: each node with its state, attempts, durations and queue time.

    RUN is a run id or a unique prefix of one.
    """
    from lockgate.cli.render import run_tree

    details = views.run_details(_workspace(ctx), run_id)
    if as_json:
        _json(details)
    else:
        out.print(run_tree(details))


@cli.command()
@click.argument("ref", metavar="PATH:PIPELINE")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
def graph(ref: str, fmt: str) -> None:
    """Print a pipeline's graph without running it (text, Graphviz dot, or Mermaid)."""
    click.echo(draw(load_pipeline(ref).graph, fmt))


@cli.group()
def artifacts() -> None:
    """Inspect stored artifacts (content-addressed by sha256)."""


@artifacts.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def artifacts_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List artifacts, newest first."""
    from lockgate.cli.render import artifacts_table

    records = _workspace(ctx).metadata.list_artifacts(limit=limit)
    if as_json:
        _json([views.artifact_view(r) for r in records])
    else:
        out.print(artifacts_table(records))


@artifacts.command("show")
@click.argument("key", metavar="ARTIFACT")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def artifacts_show(ctx: click.Context, key: str, as_json: bool) -> None:
    """Show an artifact's metadata and which task runs produced and consumed it.

    ARTIFACT is lockgate://artifacts/sha256/<hex>, sha256:<hex> or the bare hex.
    """
    from lockgate.cli.render import artifact_panel

    view = artifact_service.describe_artifact(_workspace(ctx), key)
    if as_json:
        _json(view)
    else:
        out.print(artifact_panel(view))


@artifacts.command("get")
@click.argument("key", metavar="ARTIFACT")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.pass_context
def artifacts_get(ctx: click.Context, key: str, output: Path | None) -> None:
    """Write an artifact's verified bytes in its stored format (JSON, .npy, parquet, ...).

    Nothing is deserialized, so fetching an untrusted pickle is safe.
    """
    record, data = artifact_service.artifact_bytes(_workspace(ctx), key)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        err.print(f"wrote {len(data)} bytes ({record.ref.serializer}) to {output}")


@cli.group()
def db() -> None:
    """Manage the metadata database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the metadata database to this lockgate's schema (back it up first)."""
    from lockgate.service.config import Settings
    from lockgate.service.database import upgrade_database

    where, before, after = upgrade_database(Settings.from_env())
    if before == after:
        out.print(f"{where} is already at schema revision {after}")
    else:
        out.print(f"{where} upgraded from {before or 'empty'} to schema revision {after}")


def main() -> None:
    """Entry point of the `lockgate` script."""
    cli(prog_name="lockgate")
