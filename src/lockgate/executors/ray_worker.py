"""The Ray side of the Ray executor: one task invocation inside a Ray worker process.

`run_job` is what each Ray task runs. It gets a `Job` (refs and small inline
values, as the process executor sends), the task and the artifact-store
factory as object refs wrapped in lists (so Ray hands over the refs, not
their values), and the executor's mailbox actor. Ray worker processes live
on, so a worker unpickles each task and opens each store once and keeps
them; later jobs skip straight to the user's function.

Right before user code, the worker tells the mailbox `started(key, at)`
without waiting for an answer: that is how the coordinator learns that a
queued invocation is running (for its timeout and the run's display), which
Ray itself does not report without its dashboard.

Inputs are loaded from and outputs written to the artifact store here, on
the worker's machine; only the `Outcome` (with refs) goes back through Ray.
Output is captured at the Python level, one log file per attempt under the
logs root, as the inline executor does: a Ray worker's file descriptors
belong to Ray's own logging.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lockgate.executors.capture import Capture
from lockgate.executors.channel import WORKER_TASK_CACHE, Job, loads
from lockgate.executors.invoke import execute
from lockgate.model.task import Task
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import ErrorInfo, Outcome

# Per Ray worker process, kept across jobs.
_tasks: OrderedDict[str, Task | ErrorInfo] = OrderedDict()
_stores: dict[str, ArtifactStore] = {}
_captures: dict[str | None, Capture] = {}


def _fetch(cell: list[Any]) -> Any:
    import ray

    return ray.get(cell[0])


def _task(job: Job, task_cell: list[Any]) -> Task | ErrorInfo:
    found = _tasks.get(job.task_id)
    if found is not None:
        _tasks.move_to_end(job.task_id)
        return found
    try:
        found = loads(_fetch(task_cell))
    except Exception as exc:
        found = ErrorInfo(
            f"{type(exc).__module__}.{type(exc).__qualname__}",
            f"cannot load task {job.task_name!r} in a Ray worker: {exc}; the modules it uses "
            "must be importable on every node (same Python, same packages)",
            traceback.format_exc(),
            retryable=False,
            user=True,
        )
    _tasks[job.task_id] = found
    while len(_tasks) > WORKER_TASK_CACHE:
        _tasks.popitem(last=False)
    return found


def _store(store_id: str, store_cell: list[Any]) -> ArtifactStore:
    store = _stores.get(store_id)
    if store is None:
        factory: Callable[[], ArtifactStore] = loads(_fetch(store_cell))
        store = _stores[store_id] = factory()
    return store


def _usable(logs_root: str | None) -> str | None:
    """`logs_root` if this node can write there, else None (output stays in Ray's logs).

    The path is the coordinator's; on another machine it may not be creatable,
    and a task must not fail on its first print for that.
    """
    if logs_root is None:
        return None
    try:
        Path(logs_root).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"lockgate: not capturing task output under {logs_root}: {exc}", file=sys.stderr)
        return None
    return logs_root if os.access(logs_root, os.W_OK) else None


def run_job(
    job: Job,
    task_cell: list[Any],
    store_id: str,
    store_cell: list[Any],
    logs_root: str | None,
    mailbox: Any,
) -> Outcome:
    """Run one invocation in this Ray worker and return its `Outcome`.

    Never raises for task or store failures: they become the outcome's error.
    A worker that dies (killed, out of memory) raises in the coordinator's
    `ray.get` instead, which the executor turns into a failed attempt.
    """
    now = time.time()
    if job.sys_path is not None:
        sys.path[:0] = [entry for entry in job.sys_path if entry not in sys.path]
    task = _task(job, task_cell)
    if isinstance(task, ErrorInfo):
        return Outcome(job.key, now, time.time(), error=task)
    try:
        store = _store(store_id, store_cell)
    except Exception as exc:
        error = ErrorInfo(
            f"{type(exc).__module__}.{type(exc).__qualname__}",
            f"a Ray worker on pid {os.getpid()} cannot open the artifact store: {exc}",
            traceback.format_exc(),
            retryable=True,
            user=False,
        )
        return Outcome(job.key, now, time.time(), error=error)
    invocation = job.invocation(task)
    capture = _captures.get(logs_root)
    if capture is None:
        capture = _captures[logs_root] = Capture(_usable(logs_root))
    mailbox.started.remote(job.key, time.time())
    with capture.attempt(invocation):
        return execute(invocation, store)


class Mailbox:
    """A Ray actor that collects `(key, started_at)` reports for the coordinator.

    Async, so a coordinator's long-poll (`drain`) and the workers' reports
    (`started`) interleave on one event loop without threads.
    """

    def __init__(self) -> None:
        """Start empty."""
        import asyncio

        self._reports: list[tuple[str, float]] = []
        self._arrived = asyncio.Event()

    async def started(self, key: str, at: float) -> None:
        """Record that user code of invocation `key` started at `at` (epoch seconds)."""
        self._reports.append((key, at))
        self._arrived.set()

    async def drain(self, wait: float) -> list[tuple[str, float]]:
        """The reports since the last drain, waiting up to `wait` seconds for the first."""
        import asyncio

        if not self._reports:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), wait)
        self._arrived.clear()
        reports, self._reports = self._reports, []
        return reports
