"""Commands for the ML lifecycle: versions, the model registry, approvals, lineage, records."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from lockgate.model.versions import parse_version_ref
from lockgate.service import lineage as lineage_service
from lockgate.service import record as record_service
from lockgate.service import registry
from lockgate.service.compose import EXECUTORS, Workspace
from lockgate.service.lifecycle import decide_approval
from lockgate.service.runs import RunResult


def _console() -> Any:
    from lockgate.cli.main import out

    return out


def _workspace(ctx: click.Context) -> Workspace:
    from lockgate.cli.main import _workspace as open_workspace

    return open_workspace(ctx)


def _json(data: Any) -> None:
    click.echo(json.dumps(data, default=str))


def _versions_group(kind: str) -> click.Group:
    @click.group(name=f"{kind}s", help=f"Versions of named {kind}s (content-addressed, immutable).")
    def group() -> None:
        pass

    @group.command("list")
    @click.argument("name", required=False)
    @click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
    @click.pass_context
    def list_command(ctx: click.Context, name: str | None, limit: int, as_json: bool) -> None:
        """List versions, newest first (of NAME, or of every name)."""
        found = registry.list_versions(_workspace(ctx), kind, name, limit)
        if as_json:
            _json([registry.version_view(v) for v in found])
            return
        if not found:
            _console().print(f"no {kind} versions yet", style="dim")
            return
        table = Table(box=None, header_style="bold", pad_edge=False)
        columns = ["version", "aliases", "created", "run", "sha256"]
        if kind == "model":
            columns.insert(2, "gate")
        for column in columns:
            table.add_column(column, no_wrap=True)
        for v in found:
            created = registry.version_view(v)["created_at"][:19].replace("T", " ")
            row = [v.label, ", ".join(v.aliases), created, v.run_id or "", v.ref.sha256[:12]]
            if kind == "model":
                row.insert(2, "passed" if v.gated else "none")
            table.add_row(*row)
        _console().print(table)

    @group.command("show")
    @click.argument("ref", metavar="NAME[@VERSION]")
    @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
    @click.pass_context
    def show_command(ctx: click.Context, ref: str, as_json: bool) -> None:
        """Show one version (the latest without @VERSION), with its aliases and audit log."""
        parsed = parse_version_ref(f"{kind}:{ref}")
        workspace = _workspace(ctx)
        found = registry.get_version(workspace, kind, parsed.name, parsed.version)
        view = registry.version_view(found)
        view["alias_log"] = [
            registry.alias_event_view(e) for e in workspace.metadata.alias_events(kind, parsed.name)
        ]
        if as_json:
            _json(view)
            return
        grid = Table.grid(padding=(0, 2))
        for key in (
            "ref",
            "uri",
            "type",
            "size",
            "created_at",
            "run_id",
            "node",
            "aliases",
            "gated",
            "metadata",
        ):
            grid.add_row(key, str(view[key]))
        _console().print(grid)
        for entry in view["alias_log"]:
            _console().print(
                f"  {entry['at'][:19]} {entry['alias']}: {entry['action']} "
                f"{entry['previous_version']} -> {entry['version']} by {entry['actor']}"
                + (f" ({entry['reason']})" if entry["reason"] else "")
                + (" [forced]" if entry["forced"] else ""),
                markup=False,
            )

    return group


datasets = _versions_group("dataset")
models = _versions_group("model")
prompts = _versions_group("prompt")


@models.command("promote")
@click.argument("name")
@click.argument("version", type=click.IntRange(1))
@click.option("--alias", required=True, help="The alias to move, e.g. production.")
@click.option("--force", is_flag=True, help="Promote a version that has no passing gate.")
@click.option("--reason", default=None, help="Why; required with --force (recorded).")
@click.pass_context
def promote_command(
    ctx: click.Context, name: str, version: int, alias: str, force: bool, reason: str | None
) -> None:
    """Point ALIAS of model NAME at VERSION (refused without a passing gate unless --force)."""
    previous = registry.promote(_workspace(ctx), name, version, alias, reason=reason, force=force)
    was = f"version {previous}" if previous is not None else "nothing"
    _console().print(f"{alias} of model {name}: {was} -> version {version}")


@models.command("rollback")
@click.argument("name")
@click.option("--alias", required=True, help="The alias to move back, e.g. production.")
@click.option("--reason", default=None, help="Why (recorded).")
@click.pass_context
def rollback_command(ctx: click.Context, name: str, alias: str, reason: str | None) -> None:
    """Move ALIAS of model NAME back to the version it pointed at before its last move."""
    was, now = registry.rollback(_workspace(ctx), name, alias, reason=reason)
    _console().print(f"{alias} of model {name}: version {was} -> version {now} (rolled back)")


def _decide(
    ctx: click.Context,
    run_id: str,
    node: str,
    approve: bool,
    reason: str | None,
    by: str | None,
    resume: bool,
    executor: str | None,
) -> None:
    from lockgate.cli.main import EXIT_CODES

    actor = by or registry.cli_actor().removeprefix("cli:")
    result = decide_approval(
        _workspace(ctx),
        run_id,
        node,
        approve=approve,
        by=actor,
        reason=reason,
        proceed=resume,
        executor=executor,
    )
    verb = "approved" if approve else "rejected"
    if isinstance(result, RunResult):
        _console().print(f"{node} {verb} by {actor}; run {result.run_id} {result.status.value}")
        ctx.exit(EXIT_CODES.get(result.status, 1))
    _console().print(f"{node} {verb} by {actor}; run {result.id} is {result.status.value}")


_decision_options = [
    click.argument("run_id", metavar="RUN"),
    click.argument("node", metavar="NODE"),
    click.option("--as", "by", default=None, help="Who decides (default: your user name)."),
    click.option(
        "--resume/--no-resume",
        default=True,
        show_default=True,
        help="Continue a run that stopped to wait, in this process.",
    ),
    click.option(
        "--executor",
        type=click.Choice(EXECUTORS),
        default=None,
        help="[default: [executor] in lockgate.toml, else process]",
    ),
]


def _with(options: list[Any]) -> Callable[[Any], Any]:
    def apply(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


@click.command()
@_with(_decision_options)
@click.option("--reason", default=None, help="Why (recorded).")
@click.pass_context
def approve(
    ctx: click.Context,
    run_id: str,
    node: str,
    by: str | None,
    resume: bool,
    executor: str | None,
    reason: str | None,
) -> None:
    """Approve the approval node NODE of RUN; the run goes on."""
    _decide(ctx, run_id, node, True, reason, by, resume, executor)


@click.command()
@_with(_decision_options)
@click.option("--reason", required=True, help="Why (recorded).")
@click.pass_context
def reject(
    ctx: click.Context,
    run_id: str,
    node: str,
    by: str | None,
    resume: bool,
    executor: str | None,
    reason: str,
) -> None:
    """Reject the approval node NODE of RUN: it fails and everything after it is skipped."""
    _decide(ctx, run_id, node, False, reason, by, resume, executor)


@click.command()
@click.argument("ref", metavar="REF")
@click.option("--downstream", is_flag=True, help="What was made from REF, instead of its ancestry.")
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON.")
@click.pass_context
def lineage(ctx: click.Context, ref: str, downstream: bool, as_json: bool) -> None:
    """Show where an artifact or version came from: datasets, runs, code versions.

    REF is an artifact URI, sha256:<hex>, or a version such as model:support-bot@3
    or dataset:transcripts@7 (latest without @).
    """
    workspace = _workspace(ctx)
    graph = lineage_service.walk(
        workspace, lineage_service.resolve_artifact(workspace, ref), downstream=downstream
    )
    if as_json:
        _json(graph.to_dict())
        return
    from lockgate.cli.render import lineage_tree

    _console().print(lineage_tree(graph, ref))


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option("--json", "fmt", flag_value="json", help="Print the record as JSON.")
@click.option("--md", "fmt", flag_value="md", help="Print the record as Markdown.")
@click.option("--verify", is_flag=True, help="Only check the event trace; exit 1 if tampered.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (format from --json/--md, else from the suffix).",
)
@click.pass_context
def record(
    ctx: click.Context, run_id: str, fmt: str | None, verify: bool, output: Path | None
) -> None:
    """The run's reliability record: inputs, code, artifacts, scores, gates, registry, trace."""
    workspace = _workspace(ctx)
    if verify:
        report = record_service.verify(workspace, workspace.metadata.get_run(run_id).id)
        if fmt == "json":
            _json(report)
        else:
            state = "intact" if report["ok"] else "TAMPERED"
            _console().print(f"{report['events']} events: {state}")
            for problem in report["problems"]:
                _console().print(f"  {problem}", markup=False)
        ctx.exit(0 if report["ok"] else 1)
    document = record_service.build(workspace, run_id)
    if fmt is None and output is not None:
        fmt = "md" if output.suffix.lower() in (".md", ".markdown") else "json"
    text = (
        record_service.to_markdown(document)
        if fmt == "md"
        else json.dumps(document, indent=2, default=str) + "\n"
    )
    if fmt is None and output is None:
        text = record_service.to_markdown(document)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        _console().print(f"record of {document['run']['run_id']} written to {output}")
    else:
        click.echo(text, nl=False)


COMMANDS = [datasets, models, prompts, approve, reject, lineage, record]
