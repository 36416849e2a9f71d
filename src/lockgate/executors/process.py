"""The process executor: a pool of long-lived worker processes (the default executor).

Workers start lazily, up to `workers`, each a fresh interpreter (no fork of
the coordinator, which holds threads and database connections) in a new
session, so that a timeout or a cancel can kill the worker's whole process
group, grandchildren included. The coordinator side here keeps a FIFO queue,
hands a job to the first idle worker, and learns what happened from the
workers' pipes and from a sentinel per process that becomes readable when
the process exits (a pidfd on Linux).

Timeouts and cancels send SIGTERM to the group, then SIGKILL after
`kill_grace`; crashes (os._exit, a signal, the OOM killer) are seen through
the sentinel. Either way the job gets one synthesized `Finished`, the group
is killed, the process reaped, and a fresh worker takes its place.

Invariants:
- At most one `Finished` per key, and no event for a key no longer tracked
  (cancelled, finished or dropped by `close`).
- A process group is signalled only while its leader is unreaped, so a
  recycled pid is never hit.
- Nothing the workers load or produce is unpickled here; only refs and
  `Outcome`s come back (see `lockgate.executors.channel`).
- Not thread-safe: one coordinator thread calls submit/poll/cancel/close.
"""

from __future__ import annotations

import os
import pickle
import signal
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, cast

from lockgate.executors.capture import scrub
from lockgate.executors.channel import Init, Job, TaskShipper, WorkerChannel, exit_message
from lockgate.model.secrets import revealed_values
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import (
    ErrorInfo,
    ExecutorEvent,
    Finished,
    Invocation,
    LogSpan,
    Outcome,
    Started,
)

#: Consecutive workers dying before they are ready, after which queued jobs fail.
START_ATTEMPTS = 3


@dataclass(eq=False, slots=True)
class _Job:
    invocation: Invocation
    started_at: float | None = None
    log: LogSpan | None = None

    @property
    def key(self) -> str:
        return self.invocation.key

    @property
    def memory(self) -> int | None:
        return self.invocation.task.spec.resources.memory


@dataclass(eq=False, slots=True)
class _Worker:
    channel: WorkerChannel
    job: _Job | None = None
    deadline: float | None = None  # monotonic: SIGTERM the group
    kill_at: float | None = None  # monotonic: SIGKILL the group
    ending: str | None = None  # why the coordinator is ending it: "timeout", "cancel", "broken"

    @property
    def idle(self) -> bool:
        return self.channel.ready and self.job is None and self.ending is None


def _failed(key: str, started_at: float | None, error: ErrorInfo, **extra: Any) -> Finished:
    now = time.time()
    return Finished(Outcome(key, started_at or now, now, error=error, **extra))


def _cancelled(key: str, started_at: float | None = None, log: LogSpan | None = None) -> Finished:
    error = ErrorInfo("lockgate.Cancelled", "cancelled", retryable=False, user=False)
    return _failed(key, started_at, error, log=log)


def _error_type(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


class ProcessExecutor:
    """`Executor` that runs invocations in a pool of worker processes.

    Each worker opens the artifact store once (`store_factory()`), loads a
    job's inputs itself, and returns only the output ref. Tasks reach workers
    as cloudpickle bytes, sent once per worker. A task's `timeout` and
    `resources={"memory": ...}` are enforced; its output (print, logging,
    child processes) goes to `<logs_root>/<run>/<node>/<attempt>.log`.

    Workers are reused: process-wide state a task changes (environment
    variables, the working directory, imported modules) is seen by later
    tasks in the same worker.
    """

    name = "process"

    def __init__(
        self,
        store_factory: Callable[[], ArtifactStore],
        *,
        logs_root: str | None = None,
        workers: int | None = None,
        kill_grace: float = 2.0,
    ) -> None:
        """Configure the pool; no process starts before the first `submit`.

        Args:
            store_factory: picklable callable returning the artifact store, for
                example `functools.partial(open_artifact_store, root)`; each worker
                calls it once.
            logs_root: where attempt logs go; None leaves the workers' output alone.
            workers: most worker processes at once (default: the CPU count).
            kill_grace: seconds between SIGTERM and SIGKILL on timeout or cancel.

        Raises:
            TypeError: `store_factory` cannot be pickled.
            ValueError: `workers` < 1 or `kill_grace` < 0.
        """
        if os.name != "posix":
            raise OSError("the process executor needs a POSIX system; use the inline executor")
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        if kill_grace < 0:
            raise ValueError(f"kill_grace must be >= 0 seconds, got {kill_grace}")
        try:
            factory = pickle.dumps(store_factory)
        except Exception as exc:
            raise TypeError(
                f"store_factory {store_factory!r} cannot be pickled ({exc}); pass a module-level "
                "function or functools.partial(open_artifact_store, root)"
            ) from exc
        self._init = Init(factory, logs_root=logs_root)
        self._logs_root = logs_root
        self._size = workers or os.cpu_count() or 1
        self._kill_grace = kill_grace
        self._queue: deque[_Job] = deque()
        self._jobs: dict[str, _Job] = {}
        self._workers: list[_Worker] = []
        self._events: list[ExecutorEvent] = []
        self._shipper = TaskShipper()
        self._peak = 0  # pool size to restore after a worker dies
        self._start_failures = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _shutdown, self._workers, kill_grace)

    # --- the port ---------------------------------------------------------------

    def submit(self, invocation: Invocation) -> None:
        """Queue an invocation; an idle worker takes it at once, else the oldest waits first.

        Raises:
            RuntimeError: the executor is closed.
            ValueError: an invocation with the same key is already queued or running.
        """
        if self._closed:
            raise RuntimeError("this ProcessExecutor is closed; create a new one")
        if invocation.key in self._jobs:
            raise ValueError(f"invocation {invocation.key} is already queued or running")
        job = _Job(invocation)
        self._jobs[job.key] = job
        self._queue.append(job)
        self._start_failures = 0
        self._dispatch()

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        """Wait up to `timeout` seconds; return the events that arrived, in order.

        Returns as soon as there is at least one event. Timeouts are enforced
        while the coordinator polls.
        """
        end = time.monotonic() + max(0.0, timeout)
        while True:
            self._dispatch()
            now = time.monotonic()
            self._fire_timers(now)
            if self._events or self._closed:
                break
            until = min([end, *self._timers()])
            handles: list[Any] = []
            for worker in self._workers:
                handles.append(worker.channel.sentinel)
                if worker.channel.open:
                    handles.append(worker.channel.conn)
            if handles:
                ready = set(wait(handles, max(0.0, until - now)))
            else:
                ready = set()
                time.sleep(max(0.0, until - now))
            for worker in list(self._workers):
                exited = worker.channel.sentinel in ready
                if exited or worker.channel.conn in ready:
                    self._read(worker, exited=exited)
            self._dispatch()
            if self._events or time.monotonic() >= end:
                break
        events, self._events = self._events, []
        return events

    def cancel(self, key: str) -> None:
        """Drop a queued invocation, or stop a running one (SIGTERM, then SIGKILL).

        Either way one `Finished` with a `lockgate.Cancelled` error follows;
        unknown and finished keys are ignored.
        """
        job = self._jobs.get(key)
        if job is None:
            return
        if job in self._queue:
            self._queue.remove(job)
            del self._jobs[key]
            self._events.append(_cancelled(key))
            return
        for worker in self._workers:
            if worker.job is job and worker.ending is None:
                self._end(worker, "cancel", time.monotonic())

    def close(self) -> None:
        """Stop idle workers, kill busy ones with their process groups at once, reap them all.

        Queued and running invocations are abandoned without events. Idempotent.
        """
        self._closed = True
        self._queue.clear()
        self._jobs.clear()
        self._events.clear()
        self._finalizer()

    # --- workers ------------------------------------------------------------------

    def _start_worker(self) -> None:
        try:
            self._workers.append(_Worker(WorkerChannel.start(self._init)))
        except OSError as exc:  # no process at all (EAGAIN, ENOMEM, no interpreter)
            self._start_failed(f"cannot start a process: {exc}")

    def _dispatch(self) -> None:
        if self._closed:
            return
        idle = deque(w for w in self._workers if w.idle)
        while self._queue and idle:
            self._send(idle[0], self._queue.popleft())
            if not idle[0].idle:
                idle.popleft()
        if self._start_failures >= START_ATTEMPTS:
            return
        live = [w for w in self._workers if w.ending is None]
        starting = sum(not w.channel.ready for w in live)
        wanted = min(self._size, max(self._peak, len(live) + len(self._queue) - starting))
        for _ in range(wanted - len(live)):
            if self._start_failures >= START_ATTEMPTS:
                return
            self._start_worker()
        self._peak = max(self._peak, wanted)

    def _send(self, worker: _Worker, job: _Job) -> None:
        invocation = job.invocation
        task = invocation.task
        try:
            task_id, task_bytes = self._shipper.payload(task)
            data = worker.channel.job_message(
                Job.of(invocation, task_id, memory=job.memory),
                task_bytes,
            )
        except Exception as exc:
            error = ErrorInfo(
                _error_type(exc),
                f"node {invocation.label!r} (task {task.name!r}) cannot be sent to a worker "
                f"process: {exc}; a task and its arguments must pickle (cloudpickle for the "
                "function): no open connections, locks or files in them or in the globals "
                "the function uses",
                retryable=False,
                user=True,
            )
            self._finish(job, _failed(job.key, None, error))
            return
        try:
            worker.channel.send(data)
        except OSError:
            # The worker died before taking the job, so the job never started:
            # it goes back to the front of the queue; the sentinel reaps the worker.
            worker.ending = "broken"
            self._queue.appendleft(job)
            return
        worker.job = job
        if invocation.timeout is not None:
            # Provisional, so a worker stuck before "started" is still bounded;
            # "started" moves it to the start of user code.
            worker.deadline = time.monotonic() + invocation.timeout

    def _read(self, worker: _Worker, *, exited: bool) -> None:
        """Handle `worker`'s messages, then its exit if its sentinel fired."""
        for message in worker.channel.receive():
            self._on_message(worker, message)
        if worker.channel.broken and worker.ending is None:
            # Garbage on the pipe: kill it; its job is reported as a crash.
            worker.ending = "broken"
            worker.deadline = None
            worker.channel.signal_group(signal.SIGKILL)
        if exited:
            self._on_exit(worker)

    def _on_message(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        job = worker.job
        if kind == "ready":
            worker.channel.ready = True
            self._start_failures = 0
        elif kind == "init_failed":
            worker.channel.init_error = str(message[1])
        elif kind == "started":
            _, key, at, log = message
            if job is None or job.key != key or worker.ending is not None:
                return
            job.started_at, job.log = at, log
            if job.invocation.timeout is not None:
                elapsed = max(0.0, time.time() - at)
                worker.deadline = time.monotonic() + job.invocation.timeout - elapsed
            self._events.append(Started(key, at, log))
        elif kind == "finished":
            outcome: Outcome = message[1]
            if job is None or job.key != outcome.key or worker.ending is not None:
                return  # a timeout or cancel already decided this job's outcome
            worker.job = None
            worker.deadline = None
            self._finish(job, Finished(outcome))
        else:
            worker.channel.broken = True

    def _on_exit(self, worker: _Worker) -> None:
        returncode = worker.channel.reap()  # what the task left behind dies with it
        self._workers.remove(worker)
        job = worker.job
        if job is not None:
            if job.log is not None:
                # A killed worker could not mask its attempt's secrets; the
                # attempt's output runs to the end of the dead worker's log.
                values = revealed_values((job.invocation.args, dict(job.invocation.kwargs)))
                scrub(job.log.path, values, job.log.start)
            self._finish(job, self._death_outcome(worker, job, returncode))
        elif not worker.channel.ready and worker.ending is None and not self._closed:
            detail = exit_message(returncode, None)
            if worker.channel.init_error:
                detail += ": " + worker.channel.init_error.strip().splitlines()[-1]
            self._start_failed(detail)

    def _death_outcome(self, worker: _Worker, job: _Job, returncode: int) -> Finished:
        if worker.ending == "cancel":
            return _cancelled(job.key, job.started_at, job.log)
        if worker.ending == "timeout":
            seconds = job.invocation.timeout or 0.0
            error = ErrorInfo(
                "lockgate.Timeout", f"timed out after {seconds:g} s", retryable=True, user=False
            )
            return _failed(job.key, job.started_at, error, timed_out=True, log=job.log)
        error = ErrorInfo(
            "lockgate.WorkerCrashed",
            exit_message(returncode, job.memory),
            retryable=True,
            user=False,
        )
        return _failed(job.key, job.started_at, error, log=job.log)

    def _start_failed(self, detail: str) -> None:
        """Count a worker that never became ready; at the limit, fail what is queued."""
        self._start_failures += 1
        if self._start_failures < START_ATTEMPTS:
            return
        self._peak = 0
        error = ErrorInfo(
            "lockgate.WorkerStartFailed",
            f"{START_ATTEMPTS} worker processes in a row failed to start (last: {detail}); "
            "their stderr says why",
            retryable=False,
            user=False,
        )
        while self._queue:
            job = self._queue.popleft()
            self._finish(job, _failed(job.key, None, error))

    def _finish(self, job: _Job, event: Finished) -> None:
        if self._jobs.pop(job.key, None) is job:
            self._events.append(event)

    # --- timeouts and kills -----------------------------------------------------------

    def _timers(self) -> list[float]:
        deadlines = [w.deadline for w in self._workers if w.ending is None]
        kills = [w.kill_at for w in self._workers]
        return [t for t in (*deadlines, *kills) if t is not None]

    def _fire_timers(self, now: float) -> None:
        for worker in self._workers:
            if worker.deadline is not None and now >= worker.deadline and worker.ending is None:
                self._end(worker, "timeout", now)
            elif worker.kill_at is not None and now >= worker.kill_at:
                worker.kill_at = None
                worker.channel.signal_group(signal.SIGKILL)

    def _end(self, worker: _Worker, reason: str, now: float) -> None:
        worker.ending = reason
        worker.deadline = None
        if self._kill_grace > 0:
            worker.channel.signal_group(signal.SIGTERM)
            worker.kill_at = now + self._kill_grace
        else:
            worker.channel.signal_group(signal.SIGKILL)


def _shutdown(workers: list[_Worker], grace: float) -> None:
    """Stop every worker and reap it; what the finalizer and `close` run.

    Idle workers are asked to stop; busy ones are killed with their process
    groups at once: closing abandons running invocations (a graceful stop is
    `cancel`), and a second Ctrl-C must not wait out a grace period.
    """
    for worker in workers:
        if worker.idle:
            worker.channel.stop()
        else:
            worker.channel.signal_group(signal.SIGKILL)
    pending = {worker.channel.sentinel for worker in workers if worker.idle}
    end = time.monotonic() + grace
    while pending and (left := end - time.monotonic()) > 0:
        pending.difference_update(cast(list[int], wait(list(pending), left)))
    for worker in workers:
        worker.channel.reap()  # SIGKILL first: stragglers and leftover grandchildren
    workers.clear()
