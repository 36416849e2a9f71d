"""`lockgate routes`: list, show, set, shift and roll back the weighted targets behind a route.

Every change is recorded with who made it (`cli:<user>`), when and why, and
the state it replaced; `show` prints that history. Errors (bad weights, an
unregistered version, nothing to roll back) render with their exit code in
`lockgate.cli.main`.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table

from lockgate.ports.routes import RouteRecord
from lockgate.service import routes as route_service
from lockgate.service.compose import Workspace
from lockgate.service.registry import cli_actor
from lockgate.service.views import iso

_TARGETS_HELP = "TARGET=WEIGHT: model:NAME@VERSION=PERCENT (e.g. model:support-bot@4=5)."


def _console() -> Any:
    from lockgate.cli.main import out

    return out


def _workspace(ctx: click.Context) -> Workspace:
    from lockgate.cli.main import _workspace as open_workspace

    return open_workspace(ctx)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, default=str))


def _targets(route: RouteRecord) -> str:
    served = ", ".join(f"{t.label} {t.weight:g}%" for t in route.targets)
    return served + (f" (mirror {route.mirror.label})" if route.mirror else "")


def _state(state: Any) -> str:
    if state is None:
        return "(created)"
    view = route_service.state_view(state)
    served = ", ".join(f"{t['target']} {t['weight']:g}%" for t in view["targets"])
    return served + (f" (mirror {view['mirror']})" if view["mirror"] else "")


def _done(route: RouteRecord, as_json: bool, what: str) -> None:
    if as_json:
        _json(route_service.route_view(route))
        return
    _console().print(f"route {route.name} v{route.version} ({what}): {_targets(route)}")


@click.group(help="Routes: weighted model versions served by the gateway, and their history.")
def routes() -> None:
    pass


@routes.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List every route with its targets and weights."""
    found = route_service.list_routes(_workspace(ctx))
    if as_json:
        _json([route_service.route_view(r) for r in found])
        return
    if not found:
        _console().print(
            "no routes yet; create one with `lockgate routes set NAME model:NAME@VERSION=100`",
            style="dim",
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("route", "version", "targets", "updated", "by"):
        table.add_column(column)
    for r in found:
        table.add_row(r.name, str(r.version), _targets(r), iso(r.updated_at) or "", r.updated_by)
    _console().print(table)


@routes.command("show")
@click.argument("name")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print {route, changes} as JSON.")
@click.pass_context
def show_command(ctx: click.Context, name: str, limit: int, as_json: bool) -> None:
    """Show route NAME's state and its changes, newest first."""
    workspace = _workspace(ctx)
    route = route_service.get_route(workspace, name)
    changes = route_service.route_history(workspace, name, limit=limit)
    if as_json:
        _json(
            {
                "route": route_service.route_view(route),
                "changes": [route_service.change_view(c) for c in changes],
            }
        )
        return
    console = _console()
    console.print(f"[bold]route {route.name}[/] v{route.version}")
    for t in route.targets:
        console.print(f"  {t.label}  {t.weight:g}%")
    if route.mirror is not None:
        console.print(f"  mirror {route.mirror.label}")
    console.print(f"  updated {iso(route.updated_at)} by {route.updated_by}")
    table = Table(box=None, header_style="bold", pad_edge=False, title="changes")
    for column in ("v", "action", "at", "by", "run", "reason", "before", "after"):
        table.add_column(column)
    for c in changes:
        table.add_row(
            str(c.version),
            c.action,
            iso(c.at) or "",
            c.by,
            c.run_id or "",
            c.reason or "",
            _state(c.previous),
            _state(c.state),
        )
    console.print(table)


@routes.command("set")
@click.argument("name")
@click.argument("targets", nargs=-1, required=True)
@click.option("--mirror", default=None, help="model:NAME@VERSION receiving copies (never served).")
@click.option("--reason", default=None, help="Why (recorded).")
@click.option("--json", "as_json", is_flag=True, help="Print the new state as JSON.")
@click.pass_context
def set_command(
    ctx: click.Context,
    name: str,
    targets: tuple[str, ...],
    mirror: str | None,
    reason: str | None,
    as_json: bool,
) -> None:
    """Give route NAME exactly these TARGETS (weights sum to 100), creating it if new.

    TARGETS are model:NAME@VERSION=PERCENT, e.g.
    `lockgate routes set support-bot model:support-bot@3=95 model:support-bot@4=5`.
    """
    parsed = [route_service.parse_target(t) for t in targets]
    route = route_service.set_route(
        _workspace(ctx),
        name,
        parsed,
        mirror=None if mirror is None else route_service.parse_target(mirror, weighted=False),
        by=cli_actor(),
        reason=reason,
    )
    _done(route, as_json, "set")


@routes.command("shift")
@click.argument("name")
@click.argument("targets", nargs=-1, required=True)
@click.option("--reason", default=None, help="Why (recorded).")
@click.option("--json", "as_json", is_flag=True, help="Print the new state as JSON.")
@click.pass_context
def shift_command(
    ctx: click.Context, name: str, targets: tuple[str, ...], reason: str | None, as_json: bool
) -> None:
    """Set the weights of the named TARGETS; the route's other targets share the rest.

    E.g. `lockgate routes shift support-bot model:support-bot@4=50`: @4 serves
    50%, the others keep their proportions of the other 50% (a target left at
    0% is dropped). The mirror is kept.
    """
    route = route_service.shift_route(
        _workspace(ctx),
        name,
        route_service.parse_weights(targets),
        by=cli_actor(),
        reason=reason,
    )
    _done(route, as_json, "shifted")


@routes.command("rollback")
@click.argument("name")
@click.option("--reason", default=None, help="Why (recorded).")
@click.option("--json", "as_json", is_flag=True, help="Print the new state as JSON.")
@click.pass_context
def rollback_command(ctx: click.Context, name: str, reason: str | None, as_json: bool) -> None:
    """Restore route NAME's state before its last change (atomically; a new version)."""
    route = route_service.rollback_route(_workspace(ctx), name, by=cli_actor(), reason=reason)
    _done(route, as_json, "rolled back")


COMMANDS = [routes]
