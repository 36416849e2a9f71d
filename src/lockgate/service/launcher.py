"""The run launcher: queued and orphaned runs, each driven in its own subprocess.

A server claims queued runs (`MetadataStore.claim_queued`: one claimer per
run, within each pipeline's `max_active_runs`) and takes over orphaned ones
(a running run whose heartbeat went stale: `MetadataStore.resume_run` lets
exactly one server win). Each is driven in a child process of its own, so
a pipeline that crashes the interpreter cannot take the server down. A
child leaves its run resumable, never half-recorded, when it is told to stop
(SIGTERM) or when its server dies.

Children are forked from a multiprocessing forkserver that has lockgate,
SQLAlchemy and the executors imported already: a fresh interpreter per run
spends about 0.4 s importing them, most of a small run's start-up latency
and CPU. Each child starts its own session (so a Ctrl-C meant for the
server does not cancel its runs) and writes to `<home>/drivers/RUN.log`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.process
import os
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from lockgate.errors import LockgateError, RunStateError
from lockgate.model.params import unavailable_secrets
from lockgate.model.states import RunState, TaskState, Trigger
from lockgate.ports.metadata import RunRecord
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.lifecycle import orphaned_runs, pipeline_for
from lockgate.service.project import Project
from lockgate.service.runs import coordinator, lineage_listener

log = logging.getLogger("lockgate.launcher")

#: Exit status of a driver that stopped on request and left its run resumable.
LEFT_RESUMABLE = 75


def server_id() -> str:
    """A name for this server process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


#: Imported once by the forkserver, so each driver it forks has them already.
_PRELOAD = [
    "lockgate.service.launcher",
    "lockgate.stores.metadata.sql",
    "lockgate.stores.artifacts",
    "lockgate.executors.process",
    "lockgate.executors.inline",
]
_CONTEXT: multiprocessing.context.ForkServerContext | None = None


def _context(db_url: str) -> multiprocessing.context.ForkServerContext:
    global _CONTEXT
    if _CONTEXT is None:
        context = multiprocessing.get_context("forkserver")
        preload = list(_PRELOAD)
        if db_url.startswith("postgresql"):
            preload.append("psycopg")
        context.set_forkserver_preload(preload)
        _CONTEXT = context
    return _CONTEXT


@dataclass
class _Child:
    run_id: str
    process: multiprocessing.process.BaseProcess
    log_path: Path
    started: float


class Launcher:
    """Starts driver subprocesses for claimed and orphaned runs, and watches them."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        claimer: str,
        max_concurrent: int,
        limits: dict[str, int] | None = None,
        executor: str | None = None,
        workers: int | None = None,
    ) -> None:
        """Launch at most `max_concurrent` runs at once, on behalf of `claimer`."""
        self.workspace = workspace
        self.claimer = claimer
        self.max_concurrent = max_concurrent
        self.limits = dict(limits or {})
        self.executor = executor
        self.workers = workers
        self.children: dict[str, _Child] = {}
        self.draining = False
        self.hurry = threading.Event()  # set: stop waiting for drivers during a drain
        self.launched = 0

    def warm_up(self) -> None:
        """Start the forkserver now, so the first run does not wait for its imports."""
        from multiprocessing import forkserver

        _context(self.workspace.settings.db_url)
        forkserver.ensure_running()

    @property
    def room(self) -> int:
        """How many more runs this launcher may start now."""
        return 0 if self.draining else max(0, self.max_concurrent - len(self.children))

    def launch_pass(self) -> list[str]:
        """Reap finished drivers, take over orphans, claim queued runs; return runs started."""
        self.reap()
        self._beat()
        started: list[str] = []
        if self.room:
            started += self._adopt_orphans()
        if self.room:
            claimed = self.workspace.metadata.claim_queued(
                limits=self.limits, claimer=self.claimer, at=time.time(), max_runs=self.room
            )
            for record in claimed:
                self._spawn(record.id)
                started.append(record.id)
        return started

    def _beat(self) -> None:
        """Heartbeat the runs of live drivers: a driver still starting up (slow imports
        on a busy machine) must not look dead before its own heartbeat begins."""
        now = time.time()
        for run_id in list(self.children):
            try:
                self.workspace.metadata.heartbeat(run_id, now)
            except LockgateError as exc:
                log.warning("heartbeat for run %s failed: %s", run_id, exc)

    def _adopt_orphans(self) -> list[str]:
        store = self.workspace.metadata
        adopted = []
        orphans = [r for r in orphaned_runs(self.workspace) if r.id not in self.children]
        for record in orphans[: self.room]:
            now = time.time()
            try:
                store.resume_run(
                    record.id,
                    by=Trigger.RECOVER.value,
                    at=now,
                    stale_before=now - self.workspace.settings.heartbeat_timeout,
                )
            except RunStateError:
                continue  # another server took it over first
            log.info("resuming orphaned run %s (%s)", record.id, record.pipeline)
            self._spawn(record.id)
            adopted.append(record.id)
        return adopted

    def _spawn(self, run_id: str) -> None:
        settings = self.workspace.settings
        log_dir = Path(settings.home) / "drivers"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{run_id}.log"
        process = _context(settings.db_url).Process(
            target=_drive_main,
            args=(
                settings,
                self.workspace.project,
                run_id,
                self.executor,
                self.workers,
                log_path,
                os.getpid(),
            ),
            name=f"lockgate-driver-{run_id}",
        )
        process.start()
        self.children[run_id] = _Child(run_id, process, log_path, time.time())
        self.launched += 1

    def reap(self, *, stopping: bool = False) -> None:
        """Collect drivers that exited; fail a run whose driver died without recording it.

        With `stopping`, drivers were told to stop: whatever they left is resumable.
        """
        for run_id, child in list(self.children.items()):
            code = child.process.exitcode
            if code is None:
                continue
            child.process.join()
            del self.children[run_id]
            if code in (0, LEFT_RESUMABLE) or stopping:
                continue
            self._driver_died(child, code)

    def _driver_died(self, child: _Child, code: int) -> None:
        store = self.workspace.metadata
        try:
            record = store.get_run(child.run_id)
        except LockgateError:
            return
        if record.status is not RunState.RUNNING:
            return  # it recorded its own end (a failed run exits 1)
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        reason = (
            f"the run's driver process died ({how}) before recording the run's end; "
            f"its output is in {child.log_path}. `lockgate resume {child.run_id}` retries it."
        )
        fail_run(self.workspace, child.run_id, reason)
        log.error("run %s: %s", child.run_id, reason)

    def drain(self, timeout: float) -> list[str]:
        """Stop launching; wait up to `timeout` s for drivers, then stop the rest.

        Returns:
            Runs left resumable (their drivers were stopped before they finished).
        """
        self.draining = True
        deadline = time.monotonic() + timeout
        while self.children and time.monotonic() < deadline and not self.hurry.is_set():
            self.reap()
            time.sleep(0.1)
        left = list(self.children)
        for child in self.children.values():
            _signal(child.process, signal.SIGTERM)
        grace = time.monotonic() + 10
        while self.children and time.monotonic() < grace:
            self.reap(stopping=True)
            time.sleep(0.05)
        for child in self.children.values():
            _signal(child.process, signal.SIGKILL)
            child.process.join()
        self.children.clear()
        return left


def _signal(process: multiprocessing.process.BaseProcess, signum: int) -> None:
    if process.pid is None:
        return
    # The driver leads its own session: its process group holds its workers too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def fail_run(workspace: Workspace, run_id: str, reason: str) -> None:
    """Record a run nobody can drive as failed, its open nodes failed with `reason`."""
    store = workspace.metadata
    now = time.time()
    open_ids = [r.id for r in store.task_runs(run_id) if not r.state.terminal]
    store.set_task_state(run_id, open_ids, TaskState.FAILED, now, reason=reason)
    store.set_run_state(run_id, RunState.FAILED, now, error=reason)


class LeaveResumable(BaseException):
    """Raised in a driver told to stop: unwinds past the coordinator without recording
    an end, so the run stays resumable (a BaseException so no handler swallows it)."""


def _drive_main(
    settings: Settings,
    project: Project,
    run_id: str,
    executor: str | None,
    workers: int | None,
    log_path: Path,
    server_pid: int | None = None,
) -> None:
    """A driver child's entry point (forked from the forkserver); exits with its status."""
    forkserver_pid = os.getppid()
    os.setsid()
    with log_path.open("ab") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.environ["LOCKGATE_DRIVER"] = run_id
    if project.path is not None:
        os.chdir(project.path.parent)  # relative paths in pipelines mean the project's
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")
    # A precise first line: when the driver took over (bench/messages.py reads it).
    started = dt.datetime.now(dt.UTC).isoformat()
    print(f"{started} driving run {run_id}", file=sys.stderr, flush=True)
    if server_pid is not None:
        _watch_server(server_pid, forkserver_pid)
    workspace = Workspace(settings, project)
    try:
        record = drive_claimed(workspace, run_id, executor=executor, workers=workers)
    except LeaveResumable as exc:
        log.warning("%s; run %s left resumable", exc, run_id)
        sys.exit(LEFT_RESUMABLE)
    except LockgateError as exc:
        log.error("run %s: %s: %s", run_id, type(exc).__name__, exc)
        sys.exit(1)
    finally:
        workspace.close()
    log.info("run %s ended %s", run_id, record.status.value)
    sys.exit(0 if record.status in (RunState.SUCCEEDED, RunState.WAITING) else 1)


def drive_claimed(
    workspace: Workspace, run_id: str, *, executor: str | None, workers: int | None
) -> RunRecord:
    """Drive a run a server claimed or took over (in the run's driver process).

    SIGTERM, or the death of the server that started this process, stops the
    run's workers and exits without recording an end: the run's heartbeat
    goes stale and the next server resumes it.

    Raises:
        LeaveResumable: stopped on request (exit LEFT_RESUMABLE).
    """
    store = workspace.metadata
    record = store.get_run(run_id)
    try:
        pipeline = pipeline_for(record, None)
    except LockgateError as exc:
        # Code that moved or changed since the run was queued: say so on the run.
        fail_run(workspace, record.id, f"cannot load the run's pipeline: {exc}")
        return store.get_run(record.id)
    params = pipeline.params_from_json(record.params)
    missing = unavailable_secrets(params)
    if missing:
        # An orphan started with a literal secret (lockgate run, lg.run): its
        # value died with its coordinator. Failed, it can be resumed by hand.
        names = ", ".join(repr(n) for n in missing)
        flags = " ".join(f"-p {n}=..." for n in missing)
        fail_run(
            workspace,
            record.id,
            f"secret parameter(s) {names} were given as literal values, which lockgate "
            f"never stores, so a server cannot drive this run; resume it with "
            f"`lockgate resume {record.id} {flags}`",
        )
        return store.get_run(record.id)
    records = store.task_runs(record.id)

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise LeaveResumable(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    runner = workspace.executor(executor, workers=workers, pipeline=pipeline.name)
    try:
        listener = lineage_listener(workspace, None)
        coordinator(workspace, runner, listener).drive(pipeline, params, record.id, records)
    finally:
        runner.close()
    return store.get_run(record.id)


def _watch_server(server_pid: int, forkserver_pid: int) -> None:
    """SIGTERM this process when the server that launched it goes away.

    Either sign counts: the forkserver (this process's parent) exits when the
    server dies, and the server's pid stops existing once it is reaped.
    """

    def gone() -> bool:
        if os.getppid() != forkserver_pid:
            return True
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    def watch() -> None:
        while not gone():
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lockgate-server-watch", daemon=True).start()
