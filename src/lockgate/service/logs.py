"""Reading captured task output: per attempt, whole, or followed as it grows.

Two layouts: the process executor's workers append every attempt to one log
file per worker and record each attempt's byte range (`LogSpan`); the inline
executor writes one file per attempt under the logs root (`log_relpath`).
"""

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
    """Where one attempt's output is, and whether the attempt may still write to it.

    Attributes:
        start, end: the byte range of `path` that is this attempt's; `end` None
            means up to the end of the file.
    """

    label: str
    attempt: int
    path: Path
    open: bool
    start: int = 0
    end: int | None = None

    def read_from(self, offset: int = 0) -> bytes:
        """This attempt's bytes from `offset` (relative to its start) on."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.start + offset)
                if self.end is None:
                    return handle.read()
                return handle.read(max(0, self.end - self.start - offset))
        except FileNotFoundError:
            return b""

    def read(self) -> str:
        """Everything captured so far ("" when the attempt printed nothing)."""
        return self.read_from().decode("utf-8", errors="replace")


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
        is_open = record.state in _OPEN
        if record.log is not None:
            found.append(
                AttemptLog(
                    label,
                    record.number,
                    Path(record.log.path),
                    is_open,
                    record.log.start,
                    record.log.end,
                )
            )
        else:
            path = root / log_relpath(run.id, record.node_id, record.map_index, record.number)
            found.append(AttemptLog(label, record.number, path, is_open))
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
    read: dict[tuple[str, int], int] = {}
    while True:
        run_done = workspace.metadata.get_run(run_id).status.terminal
        try:
            logs = attempt_logs(workspace, run_id, node, attempt)
        except NodeNotFoundError:
            if run_done:
                raise
            logs = []
        for log in logs:
            key = (log.label, log.attempt)
            chunk = log.read_from(read.get(key, 0))
            if chunk:
                read[key] = read.get(key, 0) + len(chunk)
                yield log, chunk.decode("utf-8", errors="replace")
        if run_done:
            return
        time.sleep(poll)
