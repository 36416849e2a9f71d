"""The inline executor: runs each invocation in the calling thread, one at a time.

It is the simplest executor and the cheapest for tiny tasks, but it cannot
stop a running function: a task that exceeds its timeout is recorded as timed
out only once it returns (a warning per run says so). Output is captured at
the Python level (print, sys.stderr, logging), not at the file-descriptor level.
"""

from __future__ import annotations

import time
import warnings
from collections import deque

from lockgate.errors import LockgateWarning
from lockgate.executors.capture import Capture
from lockgate.executors.invoke import execute
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import (
    ErrorInfo,
    ExecutorEvent,
    Finished,
    Invocation,
    Outcome,
    Started,
)


class InlineExecutor:
    """`Executor` that runs invocations in the coordinator's thread."""

    name = "inline"

    def __init__(self, store: ArtifactStore, *, logs_root: str | None = None) -> None:
        """Run invocations against `store`, capturing output under `logs_root`."""
        self.store = store
        self._capture = Capture(logs_root)
        self._queue: deque[Invocation] = deque()
        self._running: Invocation | None = None
        self._cancelled: list[str] = []
        self._warned_timeout = False

    def submit(self, invocation: Invocation) -> None:
        """Queue the invocation; it runs during a later `poll`."""
        if invocation.timeout is not None and not self._warned_timeout:
            self._warned_timeout = True
            warnings.warn(
                f"task {invocation.task.name!r} has a timeout, which the inline executor "
                "cannot enforce while the function runs: an overrun is recorded as timed_out "
                "after it returns. Use the process executor to stop hung tasks.",
                LockgateWarning,
                stacklevel=2,
            )
        self._queue.append(invocation)

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        """Report cancellations, or run the next invocation and report its start and end.

        Both events of one invocation come back together: the coordinator has
        already recorded it as queued, and one commit then covers its start and
        its result.
        """
        if self._cancelled:
            now = time.time()
            error = ErrorInfo("lockgate.Cancelled", "cancelled", retryable=False, user=False)
            events: list[ExecutorEvent] = [
                Finished(Outcome(key, now, now, error=error)) for key in self._cancelled
            ]
            self._cancelled.clear()
            return events
        if self._queue:
            invocation = self._queue.popleft()
            self._running = invocation
            started = time.time()
            with self._capture.attempt(invocation):
                outcome = execute(invocation, self.store)
            self._running = None
            return [Started(invocation.key, started), Finished(outcome)]
        if timeout > 0:
            time.sleep(timeout)
        return []

    def cancel(self, key: str) -> None:
        """Drop a queued invocation, or give up one interrupted mid-run (Ctrl-C)."""
        queued = [inv for inv in self._queue if inv.key == key]
        interrupted = self._running is not None and self._running.key == key
        if queued or interrupted:
            self._queue = deque(inv for inv in self._queue if inv.key != key)
            if interrupted:
                self._running = None
            self._cancelled.append(key)

    def close(self) -> None:
        """Forget queued invocations and stop capturing logs."""
        self._queue.clear()
        self._running = None
        self._capture.close()
