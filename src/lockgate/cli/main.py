"""`lockgate` commands. Thin: parse, call a service, print.

Exit codes: 0 succeeded, 1 run failed (or a store/execution error), 2 usage
or definition error, 3 gate failed, 4 waiting for an approval. Errors are
rendered in exactly one place, `LockgateGroup.invoke`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from lockgate.errors import LockgateError
from lockgate.model.drawing import FORMATS, draw
from lockgate.model.states import RunState, Trigger
from lockgate.service.compose import EXECUTORS, Workspace

if TYPE_CHECKING:
    from lockgate.service.runs import RunResult

EXIT_CODES = {
    RunState.SUCCEEDED: 0,
    RunState.FAILED: 1,
    RunState.CANCELLED: 1,
    RunState.GATE_FAILED: 3,
    RunState.WAITING: 4,
}

# Piped output (CI logs, files) gets a wide page rather than Rich's 80 columns,
# so tables of ids and hashes are not folded.
_PIPE_WIDTH = 160
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _PIPE_WIDTH
)


#: Commands defined in other modules, imported only when one of them runs (or
#: `--help` lists them): a command pays for its own imports, not everyone's.
LAZY_COMMANDS = {
    "datasets": "lockgate.cli.lifecycle:datasets",
    "models": "lockgate.cli.lifecycle:models",
    "prompts": "lockgate.cli.lifecycle:prompts",
    "approve": "lockgate.cli.lifecycle:approve",
    "reject": "lockgate.cli.lifecycle:reject",
    "lineage": "lockgate.cli.lifecycle:lineage",
    "record": "lockgate.cli.lifecycle:record",
    "pipelines": "lockgate.cli.cadences:pipelines",
    "trigger": "lockgate.cli.cadences:trigger",
    "backfill": "lockgate.cli.cadences:backfill",
    "server": "lockgate.cli.cadences:server",
    "token": "lockgate.cli.cadences:token",
    "stats": "lockgate.cli.observe:stats",
    "gateway": "lockgate.cli.gateway:gateway",
    "routes": "lockgate.cli.routes:routes",
    "demo": "lockgate.cli.demo:demo",
    "audit": "lockgate.cli.audit:audit",
}


class LockgateGroup(click.Group):
    """A click group that renders lockgate errors with their exit codes."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, the lazily imported ones included."""
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command called `cmd_name`, importing its module on first use."""
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in LAZY_COMMANDS:
            return found
        module, _, attr = LAZY_COMMANDS[cmd_name].partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        self.add_command(command, cmd_name)
        return command

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


def _workspace(ctx: click.Context, *, ray_address: str | None = None) -> Workspace:
    workspace = Workspace()
    if ray_address is not None:
        workspace.settings = dataclasses.replace(workspace.settings, ray_address=ray_address)
    ctx.call_on_close(workspace.close)
    return workspace


@click.group(cls=LockgateGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lockgate")
def cli() -> None:
    """lockgate: run ML pipelines as dependency-aware, retry-safe, observable DAGs.

    State lives in LOCKGATE_HOME (default ./.lockgate): a SQLite database and an
    artifact store. LOCKGATE_DB_URL and LOCKGATE_ARTIFACT_ROOT override each.
    """


def _executor_options(fn: Any) -> Any:
    fn = click.option(
        "--no-cache", is_flag=True, help="Execute every node even if a cached result matches."
    )(fn)
    fn = click.option(
        "--workers",
        type=click.IntRange(1, 1024),
        default=None,
        help="Worker processes for the process executor, or CPUs of a Ray instance started "
        "for the run (default: CPU count).",
    )(fn)
    fn = click.option(
        "--ray-address",
        default=None,
        metavar="auto|HOST:PORT|ray://HOST:PORT",
        help="The Ray cluster for --executor ray [default: LOCKGATE_RAY_ADDRESS, "
        "[executor] ray_address, else a Ray instance started here for the run].",
    )(fn)
    return click.option(
        "--executor",
        type=click.Choice(EXECUTORS),
        default=None,
        help="Where tasks run: a pool of worker processes, inline in this process, or a Ray "
        "cluster [default: [executor] in lockgate.toml, else process].",
    )(fn)


def _finish(ctx: click.Context, result: RunResult, workspace: Workspace, as_json: bool) -> None:
    from lockgate.service.runs import small_output

    if as_json:
        _json(
            {
                "run_id": result.run_id,
                "status": result.status.value,
                "pipeline": result.record.pipeline,
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
        elif result.status is RunState.WAITING:
            out.print(f"  {result.record.error}", markup=False)
        else:
            out.print(f"  {result.record.error}", markup=False)
            out.print(f"  details: lockgate show {result.run_id}", markup=False)
            if (result.record.error or "").startswith("stale input:"):
                # A resume keeps the run's pinned versions, stale ones included.
                out.print("  after a fresh version lands: run the pipeline again", markup=False)
            elif result.status is not RunState.CANCELLED:
                out.print(f"  after a fix: lockgate resume {result.run_id}", markup=False)
    ctx.exit(EXIT_CODES.get(result.status, 1))


def _drive(
    ctx: click.Context,
    workspace: Workspace,
    pipeline: str,
    nodes: list[str],
    go: Callable[..., RunResult],
    as_json: bool,
) -> None:
    """Run `go(listener=...)` under the progress display; Ctrl-C exits 130."""
    from lockgate.cli.progress import Progress

    try:
        with Progress(err, pipeline, nodes, quiet=as_json) as progress:
            result = go(listener=progress)
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted:[/] the run was cancelled; committed results are kept "
            "(lockgate resume RUN continues it)"
        )
        ctx.exit(130)
    # Alerts work without a server: this run's failure or SLA miss is sent now.
    from lockgate.service.alerts import run_alert_pass  # urllib/ssl: only once a run ended

    run_alert_pass(workspace.metadata, workspace.project.alerts)
    _finish(ctx, result, workspace, as_json)


@cli.command()
@click.argument("ref", metavar="PATH:PIPELINE|NAME")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A pipeline parameter; repeat for several. Parsed by the parameter's type.",
)
@_executor_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="No live display; print one JSON object with run_id and status at the end.",
)
@click.pass_context
def run(
    ctx: click.Context,
    ref: str,
    params: tuple[str, ...],
    executor: str | None,
    ray_address: str | None,
    workers: int | None,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Run a pipeline and wait for it to finish.

    Shows each node's state while it runs, prints the run id, and exits 0 if the
    run succeeded, 1 if it failed, 3 if an evaluation gate failed. Ctrl-C cancels
    the run (a second Ctrl-C stops at once); committed results are kept.

    A bare NAME is a pipeline of the project (lockgate.toml [project] pipelines).

    Example: lockgate run pipelines.py:nightly -p day=2026-11-24
    """
    from lockgate.service.loader import load_pipeline
    from lockgate.service.runs import start_run

    workspace = _workspace(ctx, ray_address=ray_address)
    if ":" in ref or ref.endswith(".py") or workspace.project.path is None:
        pipeline = load_pipeline(ref)
        source, _, name = ref.rpartition(":")
        pipeline_ref = f"{Path(source).resolve()}:{name}" if source.endswith(".py") else ref
    else:
        from lockgate.service.catalog import load_catalog

        entry = load_catalog(workspace.project).get(ref)
        pipeline, pipeline_ref = entry.pipeline, entry.ref
    bound = pipeline.bind_cli(params)
    start = functools.partial(
        start_run,
        pipeline,
        bound,
        workspace=workspace,
        executor=executor,
        workers=workers,
        trigger=Trigger.CLI,
        no_cache=no_cache,
        pipeline_ref=pipeline_ref,
    )
    _drive(ctx, workspace, pipeline.name, list(pipeline.graph.order), start, as_json)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A secret parameter's value, needed again when the run was started with a "
    "literal one (lockgate never stores it). Other parameters keep their values.",
)
@_executor_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
@click.pass_context
def resume(
    ctx: click.Context,
    run_id: str,
    params: tuple[str, ...],
    executor: str | None,
    ray_address: str | None,
    workers: int | None,
    no_cache: bool,
    as_json: bool,
) -> None:
    """Continue a failed, cancelled or interrupted run under the same id.

    Nodes that already committed a result are not executed again; the rest run
    with their attempt numbers continuing. The run's history records that it was
    resumed from the CLI. The pipeline's code must be the version the run used.
    """
    from lockgate.model.params import parse_assignments
    from lockgate.service.lifecycle import resume_run

    workspace = _workspace(ctx, ray_address=ray_address)
    record = workspace.metadata.get_run(run_id)
    nodes = [node["id"] for node in workspace.metadata.run_graph(record.id)["nodes"]]
    again = functools.partial(
        resume_run,
        workspace,
        record.id,
        by=Trigger.CLI,
        executor=executor,
        workers=workers,
        no_cache=no_cache,
        secrets=parse_assignments(record.pipeline, params),
    )
    _drive(ctx, workspace, record.pipeline, nodes, again, as_json)


@cli.command()
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default=None,
    help="[default: [executor] in lockgate.toml, else process]",
)
@click.option("--ray-address", default=None, help="The Ray cluster for --executor ray.")
@click.option("--workers", type=click.IntRange(1, 1024), default=None)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of outcomes.")
@click.pass_context
def recover(
    ctx: click.Context,
    executor: str | None,
    ray_address: str | None,
    workers: int | None,
    as_json: bool,
) -> None:
    """Resume every orphaned run: running, but with a stale heartbeat.

    A heartbeat is stale after LOCKGATE_HEARTBEAT_TIMEOUT seconds (default 30),
    for example after the coordinator was killed or the machine restarted.
    Exits 1 if any recovered run did not succeed.
    """
    from lockgate.service.lifecycle import recover_runs

    workspace = _workspace(ctx, ray_address=ray_address)
    outcomes = recover_runs(workspace, executor=executor, workers=workers)
    rows = [
        {
            "run_id": o.run_id,
            "status": o.result.status.value if o.result else "not_recovered",
            "error": o.error or (o.result.record.error if o.result else None),
        }
        for o in outcomes
    ]
    if as_json:
        _json(rows)
    elif not rows:
        out.print("no orphaned runs")
    else:
        for row in rows:
            detail = f"  {row['error']}" if row["error"] else ""
            out.print(f"{row['run_id']} {row['status']}{detail}", markup=False)
    ctx.exit(0 if all(r["status"] == "succeeded" for r in rows) else 1)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until the run is recorded as cancelled.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run's status as JSON.")
@click.pass_context
def cancel(ctx: click.Context, run_id: str, wait: bool, as_json: bool) -> None:
    """Cancel a run: stop scheduling, terminate running tasks, record `cancelled`.

    The coordinator driving the run acts within a second; a run nobody drives
    (queued or orphaned) is cancelled at once. Committed results are kept.
    """
    from lockgate.service.lifecycle import cancel_run

    workspace = _workspace(ctx)
    record = cancel_run(workspace, run_id, by=Trigger.CLI)
    deadline = time.monotonic() + 60
    while wait and not record.status.terminal and time.monotonic() < deadline:
        time.sleep(0.2)
        record = workspace.metadata.get_run(record.id)
    if as_json:
        _json({"run_id": record.id, "status": record.status.value})
    else:
        pending = "" if record.status.terminal else " (cancellation requested)"
        out.print(f"run {record.id} {record.status.value}{pending}")


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.argument("node", metavar="NODE")
@click.option("--json", "as_json", is_flag=True, help="Print the explanation as JSON.")
@click.pass_context
def explain(ctx: click.Context, run_id: str, node: str, as_json: bool) -> None:
    """Say why NODE was a cache hit or miss in RUN, and what differed.

    NODE is a node id, or NODE[i] for an item of a map node. For a miss, the
    nearest earlier result of the same task is compared: code version, input
    artifacts, parameters.
    """
    from lockgate.service.explain import explain as explain_node

    report = explain_node(_workspace(ctx), run_id, node)
    if as_json:
        _json(report)
        return
    out.print(f"{report['node']} in {report['run_id']}: {report['message']}", markup=False)
    for difference in report.get("differences", []):
        out.print(f"  - {difference}", markup=False)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.argument("node", metavar="[NODE]", required=False)
@click.option("--attempt", type=click.IntRange(1), default=None, help="Only this attempt.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing output until the run ends.")
@click.pass_context
def logs(
    ctx: click.Context, run_id: str, node: str | None, attempt: int | None, follow: bool
) -> None:
    """Print the captured stdout, stderr and log records of a run's attempts.

    NODE limits it to one node (NODE[i] for a map item); --attempt to one try.
    """
    from lockgate.service import logs as log_service

    workspace = _workspace(ctx)
    if follow:
        current = None
        for log, text in log_service.follow(workspace, run_id, node, attempt):
            if (log.label, log.attempt) != current:
                current = (log.label, log.attempt)
                err.print(f"[bold]== {log.label} (attempt {log.attempt}) ==[/]")
            click.echo(text, nl=False)
        return
    for log in log_service.attempt_logs(workspace, run_id, node, attempt):
        text = log.read()
        empty = "" if text else " [dim](no output)[/]"
        err.print(f"[bold]== {log.label} (attempt {log.attempt}) ==[/]{empty}")
        click.echo(text, nl=False)


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
    from lockgate.service import views

    workspace = _workspace(ctx)
    records = workspace.metadata.list_runs(
        limit=limit, pipeline=pipeline, status=RunState(status) if status else None
    )
    stale_after = workspace.settings.heartbeat_timeout
    if as_json:
        _json([views.run_view(r, stale_after) for r in records])
    else:
        out.print(runs_table(records, stale_after))


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print every node and attempt as JSON.")
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: each node with its state, attempts, durations and queue time.

    RUN is a run id or a unique prefix of one.
    """
    from lockgate.cli.render import run_tree
    from lockgate.service import views

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
    from lockgate.service.loader import load_pipeline

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
    from lockgate.service import views

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
    from lockgate.service import artifacts as artifact_service

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
    from lockgate.service import artifacts as artifact_service

    record, data = artifact_service.artifact_bytes(_workspace(ctx), key)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(data)
        err.print(f"wrote {len(data)} bytes ({record.ref.serializer}) to {output}")


@artifacts.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def artifacts_verify(ctx: click.Context, as_json: bool) -> None:
    """Re-hash every recorded artifact; list each corrupted or missing one with its producer.

    Blobs are re-read from the artifact store, small artifacts from the
    database. Exits 1 if any artifact does not match its hash; re-running
    the run that produced it writes it again.
    """
    from rich.progress import Progress

    from lockgate.service import artifacts as artifact_service

    workspace = _workspace(ctx)
    with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("verifying artifacts", total=None)
        result = artifact_service.verify_artifacts(
            workspace, on_progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    if as_json:
        _json(
            {
                "checked": result.checked,
                "ok": result.ok,
                "unrecorded_blobs": result.unrecorded,
                "problems": [
                    {
                        "uri": p.uri,
                        "problem": p.kind,
                        "detail": p.detail,
                        "produced_by": list(p.produced_by),
                    }
                    for p in result.problems
                ],
            }
        )
    else:
        for problem in result.problems:
            producers = ", ".join(problem.produced_by) or "no recorded producer"
            out.print(f"[red]{problem.kind}[/] {problem.uri} ({producers})", soft_wrap=True)
        verdict = "[green]ok[/]" if result.ok else f"[red]{len(result.problems)} bad[/]"
        out.print(
            f"{result.checked} artifact(s) checked: {verdict}; "
            f"{result.unrecorded} blob(s) no record names"
        )
    ctx.exit(0 if result.ok else 1)


@cli.group()
def db() -> None:
    """Manage the metadata database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the metadata database to this lockgate's schema (back it up first)."""
    from lockgate.service.config import Settings
    from lockgate.service.database import upgrade_database
    from lockgate.service.project import load

    where, before, after = upgrade_database(Settings.from_env(project=load()))
    if before == after:
        out.print(f"{where} is already at schema revision {after}")
    else:
        out.print(f"{where} upgraded from {before or 'empty'} to schema revision {after}")


def main() -> None:
    """Entry point of the `lockgate` script."""
    cli(prog_name="lockgate")
