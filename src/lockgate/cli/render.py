"""Rich renderings of runs and artifacts for the terminal."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from lockgate.cli.progress import styled
from lockgate.ports.metadata import ArtifactRecord, RunRecord


def _ago(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}s"


def runs_table(records: list[RunRecord], stale_after: float) -> Table | Text:
    """A table of runs; a running run with a stale heartbeat is flagged."""
    if not records:
        return Text("no runs yet; start one with `lockgate run PATH:PIPELINE`", style="dim")
    table = Table(box=None, header_style="bold", pad_edge=False)
    # Ids are copied into other commands: never truncate them.
    table.add_column("run", no_wrap=True, min_width=max(len(r.id) for r in records))
    for column in ("pipeline", "status", "trigger", "created", "duration", "git"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for r in records:
        duration = _secs(r.finished_at - r.created_at) if r.finished_at else ""
        status = styled(r.status.value)
        if r.stale(time.time(), stale_after):
            beat = r.heartbeat_at or r.created_at
            status.append(
                f" (stale: no heartbeat for {_ago(beat)[:-4]}; lockgate recover)",
                style="bold yellow",
            )
        table.add_row(
            r.id,
            r.pipeline,
            status,
            r.trigger,
            _ago(r.created_at),
            duration,
            (r.git_sha or "")[:10] + ("*" if r.git_dirty else ""),
        )
    return table


def _node_label(node: dict[str, Any]) -> Text:
    label = Text(
        node["id"] + (f"[{node['map_index']}]" if node["map_index"] is not None else ""),
        style="bold",
    )
    label.append("  ")
    label.append_text(styled(node["state"]))
    if node["attempt_count"]:
        label.append(f"  attempts {node['attempt_count']}", style="dim")
    if node["attempts"]:
        last = node["attempts"][-1]
        label.append(f"  {_secs(last['duration_s'])}", style="dim")
        if last["queue_time_s"] is not None:
            label.append(f"  queued {_secs(last['queue_time_s'])}", style="dim")
    if node["error"] and node["state"] in ("failed", "skipped"):
        label.append(f"  {node['error']}", style="red" if node["state"] == "failed" else "magenta")
    return label


def run_tree(details: dict[str, Any]) -> Group:
    """A run header and a tree of nodes, map items and attempts."""
    run = details["run"]
    header = Table.grid(padding=(0, 2))
    header.add_row("run", Text(run["run_id"], style="bold"))
    header.add_row("pipeline", f"{run['pipeline']}  version {run['pipeline_version'][:12]}")
    header.add_row("status", styled(run["status"]))
    trigger = run["trigger"] + (f"  ({run['trigger_key']})" if run["trigger_key"] else "")
    header.add_row("trigger", trigger)
    if run["logical_date"]:
        header.add_row("logical date", run["logical_date"])
    header.add_row("params", ", ".join(f"{k}={v!r}" for k, v in run["params"].items()) or "-")
    if run["git_sha"]:
        header.add_row("git", run["git_sha"] + (" (dirty)" if run["git_dirty"] else ""))
    header.add_row("created", run["created_at"] or "")
    if run["queue_time_s"] is not None:
        header.add_row("queued", _secs(run["queue_time_s"]))
    header.add_row("duration", _secs(run["duration_s"]) or run["status"])
    if run["error"]:
        header.add_row("error", Text(run["error"], style="red"))
    for warning in run.get("warnings", []):
        header.add_row("warning", Text(warning, style="yellow"))
    tree = Tree("nodes")
    branches: dict[str, Tree] = {}
    for node in details["nodes"]:
        parent = branches.get(node["id"]) if node["map_index"] is not None else None
        branch = (parent or tree).add(_node_label(node))
        if node["map_index"] is None:
            branches[node["id"]] = branch
        if len(node["attempts"]) > 1 or any(a["error"] for a in node["attempts"]):
            for attempt in node["attempts"]:
                line = Text(f"attempt {attempt['number']} ")
                line.append_text(styled(attempt["state"]))
                line.append(f"  {_secs(attempt['duration_s'])}", style="dim")
                if attempt["error"]:
                    line.append(f"  {attempt['error']}", style="red")
                branch.add(line)
    return Group(header, tree)


def artifacts_table(records: list[ArtifactRecord]) -> Table | Text:
    """A table of artifacts."""
    if not records:
        return Text("no artifacts yet", style="dim")
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("sha256", no_wrap=True, min_width=16)
    for column in ("serializer", "type", "size", "stored", "created"):
        table.add_column(column, no_wrap=True, overflow="ellipsis")
    for record in records:
        ref = record.ref
        table.add_row(
            ref.sha256[:16],
            ref.serializer,
            ref.type_name,
            f"{ref.size:,}",
            record.stored,
            _ago(record.created_at),
        )
    return table


def artifact_panel(view: dict[str, Any]) -> Table:
    """An artifact's metadata and lineage."""
    grid = Table.grid(padding=(0, 2))
    for key in ("uri", "serializer", "type", "size", "length", "stored", "origin", "created_at"):
        grid.add_row(key, str(view[key]))
    for key in ("produced_by", "consumed_by"):
        entries = ", ".join(f"{e['run_id']}/{e['node']}" for e in view[key]) or "-"
        grid.add_row(key.replace("_", " "), entries)
    return grid


def lineage_tree(graph: Any, ref: str) -> Tree:
    """An artifact's ancestry (or descendants) as a tree of artifacts and task runs."""
    data = graph.to_dict()
    arrow = "made from" if data["direction"] == "upstream" else "used by"
    tree = Tree(Text(f"{ref}  ({arrow})", style="bold"))
    artifacts = {a["sha256"]: a for a in data["artifacts"]}
    runs = {t["task_run"]: t for t in data["task_runs"]}
    by_artifact: dict[str, list[dict[str, Any]]] = {}
    for edge in data["edges"]:
        by_artifact.setdefault(edge["artifact"], []).append(edge)

    def label(sha: str) -> Text:
        artifact = artifacts[sha]
        text = Text(sha[:12], style="cyan")
        if artifact["versions"]:
            text.append("  " + ", ".join(artifact["versions"]), style="bold green")
        return text

    def task_label(task: dict[str, Any]) -> Text:
        sha = (task["git_sha"] or "no git")[:10] + ("*" if task["git_dirty"] else "")
        return Text(
            f"{task['node']} in {task['run_id']} ({task['pipeline']} "
            f"{task['pipeline_version'][:8]}, git {sha})"
        )

    def grow(branch: Tree, sha: str, depth: int, seen: set[str]) -> None:
        if depth > 20 or sha in seen:
            return
        seen = seen | {sha}
        step = "produced" if data["direction"] == "upstream" else "consumed"
        for edge in by_artifact.get(sha, []):
            if edge["direction"] != step:
                continue
            task = runs[edge["task_run"]]
            node = branch.add(task_label(task))
            follow = "consumed" if data["direction"] == "upstream" else "produced"
            for other in data["edges"]:
                if other["task_run"] == edge["task_run"] and other["direction"] == follow:
                    grow(node.add(label(other["artifact"])), other["artifact"], depth + 1, seen)

    grow(tree.add(label(data["root"])), data["root"], 0, set())
    footer = Text(
        f"dataset versions: {', '.join(data['dataset_versions']) or 'none'}; "
        f"git: {', '.join(s[:10] for s in data['git_shas']) or 'none'}",
        style="dim",
    )
    tree.add(footer)
    return tree
