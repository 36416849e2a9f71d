"""Commands for unattended cadences: pipelines, trigger, backfill, server, tokens."""

from __future__ import annotations

import json
import logging
from typing import Any

import click
from rich.table import Table

from lockgate.model.states import Trigger
from lockgate.service import catalog as catalog_service
from lockgate.service import tokens
from lockgate.service.compose import EXECUTORS, Workspace
from lockgate.service.enqueue import enqueue


def _console() -> Any:
    from lockgate.cli.main import out

    return out


def _errors() -> Any:
    from lockgate.cli.main import err

    return err


def _workspace(ctx: click.Context) -> Workspace:
    from lockgate.cli.main import _workspace as open_workspace

    return open_workspace(ctx)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, default=str))


@click.group()
def pipelines() -> None:
    """The pipelines lockgate.toml lists ([project] pipelines)."""


@pipelines.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def pipelines_list(ctx: click.Context, as_json: bool) -> None:
    """List the project's pipelines with their schedules, next run times and triggers."""
    workspace = _workspace(ctx)
    found = catalog_service.load_catalog(workspace.project)
    rows = [catalog_service.describe(entry) for entry in found]
    if as_json:
        _json(rows)
        return
    table = Table(title=f"pipelines in {workspace.project.path}", title_justify="left")
    for column in ("pipeline", "schedule", "next runs", "triggers", "max active", "source"):
        table.add_column(column)
    for row in rows:
        schedule = f"{row['schedule']} ({row['timezone']})" if row["schedule"] else "-"
        table.add_row(
            row["name"],
            schedule,
            "\n".join(row["next_runs"]) or "-",
            "\n".join(row["triggers"]) or "-",
            str(row["max_active_runs"] or "-"),
            row["source"],
        )
    _console().print(table)


@click.command()
@click.argument("name", metavar="PIPELINE")
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A pipeline parameter; repeat for several.",
)
@click.option("--key", default=None, help="Idempotency key: the same key never queues twice.")
@click.option("--json", "as_json", is_flag=True, help="Print {run_id, created} as JSON.")
@click.pass_context
def trigger(
    ctx: click.Context, name: str, params: tuple[str, ...], key: str | None, as_json: bool
) -> None:
    """Queue a run of a project pipeline for `lockgate server` to launch.

    `lockgate run` runs a pipeline here and now; `trigger` hands it to the
    server, which obeys max_active_runs and pools.
    """
    workspace = _workspace(ctx)
    entry = catalog_service.load_catalog(workspace.project).get(name)
    result = enqueue(
        workspace,
        entry.pipeline,
        entry.pipeline.bind_cli(params),
        trigger=Trigger.CLI,
        trigger_key=f"cli:{key}" if key else None,
        pipeline_ref=entry.ref,
    )
    if as_json:
        _json({"run_id": result.run_id, "created": result.created})
    elif result.created:
        _console().print(f"queued run [bold]{result.run_id}[/] (lockgate server launches it)")
    else:
        _console().print(f"key {key!r} already queued run [bold]{result.run_id}[/]")


@click.command()
@click.argument("name", metavar="PIPELINE")
@click.option("--start", required=True, help="First day (2026-11-01) or instant, inclusive.")
@click.option("--end", required=True, help="Last day (2026-11-07) or instant, inclusive.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@click.pass_context
def backfill(ctx: click.Context, name: str, start: str, end: str, as_json: bool) -> None:
    """Queue one run per schedule tick from --start to --end, in tick order.

    Days are read in the schedule's timezone. Ticks that already have a run
    (scheduled, or from an earlier backfill) are skipped, so repeating a
    backfill is safe. `lockgate server` launches the runs, oldest first,
    within the pipeline's max_active_runs.
    """
    from rich.progress import Progress

    from lockgate.service.scheduler import backfill as run_backfill

    workspace = _workspace(ctx)
    entry = catalog_service.load_catalog(workspace.project).get(name)
    with Progress(console=_errors(), transient=True, disable=as_json) as bar:
        task = bar.add_task(f"backfilling {name}", total=None)
        result = run_backfill(
            workspace,
            entry,
            start,
            end,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        _json(
            {
                "created": [{"tick": t.isoformat(), "run_id": r} for t, r in result.created],
                "existing": [{"tick": t.isoformat(), "run_id": r} for t, r in result.existing],
            }
        )
        return
    out = _console()
    for tick, run_id in result.created:
        out.print(f"queued  {tick.isoformat()}  {run_id}")
    for tick, run_id in result.existing:
        out.print(f"exists  {tick.isoformat()}  {run_id}", style="dim")
    out.print(
        f"{len(result.created)} run(s) queued, {len(result.existing)} tick(s) already had "
        "a run; `lockgate server` launches them"
    )


@click.command()
@click.option("--host", default=None, help="Address to listen on [default: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="[default: 8787]")
@click.option(
    "--allow-remote",
    is_flag=True,
    default=None,
    help="Allow a non-loopback --host (it also needs an API token to exist) "
    "[default: [server] allow_remote, else false].",
)
@click.option(
    "--max-concurrent-runs",
    type=click.IntRange(1, 10_000),
    default=None,
    help="Runs this server drives at once [default: 4].",
)
@click.option(
    "--executor",
    type=click.Choice(EXECUTORS),
    default=None,
    help="[default: [executor] in lockgate.toml, else process]",
)
@click.option(
    "--ray-address",
    default=None,
    help="The Ray cluster of runs on the ray executor [default: LOCKGATE_RAY_ADDRESS, "
    "[executor] ray_address, else a Ray instance per run].",
)
@click.option("--workers", type=click.IntRange(1, 1024), default=None, help="Per run.")
@click.option("--poll-interval", type=click.FloatRange(0.05, 3600), default=None)
@click.option("--drain-timeout", type=click.FloatRange(0, 86_400), default=None)
@click.pass_context
def server(ctx: click.Context, /, **overrides: Any) -> None:
    """Run the scheduler, the run launcher and the HTTP API until SIGTERM.

    Settings come from [server] in lockgate.toml; flags override them.
    Listening beyond loopback needs --allow-remote and an API token. Each
    run is driven in its own subprocess. On SIGTERM (or Ctrl-C) the server
    stops launching, gives running runs --drain-timeout seconds, and leaves
    the rest resumable for the next server.
    """
    from lockgate.server.daemon import Server, options_for

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from lockgate.cli.main import _workspace as open_workspace

    workspace = open_workspace(ctx, ray_address=overrides.pop("ray_address"))
    options = options_for(workspace, **overrides)
    errors = _errors()

    def ready(state: Any) -> None:
        names = ", ".join(sorted(e.pipeline.name for e in state.catalog))
        errors.print(
            f"lockgate server {state.server_id} on http://{options.host}:{options.port} "
            f"({len(state.catalog)} pipeline(s): {names})"
        )

    left = Server(workspace, options, on_ready=ready).serve()
    if left:
        errors.print(f"stopped; left resumable: {', '.join(left)}")


@click.group()
def token() -> None:
    """API tokens for `lockgate server` (only their SHA-256 is stored)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(tokens.SCOPES),
    default="run",
    show_default=True,
    help="read: GET only; run: also trigger, cancel and resume runs; admin: also "
    "promote and roll back models, shift and roll back routes.",
)
@click.pass_context
def token_create(ctx: click.Context, name: str, scope: str) -> None:
    """Create a token and print it once (it cannot be shown again)."""
    from lockgate.service.registry import cli_actor

    value = tokens.create_token(_workspace(ctx), name, scope, actor=cli_actor())
    click.echo(value)
    _errors().print(
        f"token {name!r} ({scope}) created; store it now, it is not shown again. Send it as "
        "`Authorization: Bearer <token>`."
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """List tokens (names and dates, never the tokens)."""
    from lockgate.service.views import iso

    rows: list[dict[str, Any]] = [
        {
            "name": t.name,
            "scopes": list(t.scopes),
            "created_at": iso(t.created_at),
            "last_used_at": iso(t.last_used_at),
            "revoked_at": iso(t.revoked_at),
        }
        for t in _workspace(ctx).metadata.list_tokens()
    ]
    if as_json:
        _json(rows)
        return
    table = Table()
    for column in ("name", "scopes", "created", "last used", "revoked"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"],
            ",".join(row["scopes"]),
            row["created_at"],
            row["last_used_at"] or "-",
            row["revoked_at"] or "-",
        )
    _console().print(table)


@token.command("revoke")
@click.argument("name")
@click.pass_context
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token: requests carrying it get 401 from now on."""
    from lockgate.service.registry import cli_actor

    tokens.revoke(_workspace(ctx), name, actor=cli_actor())
    _console().print(f"token {name!r} revoked")


COMMANDS = [pipelines, trigger, backfill, server, token]
