"""The inline executor: runs each invocation in the calling thread, one at a time.

It is the simplest executor and the fastest for tiny tasks, but it cannot stop
a running function: a task that exceeds its timeout is recorded as timed out
only once it returns (a one-time warning says so).
"""

from __future__ import annotations

import time
import warnings
from collections import deque

from lockgate.errors import LockgateWarning
from lockgate.executors.invoke import execute
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import ErrorInfo, ExecutorEvent, Finished, Invocation, Outcome, Started


class InlineExecutor:
    """`Executor` that runs invocations in the coordinator's thread."""

    name = "inline"

    def __init__(self, store: ArtifactStore) -> None:
        """Run invocations against `store`."""
        self.store = store
        self._queue: deque[Invocation] = deque()
        self._started: Invocation | None = None
        self._cancelled: set[str] = set()
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
        """Announce the next invocation, or run the announced one.

        Starting and finishing are reported by separate polls so that the
        coordinator records the attempt as running before user code runs.
        """
        if self._started is not None:
            invocation, self._started = self._started, None
            return [Finished(execute(invocation, self.store))]
        while self._queue:
            invocation = self._queue.popleft()
            if invocation.key in self._cancelled:
                now = time.time()
                error = ErrorInfo(
                    "lockgate.Cancelled", "cancelled before it started", retryable=False, user=False
                )
                return [Finished(Outcome(invocation.key, now, now, error=error))]
            self._started = invocation
            return [Started(invocation.key, time.time())]
        if timeout > 0:
            time.sleep(timeout)
        return []

    def cancel(self, key: str) -> None:
        """Drop a queued invocation; one that is running cannot be stopped."""
        self._cancelled.add(key)

    def close(self) -> None:
        """Forget queued invocations."""
        self._queue.clear()
        self._started = None
