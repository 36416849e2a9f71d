"""`lockgate audit`: the audit log (state-changing requests and token changes), newest first."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from lockgate.service.audit import MAX_LIMIT, audit_view, list_audit
from lockgate.service.compose import Workspace


def _console() -> Any:
    from lockgate.cli.main import out

    return out


def _workspace(ctx: click.Context) -> Workspace:
    from lockgate.cli.main import _workspace as open_workspace

    return open_workspace(ctx)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, MAX_LIMIT), help="Entries."
)
@click.option("--token", "token", default=None, help="Only what the token NAME did or tried.")
@click.pass_context
def audit(ctx: click.Context, as_json: bool, limit: int, token: str | None) -> None:
    """Show the audit log, newest first.

    One entry per state-changing request `lockgate server` answered (API and
    UI, refusals included) and per token created or revoked: when, who (the
    token's name, never the token), what, on what, and how it ended.
    """
    rows = [audit_view(e) for e in list_audit(_workspace(ctx), limit=limit, token=token)]
    if as_json:
        click.echo(json.dumps(rows, default=str))
        return
    if not rows:
        _console().print("no audit entries yet", style="dim")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("at", "actor", "scope", "action", "target", "status", "outcome", "client"):
        table.add_column(column)
    for row in rows:
        method = f"{row['method']} " if row["method"] else ""
        status = "-" if row["status"] is None else str(row["status"])
        outcome = row["outcome"] if row["outcome"] == "ok" else f"[red]{row['outcome']}[/]"
        table.add_row(
            (row["at"] or "")[:19].replace("T", " "),
            row["actor"] or "-",
            row["scope"] or "-",
            method + row["action"],
            row["target"] or "-",
            status,
            outcome,
            row["client"] or "-",
        )
    _console().print(table)


COMMANDS = [audit]
