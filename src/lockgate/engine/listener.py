"""How the coordinator reports progress to whoever is watching (CLI, tests).

Listener methods take keyword-only arguments and must accept `**future`, so
new fields can be added without breaking existing listeners.
"""

from __future__ import annotations

from typing import Any, Protocol

from lockgate.model.states import RunState, TaskState


class RunListener(Protocol):
    """Receives every state change of one run, after it is committed."""

    def on_run(self, *, run_id: str, state: RunState, at: float, **future: Any) -> None:
        """The run entered `state`."""
        ...

    def on_task(
        self,
        *,
        run_id: str,
        node_id: str,
        map_index: int | None,
        state: TaskState,
        attempt: int,
        at: float,
        error: str | None,
        **future: Any,
    ) -> None:
        """A task run (a node, or one item of a map node) entered `state`."""
        ...


class NullListener:
    """A listener that ignores everything."""

    def on_run(self, **_: Any) -> None:
        """Ignore."""

    def on_task(self, **_: Any) -> None:
        """Ignore."""


class Listeners:
    """Several listeners as one: each hears every change, in order."""

    def __init__(self, *listeners: RunListener | None) -> None:
        """Combine `listeners` (None entries are dropped)."""
        self.listeners = [listener for listener in listeners if listener is not None]

    def on_run(self, **kwargs: Any) -> None:
        """Pass the run's change to every listener."""
        for listener in self.listeners:
            listener.on_run(**kwargs)

    def on_task(self, **kwargs: Any) -> None:
        """Pass the task's change to every listener."""
        for listener in self.listeners:
            listener.on_task(**kwargs)
