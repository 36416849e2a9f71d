"""Live progress of a run on the terminal: each node's state, counts, elapsed time.

On a terminal it redraws a Rich table in place; elsewhere (CI logs, pipes) it
prints one line per state change so logs stay readable.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lockgate.model.states import RunState, TaskState

STYLES = {
    "pending": "dim",
    "queued": "cyan",
    "running": "bold blue",
    "retrying": "yellow",
    "succeeded": "green",
    "cached": "green",
    "failed": "bold red",
    "skipped": "magenta",
    "cancelled": "red",
    "gate_failed": "bold red",
}


def styled(state: str) -> Text:
    """A state name in its colour."""
    return Text(state, style=STYLES.get(state, ""))


class Progress:
    """A `RunListener` that draws the run's progress."""

    def __init__(
        self, console: Console, pipeline: str, node_ids: list[str], *, quiet: bool = False
    ) -> None:
        """Prepare the display for `node_ids` (in execution order); `quiet` shows nothing."""
        self.console = console
        self.quiet = quiet
        self.pipeline = pipeline
        self.states: dict[str, str] = dict.fromkeys(node_ids, TaskState.PENDING.value)
        self.attempts: dict[str, int] = dict.fromkeys(node_ids, 0)
        self.items: dict[str, dict[int, str]] = {}
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.run_id = ""
        self.run_state = RunState.QUEUED.value
        self.t0 = time.monotonic()
        self.live: Live | None = None

    def __enter__(self) -> Progress:
        if self.console.is_terminal and not self.quiet:
            self.live = Live(
                self._render(),
                console=self.console,
                refresh_per_second=8,
                transient=False,
                get_renderable=self._render,
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.update(self._render(), refresh=True)
            self.live.__exit__(*exc)

    def on_run(self, *, run_id: str, state: RunState, at: float, **_: Any) -> None:
        """Record the run's new state."""
        if not self.run_id:
            self.run_id = run_id
            if self.live is None and not self.quiet:
                self.console.print(f"run {run_id} ({self.pipeline}) {state.value}")
        self.run_state = state.value

    def on_task(
        self,
        *,
        node_id: str,
        map_index: int | None,
        state: TaskState,
        attempt: int,
        error: str | None,
        **_: Any,
    ) -> None:
        """Record a node's (or map item's) new state."""
        now = time.monotonic()
        if map_index is not None:
            self.items.setdefault(node_id, {})[map_index] = state.value
            self.attempts[node_id] = max(self.attempts.get(node_id, 0), attempt)
        else:
            self.states[node_id] = state.value
            if attempt:
                self.attempts[node_id] = attempt
        if state in (TaskState.QUEUED, TaskState.RUNNING):
            self.started.setdefault(node_id, now)
        if state.terminal and map_index is None:
            self.ended[node_id] = now
        if self.live is None and not self.quiet:
            label = node_id + (f"[{map_index}]" if map_index is not None else "")
            attempt_text = f" (attempt {attempt})" if attempt > 1 else ""
            suffix = f": {error}" if error else ""
            self.console.print(
                f"  {label} {state.value}{attempt_text}{suffix}", markup=False, highlight=False
            )

    def _elapsed(self, node_id: str) -> str:
        start = self.started.get(node_id)
        if start is None:
            return ""
        return f"{self.ended.get(node_id, time.monotonic()) - start:.2f}s"

    def _render(self) -> Group:
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        header = Text.assemble(
            (f"run {self.run_id or '…'} ", "bold"),
            (f"{self.pipeline}  ", ""),
            styled(self.run_state),
            (f"  {time.monotonic() - self.t0:.1f}s  ", "dim"),
            "  ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        )
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("node")
        table.add_column("state")
        table.add_column("attempts", justify="right")
        table.add_column("elapsed", justify="right")
        for node_id, state in self.states.items():
            items = self.items.get(node_id)
            state_text = styled(state)
            if items:
                done = sum(1 for s in items.values() if s in ("succeeded", "cached"))
                state_text.append(f" {done}/{len(items)} items", style="dim")
            table.add_row(
                node_id, state_text, str(self.attempts.get(node_id) or ""), self._elapsed(node_id)
            )
        return Group(header, table)
