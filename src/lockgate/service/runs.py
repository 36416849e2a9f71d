"""Run use cases: start a run, and read one back as a `RunResult`."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lockgate.engine.coordinator import Coordinator, RunSpec
from lockgate.engine.listener import Listeners, RunListener
from lockgate.errors import NodeNotFoundError, RunFailedError
from lockgate.model.pipeline import Pipeline
from lockgate.model.refs import NodeRef, ParamRef, Ref, decode, substitute
from lockgate.model.states import RunState, TaskState, Trigger
from lockgate.ports.executor import Executor
from lockgate.ports.metadata import AttemptRecord, RunRecord, TaskRunRecord
from lockgate.service.compose import Workspace
from lockgate.service.gitinfo import git_state
from lockgate.service.loader import LOADED_BY_PATH
from lockgate.service.openlineage import OpenLineageEmitter


@dataclass(frozen=True, slots=True)
class NodeResult:
    """Where one node of a finished (or running) run stands.

    Attributes:
        node_id: the node.
        state: its state.
        attempts: attempts made (for a map node, summed over its items).
        error: the last error summary, if it failed.
        items: task runs of a map node's items, in order.
    """

    node_id: str
    state: TaskState
    attempts: int
    error: str | None = None
    items: tuple[TaskRunRecord, ...] = ()


@dataclass
class RunResult:
    """A run as stored: status, per-node states, and outputs loaded on demand."""

    record: RunRecord
    nodes: dict[str, NodeResult]
    workspace: Workspace = field(repr=False)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.record.id

    @property
    def status(self) -> RunState:
        """The run's state."""
        return self.record.status

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.record.status is RunState.SUCCEEDED

    def raise_for_status(self) -> RunResult:
        """Return self if the run succeeded.

        Raises:
            RunFailedError: with the run id, its status and the first failure.
        """
        if not self.ok:
            raise RunFailedError(
                f"run {self.run_id} ({self.record.pipeline}) ended {self.status.value}: "
                f"{self.record.error or 'see `lockgate show ' + self.run_id + '`'}"
            )
        return self

    def output(self, node_id: str | None = None) -> Any:
        """Load a node's output, or (no argument) the pipeline's return value.

        Raises:
            NodeNotFoundError: the run has no such node.
            RunFailedError: the node has no committed output.
        """
        if node_id is None:
            graph = self.workspace.metadata.run_graph(self.run_id)
            params = dict(self.record.params)

            def one(ref: Ref) -> Any:
                if isinstance(ref, NodeRef):
                    return self.output(ref.node)
                if isinstance(ref, ParamRef):
                    return params[ref.name]
                return str(ref)  # a version the pipeline returned unchanged

            return substitute(decode(graph["output"]), one)
        return load_output(self.workspace, self.run_id, node_id)


def small_output(workspace: Workspace, run_id: str, limit: int = 1024) -> tuple[bool, Any]:
    """The pipeline's return value if it is one node's JSON output of at most `limit` bytes.

    Returns:
        (True, value) when small enough to print, else (False, None). Nothing
        large and nothing pickled is loaded.
    """
    output = decode(workspace.metadata.run_graph(run_id)["output"])
    if not isinstance(output, NodeRef):
        return False, None
    for record in workspace.metadata.task_runs(run_id, output.node):
        if record.map_index is None:
            ref = record.output
            if ref is not None and ref.serializer == "json" and ref.size <= limit:
                return True, _load(workspace, record)
    return False, None


def load_output(workspace: Workspace, run_id: str, node_id: str) -> Any:
    """Load the committed output of `node_id` in run `run_id` (a list for map nodes)."""
    records = workspace.metadata.task_runs(run_id, node_id)
    if not records:
        known = sorted({r.node_id for r in workspace.metadata.task_runs(run_id)})
        raise NodeNotFoundError(
            f"run {run_id} has no node {node_id!r}; its nodes: {', '.join(known)}"
        )
    whole = next(r for r in records if r.map_index is None)
    if not whole.state.done_ok:
        raise RunFailedError(
            f"node {node_id!r} of run {run_id} is {whole.state.value} and has no output"
        )
    items = sorted((r for r in records if r.map_index is not None), key=lambda r: r.map_index or 0)
    if items or whole.output is None:
        return [_load(workspace, r) for r in items]
    return _load(workspace, whole)


def _load(workspace: Workspace, record: TaskRunRecord) -> Any:
    if record.output is None:
        raise RunFailedError(f"task run {record.label} of run {record.run_id} has no output")
    stored = workspace.metadata.get_artifact(record.output.sha256)
    trusted = stored is not None and stored.origin == "task"
    return workspace.artifacts.get(
        record.output,
        trusted=trusted,
        what=f"output of node {record.label!r} (run {record.run_id})",
    )


def read_run(workspace: Workspace, run_id: str) -> RunResult:
    """Read a stored run back as a `RunResult`."""
    record = workspace.metadata.get_run(run_id)
    items: dict[str, list[TaskRunRecord]] = {}
    wholes = []
    for task_run in workspace.metadata.task_runs(record.id):
        if task_run.map_index is None:
            wholes.append(task_run)
        else:
            items.setdefault(task_run.node_id, []).append(task_run)
    nodes: dict[str, NodeResult] = {}
    for whole in wholes:
        mine = tuple(items.get(whole.node_id, ()))
        attempts = sum(i.attempts for i in mine) if mine else whole.attempts
        nodes[whole.node_id] = NodeResult(whole.node_id, whole.state, attempts, whole.error, mine)
    return RunResult(record, nodes, workspace)


def attempts_by_task_run(workspace: Workspace, run_id: str) -> dict[int, list[AttemptRecord]]:
    """The run's attempts grouped by task run id."""
    grouped: dict[int, list[AttemptRecord]] = {}
    for attempt in workspace.metadata.attempts(run_id):
        grouped.setdefault(attempt.task_run_id, []).append(attempt)
    return grouped


def pipeline_ref_of(pipeline: Pipeline) -> str | None:
    """How `lockgate resume` can load this pipeline's code again, if it can.

    A pipeline defined at module level of a file is `/abs/path.py:NAME`; of an
    importable module, `module:NAME`. One defined inside a function (or in an
    interactive session) cannot be loaded again: None.
    """
    fn = pipeline.fn
    if "<locals>" in fn.__qualname__:
        return None
    module = sys.modules.get(fn.__module__)
    filename = getattr(module, "__file__", None)
    if module is None or filename is None:
        return None
    if fn.__module__ == "__main__" or getattr(module, "__spec__", None) is None:
        return f"{Path(filename).resolve()}:{pipeline.name}"
    if getattr(module, LOADED_BY_PATH, False):
        return f"{Path(filename).resolve()}:{pipeline.name}"
    return f"{fn.__module__}:{pipeline.name}"


def coordinator(
    workspace: Workspace, executor: Executor, listener: RunListener | None
) -> Coordinator:
    """A coordinator wired to the workspace's metadata store and settings."""
    return Coordinator(
        workspace.metadata,
        executor,
        listener=listener,
        heartbeat_interval=workspace.settings.heartbeat_interval,
        artifacts=workspace.artifacts,
        pools=workspace.project.pools,
        stale_after=workspace.settings.heartbeat_timeout,
    )


def lineage_listener(workspace: Workspace, listener: RunListener | None) -> RunListener | None:
    """`listener`, plus an OpenLineage emitter when lockgate.toml turns one on."""
    project = workspace.project
    if not project.openlineage.enabled:
        return listener
    emitter = OpenLineageEmitter(workspace.metadata, project.openlineage, config=project.path)
    return Listeners(listener, emitter)


def start_run(
    pipeline: Pipeline,
    params: Mapping[str, Any],
    *,
    workspace: Workspace,
    executor: str | None = None,
    workers: int | None = None,
    trigger: Trigger = Trigger.PYTHON,
    listener: RunListener | None = None,
    no_cache: bool = False,
    pipeline_ref: str | None = None,
) -> RunResult:
    """Run `pipeline` with already-bound `params` to a terminal state.

    The Git commit of the file that defines the pipeline, and how to load the
    pipeline again (for resume), are recorded with the run.
    """
    listener = lineage_listener(workspace, listener)
    try:
        source = inspect.getsourcefile(pipeline.fn)
    except TypeError:
        source = None
    git_sha, git_dirty = git_state(source) if source else (None, None)
    runner = workspace.executor(executor, workers=workers, pipeline=pipeline.name)
    spec = RunSpec(
        pipeline,
        params,
        trigger.value,
        git_sha=git_sha,
        git_dirty=git_dirty,
        pipeline_ref=pipeline_ref or pipeline_ref_of(pipeline),
        no_cache=no_cache,
    )
    try:
        run_id, _ = coordinator(workspace, runner, listener).run(spec)
    finally:
        runner.close()
    return read_run(workspace, run_id)


def run(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    executor: str | None = None,
    workers: int | None = None,
    cache: bool = True,
    workspace: Workspace | None = None,
    listener: RunListener | None = None,
) -> RunResult:
    """Run a pipeline from Python and wait for it to finish.

    Args:
        pipeline: a function decorated with `@lg.pipeline`.
        params: parameter values; strings are parsed to the parameter's type.
        executor: where tasks run: "process" (a pool of worker processes),
            "inline" (this thread, one task at a time) or "ray" (a Ray cluster:
            LOCKGATE_RAY_ADDRESS, else one started here); default: lockgate.toml's
            [executor] entry for the pipeline, else "process".
        workers: pool size for the process executor (default: CPU count), or
            the CPUs of a Ray instance started for the run.
        cache: reuse cached results of tasks with `cache=True` (False executes all).
        workspace: stores to use (default: from LOCKGATE_HOME / LOCKGATE_DB_URL /
            LOCKGATE_ARTIFACT_ROOT).
        listener: receives every state change (progress display).

    Returns:
        The run's result; check `.ok` or call `.raise_for_status()`.

    Raises:
        ParameterError: a parameter is unknown, missing or of the wrong type.
        DefinitionError: the pipeline cannot be traced.
    """
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"lg.run() needs an @lg.pipeline, got {pipeline!r}")
    bound = pipeline.bind(params)
    _ = pipeline.graph
    return start_run(
        pipeline,
        bound,
        workspace=workspace or Workspace(),
        executor=executor,
        workers=workers,
        trigger=Trigger.PYTHON,
        listener=listener,
        no_cache=not cache,
    )
