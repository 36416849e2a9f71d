"""Lineage: walk from an artifact to what it was made from, or to what was made from it.

The walk follows the recorded edges: artifact -> the task runs that produced
it -> the artifacts they consumed -> ... (upstream), or the reverse
(downstream). Every task run brings its run's code version (pipeline
version, Git SHA, dirty flag); every artifact brings the named versions it
is (`dataset:transcripts@7`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lockgate.errors import LockgateError
from lockgate.model.versions import parse_version_ref
from lockgate.ports.artifacts import URI_PREFIX
from lockgate.ports.metadata import LineageEdge, RunRecord
from lockgate.service.compose import Workspace


@dataclass
class LineageGraph:
    """Artifacts and task runs reached from a starting artifact, with the edges between."""

    root: str
    direction: str
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    edges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dataset_versions(self) -> list[str]:
        """Every dataset version in the graph."""
        return sorted(
            v for a in self.artifacts.values() for v in a["versions"] if v.startswith("dataset:")
        )

    @property
    def git_shas(self) -> list[str]:
        """Every Git commit of the runs in the graph."""
        return sorted({t["git_sha"] for t in self.task_runs.values() if t["git_sha"]})

    def to_dict(self) -> dict[str, Any]:
        """JSON data."""
        return {
            "root": self.root,
            "direction": self.direction,
            "artifacts": list(self.artifacts.values()),
            "task_runs": list(self.task_runs.values()),
            "edges": self.edges,
            "dataset_versions": self.dataset_versions,
            "git_shas": self.git_shas,
        }


def resolve_artifact(workspace: Workspace, text: str) -> str:
    """The sha256 a reference names: a URI, `sha256:<hex>`, hex, or `kind:name@version`.

    Raises:
        LockgateError: the reference is malformed or names nothing recorded.
    """
    if text.startswith(("dataset:", "model:", "prompt:")):
        ref = parse_version_ref(text)
        found = workspace.metadata.resolve_version(ref.kind, ref.name, ref.version)
        if found is None:
            raise LockgateError(
                f"{text} does not exist; `lockgate {ref.kind}s list` shows what does"
            )
        return found.ref.sha256
    from lockgate.service.artifacts import find_artifact

    return find_artifact(workspace, text).ref.sha256


def walk(
    workspace: Workspace, sha256: str, *, downstream: bool = False, limit: int = 10_000
) -> LineageGraph:
    """Collect the ancestry (or the descendants) of one artifact."""
    store = workspace.metadata
    graph = LineageGraph(root=sha256, direction="downstream" if downstream else "upstream")
    runs: dict[str, RunRecord] = {}
    frontier = [sha256]
    seen_artifacts: set[str] = set()
    seen_runs: set[int] = set()
    while frontier and len(graph.artifacts) < limit:
        sha = frontier.pop()
        if sha in seen_artifacts:
            continue
        seen_artifacts.add(sha)
        graph.artifacts[sha] = {
            "sha256": sha,
            "uri": URI_PREFIX + sha,
            "versions": [v.label for v in store.versions_of_artifact(sha)],
        }
        step = "consumed" if downstream else "produced"
        task_run_ids = [e.task_run_id for e in store.lineage(sha) if e.direction == step]
        fresh = [t for t in task_run_ids if t not in seen_runs]
        seen_runs.update(fresh)
        for edge in store.task_run_edges(fresh):
            _add_task_run(store, graph, runs, edge)
            if edge.direction == ("produced" if downstream else "consumed"):
                frontier.append(edge.sha256)
                graph.edges.append(_edge(edge))
            elif edge.sha256 == sha:
                graph.edges.append(_edge(edge))
    return graph


def _edge(edge: LineageEdge) -> dict[str, Any]:
    return {"task_run": edge.task_run_id, "artifact": edge.sha256, "direction": edge.direction}


def _add_task_run(
    store: Any, graph: LineageGraph, runs: dict[str, RunRecord], edge: LineageEdge
) -> None:
    if edge.task_run_id in graph.task_runs:
        return
    run = runs.get(edge.run_id)
    if run is None:
        run = runs[edge.run_id] = store.get_run(edge.run_id)
    graph.task_runs[edge.task_run_id] = {
        "task_run": edge.task_run_id,
        "run_id": edge.run_id,
        "node": edge.node_id + (f"[{edge.map_index}]" if edge.map_index is not None else ""),
        "pipeline": run.pipeline,
        "pipeline_version": run.pipeline_version,
        "git_sha": run.git_sha,
        "git_dirty": run.git_dirty,
    }


def lineage_completeness(workspace: Workspace) -> dict[str, Any]:
    """Share of registered model versions whose ancestry reaches a dataset version and a Git SHA.

    Returns:
        {"complete": n, "total": m, "ratio": n / m (None without models),
         "incomplete": [model versions lacking one, with what they lack]}.
    """
    models = workspace.metadata.list_versions("model", limit=100_000)
    incomplete = []
    for model in models:
        graph = walk(workspace, model.ref.sha256)
        missing = []
        if not graph.dataset_versions:
            missing.append("no dataset version upstream")
        if not graph.git_shas:
            missing.append("no Git SHA recorded")
        if missing:
            incomplete.append({"model": model.label, "missing": missing})
    total = len(models)
    complete = total - len(incomplete)
    return {
        "complete": complete,
        "total": total,
        "ratio": (complete / total) if total else None,
        "incomplete": incomplete,
    }
