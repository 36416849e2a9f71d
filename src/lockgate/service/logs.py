"""Reading captured task output: per attempt, whole, or followed as it grows."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lockgate.errors import NodeNotFoundError
from lockgate.model.states import AttemptState
from lockgate.ports.logs import log_relpath
from lockgate.service.compose import Workspace

_OPEN = (AttemptState.QUEUED, AttemptState.RUNNING)


@dataclass(frozen=True, slots=True)
class AttemptLog:
    """Where one attempt's output is, and whether the attempt may still write to it."""

    label: str
    attempt: int
    path: Path
    open: bool

    def read(self) -> str:
        """Everything captured so far ("" when the attempt printed nothing)."""
        try:
            return self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def attempt_logs(
    workspace: Workspace, run_id: str, node: str | None = None, attempt: int | None = None
) -> list[AttemptLog]:
    """The log of every attempt of the run, or of one node (`node` or `node[i]`).

    Raises:
        NodeNotFoundError: no attempt matches the node or attempt number.
    """
    run = workspace.metadata.get_run(run_id)
    root = Path(workspace.settings.logs_root)
    found = []
    for record in workspace.metadata.attempts(run.id):
        label = record.node_id + (f"[{record.map_index}]" if record.map_index is not None else "")
        if node is not None and node not in (label, record.node_id):
            continue
        if attempt is not None and record.number != attempt:
            continue
        path = root / log_relpath(run.id, record.node_id, record.map_index, record.number)
        found.append(AttemptLog(label, record.number, path, record.state in _OPEN))
    if not found and (node is not None or attempt is not None):
        what = f"node {node!r}" if node else "the run"
        which = f" attempt {attempt}" if attempt is not None else ""
        raise NodeNotFoundError(
            f"run {run.id} has no{which} attempt of {what}; `lockgate show {run.id}` lists them"
        )
    return found


def follow(
    workspace: Workspace,
    run_id: str,
    node: str | None = None,
    attempt: int | None = None,
    *,
    poll: float = 0.3,
) -> Iterator[tuple[AttemptLog, str]]:
    """Yield (attempt, new text) as output appears, until the run ends and all is read."""
    offsets: dict[Path, int] = {}
    while True:
        run_done = workspace.metadata.get_run(run_id).status.terminal
        try:
            logs = attempt_logs(workspace, run_id, node, attempt)
        except NodeNotFoundError:
            if run_done:
                raise
            logs = []
        for log in logs:
            try:
                with log.path.open("rb") as handle:
                    handle.seek(offsets.get(log.path, 0))
                    chunk = handle.read()
            except FileNotFoundError:
                continue
            if chunk:
                offsets[log.path] = offsets.get(log.path, 0) + len(chunk)
                yield log, chunk.decode("utf-8", errors="replace")
        if run_done:
            return
        time.sleep(poll)
