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
