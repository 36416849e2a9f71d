"""Calling monitoring hooks from the coordinator, after each change commits.

A `HookCaller` exists only for a run whose pipeline or tasks have hooks, so
runs without hooks pay nothing. Every hook is called with keyword-only
arguments (`HOOK_KWARGS`); one that raises is logged and recorded as a
`hook_failed` event on the run (payload: hook, on, node, error), and the run
carries on exactly as if the hook had returned.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Mapping
from typing import Any

from lockgate.model.graph import Graph
from lockgate.model.hooks import Hook, hook_name
from lockgate.model.pipeline import Pipeline
from lockgate.model.states import EventKind, RunState, TaskState
from lockgate.ports.clock import Clock
from lockgate.ports.metadata import MetadataStore

log = logging.getLogger("lockgate.hooks")

#: The longest error text a `hook_failed` event keeps.
MAX_ERROR = 2000


def wants_hooks(pipeline: Pipeline) -> bool:
    """True when the pipeline or any of its tasks has a hook."""
    return bool(pipeline.options.hooks) or any(node.task.hooks for node in pipeline.graph)


class HookCaller:
    """The hooks of one run, called by its driver."""

    def __init__(
        self,
        store: MetadataStore,
        clock: Clock,
        pipeline: Pipeline,
        run_id: str,
        params: Mapping[str, Any],
    ) -> None:
        """Bind the run's context; `params` are the run's parameters in JSON form."""
        self.store = store
        self.clock = clock
        self.pipeline = pipeline
        self.graph: Graph = pipeline.graph
        self.run_id = run_id
        self.params = dict(params)

    def task(
        self,
        node_id: str,
        map_index: int | None,
        task_run_id: int,
        state: TaskState,
        attempt: int,
        error: str | None,
        gate_failed: bool,
    ) -> None:
        """A task run entered `state` (committed): call the hooks that watch it."""
        if state in (TaskState.SUCCEEDED, TaskState.CACHED):
            which = "on_success"
        elif state is TaskState.FAILED:
            which = "on_failure"
        elif state is TaskState.RETRYING:
            which = "on_retry"
        else:
            return
        node = self.graph.nodes[node_id]
        context = {
            "status": state.value,
            "node_id": node_id,
            "task": node.task.name,
            "map_index": map_index,
            "attempt": attempt or None,
            "error": error,
            "gate": None,
            "at": self.clock.now(),
        }
        self._call(node.task.hooks.of(which), which, context, task_run_id)
        if which == "on_retry":
            self._call(self.pipeline.options.hooks.on_retry, which, context, task_run_id)
        if gate_failed and map_index is None:
            self._gate_failed(node_id, task_run_id, attempt, error)

    def _gate_failed(self, gate: str, task_run_id: int, attempt: int, error: str | None) -> None:
        base = {
            "status": TaskState.FAILED.value,
            "map_index": None,
            "attempt": attempt or None,
            "error": error,
            "gate": gate,
            "at": self.clock.now(),
        }
        watched = self.graph.nodes[gate]
        self._call(
            self.pipeline.options.hooks.on_gate_failed,
            "on_gate_failed",
            {**base, "node_id": gate, "task": watched.task.name},
            task_run_id,
        )
        # A task's on_gate_failed fires for gates downstream of it: the gates
        # that judged what it produced.
        for node in self.graph:
            if node.task.hooks.on_gate_failed and gate in self.graph.descendants(node.id):
                self._call(
                    node.task.hooks.on_gate_failed,
                    "on_gate_failed",
                    {**base, "node_id": node.id, "task": node.task.name},
                    None,
                )

    def run(self, state: RunState, error: str | None) -> None:
        """The run ended in `state` (committed): call the pipeline's hooks."""
        if state is RunState.SUCCEEDED:
            which = "on_success"
        elif state in (RunState.FAILED, RunState.GATE_FAILED):
            which = "on_failure"
        else:
            return
        context = {
            "status": state.value,
            "node_id": None,
            "task": None,
            "map_index": None,
            "attempt": None,
            "error": error,
            "gate": None,
            "at": self.clock.now(),
        }
        self._call(self.pipeline.options.hooks.of(which), which, context, None)

    def _call(
        self,
        hooks: tuple[Hook, ...],
        which: str,
        context: Mapping[str, Any],
        task_run_id: int | None,
    ) -> None:
        for hook in hooks:
            kwargs = {
                "hook": which,
                "run_id": self.run_id,
                "pipeline": self.pipeline.name,
                "params": dict(self.params),
                **context,
            }
            try:
                hook(**kwargs)
            except Exception as exc:  # a hook never changes the run's outcome
                self._failed(hook, which, context, task_run_id, exc)

    def _failed(
        self,
        hook: Hook,
        which: str,
        context: Mapping[str, Any],
        task_run_id: int | None,
        exc: Exception,
    ) -> None:
        name = hook_name(hook)
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:MAX_ERROR]
        log.warning("%s hook %s of run %s raised: %s", which, name, self.run_id, text)
        try:
            self.store.record_event(
                self.run_id,
                EventKind.HOOK_FAILED,
                self.clock.now(),
                task_run_id=task_run_id,
                payload={
                    "hook": name,
                    "on": which,
                    "node": context.get("node_id"),
                    "error": text,
                },
            )
        except Exception:  # recording is best effort; the run goes on regardless
            log.exception("could not record the failure of hook %s", name)
