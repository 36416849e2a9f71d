"""What only the process executor does: kill hung tasks with their children, survive
crashed workers, cap memory, capture output at the file-descriptor level, run tasks
from scripts and files loaded by path, run in parallel, and leave no process behind."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import lockgate as lg
from lockgate import failpoints
from lockgate.executors.channel import WorkerChannel
from lockgate.executors.process import ProcessExecutor
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import Finished, Outcome, Started
from lockgate.service.loader import load_module
from lockgate.stores.artifacts import open_artifact_store
from lockgate.testing.executor_contract import (
    invocation,
    outcome_of,
    run_until_finished,
)

GRACE = 0.3

# --- tasks ----------------------------------------------------------------------------


@lg.task
def pid() -> int:
    return os.getpid()


@lg.task
def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@lg.task
def stubborn(pid_file: str) -> None:
    """Ignore SIGTERM, start a grandchild, hang."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "1000"])
    Path(pid_file).write_text(f"{os.getpid()} {child.pid}")
    while True:
        time.sleep(0.05)


@lg.task
def polite(marker: str, pid_file: str) -> None:
    """Hang, but clean up when interrupted."""
    Path(pid_file).write_text(str(os.getpid()))
    try:
        time.sleep(1000)
    finally:
        Path(marker).write_text("cleaned up")


@lg.task
def leave_child_behind(pid_file: str) -> int:
    child = subprocess.Popen(["sleep", "1000"])
    Path(pid_file).write_text(str(child.pid))
    return child.pid


@lg.task
def exit_now(code: int) -> None:
    os._exit(code)


@lg.task(resources={"memory": "256MiB"})
def hog() -> int:
    chunks = []
    for _ in range(256):  # up to 16 GiB of address space, 64 MiB at a time
        chunks.append(bytes(64 * 2**20))
    return len(chunks)


@lg.task(resources={"memory": "1GiB"})
def killed_like_by_the_oom_killer() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


BULKY = "x" * 200_000


@lg.task
def bulky(n: int) -> int:
    return len(BULKY) + n


@lg.task
def allocate(mebibytes: int) -> int:
    return len(bytes(mebibytes * 2**20))


@lg.task
def chatty(word: str) -> str:
    print(f"print says {word}")
    print(f"stderr says {word}", file=sys.stderr)
    lg.current().logger.info("logger says %s", word)
    logging.getLogger("some.library").warning("library warns %s", word)
    subprocess.run(["echo", f"child says {word}"], check=True)
    os.write(1, f"fd 1 says {word}\n".encode())
    return word


# --- helpers ------------------------------------------------------------------------


@pytest.fixture
def artifact_root(tmp_path: Path) -> str:
    return str(tmp_path / "artifacts")


@pytest.fixture
def store(artifact_root: str) -> ArtifactStore:
    return open_artifact_store(artifact_root)


@pytest.fixture
def make_executor(artifact_root: str) -> Iterator[Callable[..., ProcessExecutor]]:
    made: list[ProcessExecutor] = []

    def make(**options: Any) -> ProcessExecutor:
        options.setdefault("workers", 1)
        options.setdefault("kill_grace", GRACE)
        executor = ProcessExecutor(functools.partial(open_artifact_store, artifact_root), **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()


def run_one(executor: ProcessExecutor, call: Any, timeout: float = 30.0) -> Outcome:
    executor.submit(call)
    return outcome_of(run_until_finished(executor, [call.key], timeout=timeout)[call.key])


def alive(pid: int) -> bool:
    """True if `pid` runs; a zombie is dead (this container's init does not reap orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_for_file(executor: ProcessExecutor, path: Path, timeout: float = 10.0) -> str:
    """Poll `executor` (which is what dispatches jobs) until a task writes `path`."""
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        assert not any(isinstance(e, Finished) for e in executor.poll(0.02))
    return path.read_text()


def our_children() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


# --- timeouts and cancels -------------------------------------------------------------


def test_timeout_kills_the_task_and_its_grandchild_then_a_fresh_worker_runs(
    make_executor: Callable[..., ProcessExecutor], store: ArtifactStore, tmp_path: Path
) -> None:
    executor = make_executor()
    pid_file = tmp_path / "pids"
    hung = invocation(stubborn, str(pid_file), timeout=0.5)
    executor.submit(hung)
    events = run_until_finished(executor, [hung.key])[hung.key]

    assert [type(e) for e in events] == [Started, Finished]
    outcome = outcome_of(events)
    assert outcome.timed_out
    assert outcome.error is not None
    assert outcome.error.type == "lockgate.Timeout"
    assert outcome.error.message == "timed out after 0.5 s"
    assert outcome.error.retryable and not outcome.error.user
    worker_pid, child_pid = map(int, pid_file.read_text().split())
    assert not alive(worker_pid)
    assert not alive(child_pid), "the grandchild survived the timeout"

    after = run_one(executor, invocation(pid, task_run_id=2))
    assert after.output is not None
    assert store.get(after.output) not in (worker_pid, None)


def test_sigterm_lets_the_task_clean_up_before_it_is_killed(
    make_executor: Callable[..., ProcessExecutor], tmp_path: Path
) -> None:
    executor = make_executor(kill_grace=5.0)
    marker = tmp_path / "marker"
    outcome = run_one(executor, invocation(polite, str(marker), str(tmp_path / "pid"), timeout=0.5))
    assert outcome.timed_out
    assert marker.read_text() == "cleaned up"


def test_cancel_of_a_running_invocation_kills_its_group(
    make_executor: Callable[..., ProcessExecutor], tmp_path: Path
) -> None:
    executor = make_executor()
    pid_file = tmp_path / "pids"
    hung = invocation(stubborn, str(pid_file))
    executor.submit(hung)
    wait_for_file(executor, pid_file)
    executor.cancel(hung.key)
    events = run_until_finished(executor, [hung.key], timeout=10)[hung.key]

    outcome = outcome_of(events)
    assert outcome.error is not None
    assert outcome.error.type == "lockgate.Cancelled"
    assert not outcome.error.retryable
    assert not outcome.timed_out
    worker_pid, child_pid = map(int, pid_file.read_text().split())
    assert not alive(worker_pid) and not alive(child_pid)


# --- crashes ----------------------------------------------------------------------------


def test_os_exit_is_a_crash_and_the_other_worker_carries_on(
    make_executor: Callable[..., ProcessExecutor], store: ArtifactStore
) -> None:
    executor = make_executor(workers=2)
    crash = invocation(exit_now, 3, task_run_id=1)
    sleeper = invocation(nap, 0.5, task_run_id=2)
    executor.submit(sleeper)
    executor.submit(crash)
    events = run_until_finished(executor, [crash.key, sleeper.key])

    crashed = outcome_of(events[crash.key])
    assert crashed.error is not None
    assert crashed.error.type == "lockgate.WorkerCrashed"
    assert crashed.error.message == "worker exited with code 3"
    assert crashed.error.retryable and not crashed.error.user
    slept = outcome_of(events[sleeper.key])
    assert slept.ok, slept.error

    again = run_one(executor, invocation(exit_now, 0, task_run_id=3, node_id="again"))
    assert again.error is not None and again.error.message == "worker exited with code 0"
    assert run_one(executor, invocation(pid, task_run_id=4)).ok


def test_worker_killed_from_outside_is_reported_with_the_signal(
    make_executor: Callable[..., ProcessExecutor], tmp_path: Path
) -> None:
    executor = make_executor()
    pid_file = tmp_path / "pid"
    call = invocation(polite, str(tmp_path / "marker"), str(pid_file))
    executor.submit(call)
    os.kill(int(wait_for_file(executor, pid_file)), signal.SIGKILL)
    outcome = outcome_of(run_until_finished(executor, [call.key], timeout=10)[call.key])
    assert outcome.error is not None
    assert outcome.error.type == "lockgate.WorkerCrashed"
    assert outcome.error.message == "worker exited with signal 9 (SIGKILL)"
    assert outcome.error.retryable
    assert run_one(executor, invocation(pid, task_run_id=2)).ok


def test_kill_failpoint_before_start_is_a_crash_not_a_hang(
    make_executor: Callable[..., ProcessExecutor], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKGATE_FAILPOINTS", "task.before_start@doomed:kill")
    failpoints.reset()
    executor = make_executor()
    doomed = run_one(executor, invocation(pid, node_id="doomed"), timeout=10)
    assert doomed.error is not None
    assert doomed.error.message == "worker exited with signal 9 (SIGKILL)"
    assert run_one(executor, invocation(pid, task_run_id=2, node_id="fine")).ok
    failpoints.reset()


def test_a_store_that_cannot_open_fails_the_invocation_instead_of_hanging() -> None:
    executor = ProcessExecutor(functools.partial(open_artifact_store, ""), workers=1)
    try:
        outcome = run_one(executor, invocation(pid), timeout=30)
    finally:
        executor.close()
    assert outcome.error is not None
    assert outcome.error.type == "lockgate.WorkerStartFailed"
    assert "artifact root must be a path" in outcome.error.message
    assert not outcome.error.retryable


def test_no_process_at_all_fails_the_invocation(
    make_executor: Callable[..., ProcessExecutor],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executor = make_executor()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    outcome = run_one(executor, invocation(pid), timeout=10)
    assert outcome.error is not None
    assert outcome.error.type == "lockgate.WorkerStartFailed"
    assert "no-such-python" in outcome.error.message


# --- memory -----------------------------------------------------------------------------


def test_memory_limit_fails_the_task_and_is_lifted_afterwards(
    make_executor: Callable[..., ProcessExecutor], store: ArtifactStore
) -> None:
    executor = make_executor()
    limited = run_one(executor, invocation(hog, task_run_id=1))
    assert limited.error is not None
    assert limited.error.type == "MemoryError"
    assert limited.error.message.startswith("exceeded memory limit 256 MiB")
    assert limited.error.retryable

    unlimited = run_one(executor, invocation(allocate, 512, task_run_id=2))
    assert unlimited.output is not None, unlimited.error
    assert store.get(unlimited.output) == 512 * 2**20


def test_a_worker_killed_under_a_memory_limit_is_reported_as_likely_oom(
    make_executor: Callable[..., ProcessExecutor],
) -> None:
    outcome = run_one(make_executor(), invocation(killed_like_by_the_oom_killer))
    assert outcome.error is not None
    assert outcome.error.message == "worker exited with signal 9 (SIGKILL) (likely OOM)"


# --- logs -------------------------------------------------------------------------------


def test_output_of_every_kind_lands_in_the_attempt_log(
    make_executor: Callable[..., ProcessExecutor],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    logs = tmp_path / "logs"
    executor = make_executor(logs_root=str(logs))
    first = invocation(chatty, "one", task_run_id=1, node_id="talk")
    second = invocation(chatty, "two", task_run_id=2, node_id="talk", attempt=2)
    executor.submit(first)
    executor.submit(second)
    events = run_until_finished(executor, [first.key, second.key])
    assert all(outcome_of(e).ok for e in events.values())

    def captured(event: Finished) -> str:
        span = outcome_of(event).log
        assert span is not None and span.end is not None
        assert Path(span.path).is_relative_to(logs / "workers")
        with Path(span.path).open("rb") as handle:
            handle.seek(span.start)
            return handle.read(span.end - span.start).decode()

    text = captured(events[first.key])
    for line in ("print says one", "stderr says one", "child says one", "fd 1 says one"):
        assert line in text
    assert "INFO lockgate.task.contract.talk: logger says one" in text
    assert "WARNING some.library: library warns one" in text
    assert "two" not in text
    assert "child says two" in captured(events[second.key])
    leaked = capfd.readouterr()
    assert "says" not in leaked.out + leaked.err, "task output reached the coordinator's fds"


def test_without_a_logs_root_output_is_left_alone(
    make_executor: Callable[..., ProcessExecutor], capfd: pytest.CaptureFixture[str]
) -> None:
    executor = make_executor()
    assert run_one(executor, invocation(chatty, "hello")).ok
    captured = capfd.readouterr()
    assert "print says hello" in captured.out
    assert "child says hello" in captured.out
    assert "stderr says hello" in captured.err


# --- where tasks come from ----------------------------------------------------------------

MAIN_SCRIPT = """
import functools, json, sys
from pathlib import Path

import lockgate as lg
from lockgate.executors.channel import WorkerChannel
from lockgate.executors.process import ProcessExecutor
from lockgate.ports.executor import Finished
from lockgate.stores.artifacts import open_artifact_store
from lockgate.testing.executor_contract import invocation, run_until_finished

# No `if __name__ == "__main__"` guard: workers must not run this module again.
with open(sys.argv[2], "a") as marker:
    marker.write("imported\\n")

OFFSET = 100

@lg.task
def shifted(x):
    return x + OFFSET

executor = ProcessExecutor(functools.partial(open_artifact_store, sys.argv[1]), workers=2)
call = invocation(shifted, 23)
executor.submit(call)
(finished,) = [e for e in run_until_finished(executor, [call.key])[call.key]
               if isinstance(e, Finished)]
executor.close()
print(json.dumps(open_artifact_store(sys.argv[1]).get(finished.outcome.output)))
"""


def test_tasks_defined_in_main_run_without_importing_the_script_again(
    tmp_path: Path, artifact_root: str
) -> None:
    script = tmp_path / "script.py"
    script.write_text(MAIN_SCRIPT)
    marker = tmp_path / "marker"
    result = subprocess.run(
        [sys.executable, str(script), artifact_root, str(marker)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == 123
    assert marker.read_text() == "imported\n"


def test_tasks_from_a_file_loaded_by_path_run_the_code_that_was_loaded(
    make_executor: Callable[..., ProcessExecutor],
    store: ArtifactStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    executor = make_executor()
    assert run_one(executor, invocation(pid)).ok  # the worker exists before the module does

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "lg_helpers_for_test.py").write_text("def times(x, n):\n    return x * n\n")
    flow = folder / "lg_flow_for_test.py"
    flow.write_text(
        textwrap.dedent(
            """
            import lockgate as lg
            import lg_helpers_for_test as helpers

            @lg.task
            def triple(x):
                return helpers.times(x, 3)
            """
        )
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    module = load_module(str(flow))
    for name in (module.__name__, "lg_helpers_for_test"):  # forgotten after the test
        monkeypatch.setitem(sys.modules, name, sys.modules[name])
    flow.write_text("raise RuntimeError('the worker imported the edited file')\n")

    outcome = run_one(executor, invocation(module.triple, 14, task_run_id=2))
    assert outcome.output is not None, outcome.error
    assert store.get(outcome.output) == 42


def test_a_task_that_cannot_be_pickled_fails_with_a_message(
    make_executor: Callable[..., ProcessExecutor],
) -> None:
    import threading

    lock = threading.Lock()

    @lg.task
    def locked() -> None:
        with lock:
            pass

    outcome = run_one(make_executor(), invocation(locked))
    assert outcome.error is not None
    assert "cannot be sent to a worker process" in outcome.error.message
    assert not outcome.error.retryable


def test_each_worker_receives_a_task_once(
    make_executor: Callable[..., ProcessExecutor],
    store: ArtifactStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[int, int]] = []
    original = WorkerChannel.send

    def spy(self: WorkerChannel, data: bytes) -> None:
        sent.append((self.pid, len(data)))
        original(self, data)

    monkeypatch.setattr(WorkerChannel, "send", spy)
    executor = make_executor(workers=2)
    calls = [invocation(bulky, n, task_run_id=n, node_id=f"b{n}") for n in range(1, 7)]
    for call in calls:
        executor.submit(call)
    events = run_until_finished(executor, [c.key for c in calls])
    assert [store.get(outcome_of(events[c.key]).output) for c in calls] == [
        200_000 + n for n in range(1, 7)
    ]
    jobs = [(worker, size) for worker, size in sent if size > 1000]  # not STOP or init
    big = [worker for worker, size in jobs if size > len(BULKY)]
    assert sorted(big) == sorted({worker for worker, _ in jobs}), "one full copy per worker"


# --- parallelism, isolation of data, cleanup ------------------------------------------------


def test_two_workers_run_two_invocations_at_the_same_time(
    make_executor: Callable[..., ProcessExecutor],
) -> None:
    executor = make_executor(workers=2)
    calls = [invocation(nap, 0.4, task_run_id=n) for n in (1, 2)]
    for call in calls:
        executor.submit(call)
    events = run_until_finished(executor, [c.key for c in calls])
    spans = []
    for call in calls:
        started = next(e for e in events[call.key] if isinstance(e, Started))
        spans.append((started.at, outcome_of(events[call.key]).finished_at))
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a, f"ran one after the other: {spans}"


BIG_DATA_SCRIPT = """
import functools, json, sys
from multiprocessing import connection

sizes = []
for name in ("send_bytes", "recv_bytes"):
    original = getattr(connection.Connection, name)
    def spy(self, *args, _original=original, _name=name, **kwargs):
        result = _original(self, *args, **kwargs)
        data = args[0] if _name == "send_bytes" else result
        sizes.append(len(data))
        return result
    setattr(connection.Connection, name, spy)

import lockgate as lg
from lockgate.executors.channel import WorkerChannel
from lockgate.executors.process import ProcessExecutor
from lockgate.ports.executor import Load
from lockgate.testing.executor_contract import invocation, outcome_of, run_until_finished
from lockgate.stores.artifacts import open_artifact_store

@lg.task
def produce():
    import numpy as np
    return np.arange(2_000_000, dtype=np.float64)

@lg.task
def consume(array):
    return float(array.sum())

executor = ProcessExecutor(functools.partial(open_artifact_store, sys.argv[1]), workers=1)
first = invocation(produce, task_run_id=1)
executor.submit(first)
made = outcome_of(run_until_finished(executor, [first.key])[first.key]).output
second = invocation(consume, Load(made), task_run_id=2)
executor.submit(second)
used = outcome_of(run_until_finished(executor, [second.key])[second.key]).output
executor.close()
print(json.dumps({
    "made_size": made.size,
    "inline": made.inline is not None,
    "used": json.loads(used.inline),
    "numpy_here": "numpy" in sys.modules,
    "largest_message": max(sizes),
}))
"""


def test_large_data_never_passes_through_the_coordinator(
    tmp_path: Path, artifact_root: str
) -> None:
    script = tmp_path / "big.py"
    script.write_text(BIG_DATA_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), artifact_root],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["made_size"] > 16_000_000
    assert not report["inline"]
    assert report["used"] == float(sum(range(2_000_000)))
    assert not report["numpy_here"], "the coordinator unpickled task data"
    assert report["largest_message"] < 64 * 1024


def test_close_stops_everything_and_leaves_no_process(
    make_executor: Callable[..., ProcessExecutor], tmp_path: Path
) -> None:
    before = our_children()
    executor = make_executor(workers=2)
    leftover = invocation(leave_child_behind, str(tmp_path / "child"), task_run_id=1)
    assert run_one(executor, leftover).ok
    pid_file = tmp_path / "pids"
    executor.submit(invocation(stubborn, str(pid_file), task_run_id=2))
    wait_for_file(executor, pid_file)
    workers = our_children() - before
    assert workers

    executor.close()
    executor.close()

    assert our_children() - before == set()
    worker_pid, child_pid = map(int, pid_file.read_text().split())
    for process in (worker_pid, child_pid, int((tmp_path / "child").read_text())):
        assert not alive(process)
    with pytest.raises(RuntimeError, match="closed"):
        executor.submit(invocation(pid, task_run_id=3))
    assert executor.poll(0) == []


ORPHAN_SCRIPT = """
import functools, sys
from lockgate.executors.process import ProcessExecutor
from lockgate.ports.executor import Started
from lockgate.stores.artifacts import open_artifact_store
from lockgate.testing.executor_contract import invocation, nap

executor = ProcessExecutor(functools.partial(open_artifact_store, sys.argv[1]), workers=1)
executor.submit(invocation(nap, 1000))
while True:
    if any(isinstance(event, Started) for event in executor.poll(0.05)):
        print("started", flush=True)
"""


def test_a_busy_worker_dies_with_a_killed_coordinator(tmp_path: Path, artifact_root: str) -> None:
    script = tmp_path / "coordinator.py"
    script.write_text(ORPHAN_SCRIPT)
    coordinator = subprocess.Popen(
        [sys.executable, str(script), artifact_root], stdout=subprocess.PIPE, text=True
    )
    try:
        assert coordinator.stdout is not None
        assert coordinator.stdout.readline() == "started\n"
        workers = psutil.Process(coordinator.pid).children()
        assert len(workers) == 1
    finally:
        coordinator.kill()
        coordinator.wait()
    _, still_running = psutil.wait_procs(workers, timeout=10)
    assert not still_running, "the worker outlived its coordinator"
