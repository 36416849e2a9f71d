"""The worker process of the process executor: receive jobs, run them, report.

`ProcessExecutor` starts this module with `python -P -c` in a new session
(its own process group, so a terminal's Ctrl-C never reaches it and a
timeout can kill everything the task started) and hands it one end of a
socket pair. The worker opens its artifact store once, then runs one job at
a time: `("started", key, at, log span)` right before the invocation,
`("finished", outcome)` after it.

With capture on, file descriptors 1 and 2 point at a log file of this
worker's own for its whole life, so print, logging and the output of child
processes land there; each attempt's output is the byte range reported with
it (`LogSpan`). Per job, and undone afterwards: an address-space limit
applies when the task declares `resources={"memory": ...}`; SIGTERM
interrupts user code with SystemExit so its `finally` blocks run before the
worker exits. After each attempt, the values of its secret parameters are
masked in its byte range of the log (same length, in place).

Invariants:
- The worker never runs two jobs at once and never outlives its coordinator
  on Linux (PR_SET_PDEATHSIG).
- Task code and loaded data stay in this process; only refs and `Outcome`s
  go back.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

from lockgate.executors.capture import LOG_FORMAT, scrub
from lockgate.executors.channel import STOP, Init, Job, dumps, loads
from lockgate.executors.invoke import execute
from lockgate.model.secrets import revealed_values
from lockgate.model.task import Task
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import ErrorInfo, LogSpan, Outcome

_PR_SET_PDEATHSIG = 1

# Set while user code may be on the stack: SIGTERM then unwinds it instead
# of killing the process outright.
_in_job = False
_terminating = False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminating
    _terminating = True
    if not _in_job:
        os._exit(128 + signum)
    raise SystemExit(128 + signum)


def _die_with(parent: int) -> None:
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the coordinator died before prctl took effect
        os._exit(0)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


class _Capture:
    """Points fds 1 and 2 at one log file of this worker's own, for its whole life.

    Every attempt the worker runs appends to that file; an attempt's output is
    the byte range [start, end) recorded with it. Creating a file (and a
    directory) per attempt cost more than a no-op task while the coordinator
    fsyncs the database, so nothing is created per attempt.
    """

    def __init__(self, logs_root: str) -> None:
        directory = Path(logs_root, "workers", time.strftime("%Y%m%d", time.gmtime()))
        directory.mkdir(parents=True, exist_ok=True)
        self.path = str(directory / f"{os.getpid()}-{secrets.token_hex(4)}.log")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        # Line buffering keeps print() in order with subprocess output and log records.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.getLogger("lockgate.task").setLevel(logging.INFO)

    def begin(self) -> LogSpan:
        """Where the next attempt's output starts."""
        _flush()
        return LogSpan(self.path, os.fstat(1).st_size)

    def end(self, span: LogSpan) -> LogSpan:
        """The attempt's output, now that it returned."""
        _flush()
        return LogSpan(span.path, span.start, os.fstat(1).st_size)


def _address_space() -> int:
    try:
        pages = Path("/proc/self/statm").read_bytes().split()[0]
    except (OSError, IndexError):
        return 0
    return int(pages) * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def _memory_limit(budget: int | None) -> Iterator[None]:
    """Cap the address space at what the worker holds now plus `budget`.

    Relative, not absolute: a long-lived worker already holds address space
    from earlier jobs (imports, allocator arenas), and a task's failure must
    not depend on what ran before it in the same worker.
    """
    if budget is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _address_space() + budget
    for bound in (soft, hard):
        if bound != resource.RLIM_INFINITY:
            cap = min(cap, bound)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def format_size(size: int) -> str:
    """`512 MiB`, `4 GiB`, `1.5 GiB`, `700 B`: how limits appear in messages."""
    value = float(size)
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    index = 0
    while value >= 1024 and index < len(units) - 1:
        value /= 1024
        index += 1
    return f"{value:.1f} {units[index]}".replace(".0 ", " ")


def _explain_memory(outcome: Outcome, budget: int | None) -> Outcome:
    error = outcome.error
    # numpy raises a MemoryError subclass (_ArrayMemoryError): match by name.
    if budget is None or error is None or not error.type.endswith("MemoryError"):
        return outcome
    message = f"exceeded memory limit {format_size(budget)}"
    if error.message:
        message += f" ({error.message})"
    return replace(outcome, error=replace(error, message=message))


class _Worker:
    def __init__(self, conn: Connection, store: ArtifactStore, capture: _Capture | None) -> None:
        self.conn = conn
        self.store = store
        self.capture = capture
        self.tasks: dict[str, Task | ErrorInfo] = {}

    def serve(self) -> None:
        while True:
            try:
                message = loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                return  # the coordinator is gone
            if message == STOP:
                return
            outcome = self.run(message)
            try:
                self.conn.send_bytes(dumps(("finished", outcome)))
            except OSError:
                return
            if _terminating:
                return

    def _task(self, job: Job) -> Task | ErrorInfo:
        for task_id in job.drop:
            self.tasks.pop(task_id, None)
        if job.sys_path is not None:
            sys.path[:0] = [entry for entry in job.sys_path if entry not in sys.path]
        if job.task_bytes is not None:
            try:
                self.tasks[job.task_id] = loads(job.task_bytes)
            except Exception as exc:
                self.tasks[job.task_id] = ErrorInfo(
                    f"{type(exc).__module__}.{type(exc).__qualname__}",
                    f"cannot load task {job.task_name!r} in a worker process: {exc}; the "
                    "modules it uses must be importable there (same environment, sys.path)",
                    traceback.format_exc(),
                    retryable=False,
                    user=True,
                )
        found = self.tasks.get(job.task_id)
        if found is None:  # the coordinator's cache bookkeeping is wrong; a lockgate bug
            return ErrorInfo(
                "lockgate.WorkerError",
                f"worker has no task {job.task_id} for {job.task_name!r}",
                retryable=True,
                user=False,
            )
        return found

    def run(self, job: Job) -> Outcome:
        global _in_job
        now = time.time()
        task = self._task(job)
        if isinstance(task, ErrorInfo):
            return Outcome(job.key, now, now, error=task)
        invocation = job.invocation(task)
        # A task may have changed these and the worker is reused.
        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        span = self.capture.begin() if self.capture is not None else None
        try:
            self.conn.send_bytes(dumps(("started", job.key, time.time(), span)))
            _in_job = True
            try:
                with _memory_limit(job.memory):
                    outcome = execute(invocation, self.store)
            finally:
                _in_job = False
            if span is not None and self.capture is not None:
                log = self.capture.end(span)
                values = revealed_values((invocation.args, dict(invocation.kwargs)))
                scrub(log.path, values, log.start, log.end)
                outcome = replace(outcome, log=log)
        except Exception as exc:
            return Outcome(
                job.key,
                now,
                time.time(),
                error=ErrorInfo(
                    f"{type(exc).__module__}.{type(exc).__qualname__}",
                    f"the worker failed around node {invocation.label!r}: {exc}",
                    traceback.format_exc(),
                    retryable=True,
                    user=False,
                ),
            )
        return _explain_memory(outcome, job.memory)


def main(fd: int, parent: int) -> None:
    """Serve jobs from the coordinator on connection `fd` until told to stop.

    Args:
        fd: this end of the socket pair the coordinator passed in.
        parent: the coordinator's pid; the worker exits if it is already gone.
    """
    _die_with(parent)
    os.set_inheritable(fd, False)  # tasks' child processes must not hold the pipe
    conn = Connection(fd)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        init: Init = loads(conn.recv_bytes())
    except (EOFError, OSError):
        return
    try:
        store: ArtifactStore = loads(init.store_factory)()
    except Exception:
        text = traceback.format_exc()
        sys.stderr.write(f"lockgate worker {os.getpid()} could not start:\n{text}")
        with contextlib.suppress(OSError):
            conn.send_bytes(dumps(("init_failed", text)))
        sys.exit(1)
    # Kept before fds 1 and 2 go to /dev/null: the worker's own failures
    # must still reach the coordinator's terminal.
    own_stderr = os.dup(2)
    capture = _Capture(init.logs_root) if init.logs_root is not None else None
    try:
        conn.send_bytes(dumps(("ready", os.getpid())))
        _Worker(conn, store, capture).serve()
    except Exception:
        os.write(
            own_stderr, f"lockgate worker {os.getpid()} failed:\n{traceback.format_exc()}".encode()
        )
        raise
    _flush()
