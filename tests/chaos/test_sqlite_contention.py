"""F3 (../shared/RELIABILITY.md §3.3): SQLite lock contention between real processes.

(a) Eight `lockgate run` processes (half with the process executor, half
inline) each drive a pipeline of 40 independent small tasks and their sum on
one LOCKGATE_HOME, so one SQLite file, with fast heartbeats, while a reader
loop lists runs with `lockgate runs --json`; the runs overlap (at least half
of them write events at the same moment). Every run succeeds; no output
(stdout, stderr, attempt logs) shows `database is locked` or a traceback;
every run passes the checker; and, as a counter that catches lost updates,
the database holds exactly runs x task runs `task_succeeded` events.

(b) Then an outside connection holds `BEGIN IMMEDIATE` on the file for the
whole of a `lockgate run` with LOCKGATE_DB_BUSY_TIMEOUT=1: the run fails
(exit code != 0) with `metadata DB busy: waited 1 s for the write lock on
<file>` after waiting at least that long, without a traceback; a reader
still answers meanwhile (WAL); and nothing recorded before is lost or
half-written: no run row was added and every earlier run still verifies.

Short: one round of 8 runs; full: 5 rounds on the same installation, so the
counters accumulate across rounds.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from checker import check_run
from installation import Installation

from overlap import max_overlap

RUNS = 8
WIDTH = 40
#: Task runs per run: the `work` nodes, then `total`. (Independent nodes, not
#: `work.map`: the checker expects every node to have attempts of its own.)
TASKS = WIDTH + 1
BUSY_TIMEOUT = 1
#: What must never reach a user or a log.
FORBIDDEN = ("database is locked", "Traceback (most recent call last)")

PIPELINE = f"""
import lockgate as lg


@lg.task
def work(item: int) -> int:
    lg.current().logger.info("item %d of run %s", item, lg.current().run_id)
    return item * 2


@lg.task
def total(values: list) -> int:
    assert values == [2 * i for i in range({WIDTH})], values
    return sum(values)


@lg.pipeline
def fan():
    return total([work(i) for i in range({WIDTH})])
"""


class Home(Installation):
    """One LOCKGATE_HOME in a temp dir with the fan-out pipeline beside it."""

    def __init__(self, root: Path) -> None:
        # Fast heartbeats: one more writer per run contending for the lock.
        heartbeats = {"LOCKGATE_HEARTBEAT_INTERVAL": "0.25", "LOCKGATE_HEARTBEAT_TIMEOUT": "20"}
        super().__init__(root, files={"fan.py": PIPELINE}, **heartbeats)

    def count(self, sql: str) -> int:
        with contextlib.closing(sqlite3.connect(self.db)) as conn:
            return int(conn.execute(sql).fetchone()[0])


def forbidden(where: str, text: str) -> list[str]:
    return [
        f"{where} contains {word!r}: ...{_around(text, word)}..."
        for word in FORBIDDEN
        if word in text
    ]


def _around(text: str, word: str) -> str:
    at = text.index(word)
    return text[max(0, at - 200) : at + 200]


class Reader(threading.Thread):
    """`lockgate runs --json` in a loop until stopped; collects what went wrong."""

    def __init__(self, home: Home) -> None:
        super().__init__(daemon=True)
        self.home = home
        self.stop = threading.Event()
        self.reads = 0
        self.problems: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            done = self.home.run("runs", "--json", "--limit", "1000")
            self.reads += 1
            label = f"reader call {self.reads}"
            self.problems += forbidden(label, done.stdout + done.stderr)
            if done.returncode != 0:
                self.problems.append(f"{label} exited {done.returncode}: {done.stderr[-300:]}")
                continue
            try:
                json.loads(done.stdout)
            except ValueError:
                self.problems.append(f"{label} printed no JSON list: {done.stdout[:200]!r}")


def contend(home: Home, round_: int) -> tuple[list[str], list[str]]:
    """Eight concurrent runs plus the reader loop; (problems, ids of succeeded runs)."""
    problems: list[str] = []
    reader = Reader(home)
    reader.start()
    processes = [
        home.start(
            "run",
            "fan.py:fan",
            "--json",
            *(("--executor", "process", "--workers", "2") if i % 2 else ("--executor", "inline")),
        )
        for i in range(RUNS)
    ]
    run_ids = []
    for i, process in enumerate(processes):
        try:
            out, err = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            problems.append(f"round {round_} run {i} did not finish in 240 s")
        label = f"round {round_} run {i}"
        problems += forbidden(f"{label} output", out + err)
        if process.returncode != 0:
            problems.append(f"{label} exited {process.returncode}: {err[-500:]}")
            continue
        outcome = json.loads(out)
        if outcome["status"] != "succeeded":
            problems.append(f"{label} ended {outcome['status']}: {outcome['error']}")
        run_ids.append(outcome["run_id"])
    reader.stop.set()
    reader.join(timeout=120)
    problems += reader.problems
    if reader.reads == 0:
        problems.append("the reader loop never completed a read while the runs went on")
    return problems, run_ids


def most_at_once(home: Home, run_ids: list[str]) -> int:
    """How many of the runs were writing events at the same moment, at most."""
    with contextlib.closing(sqlite3.connect(home.db)) as conn:
        spans = [
            conn.execute("SELECT min(at), max(at) FROM events WHERE run_id = ?", (r,)).fetchone()
            for r in run_ids
        ]
    return max_overlap(spans)


def logs_problems(home: Home) -> list[str]:
    problems: list[str] = []
    for log in Path(home.settings.logs_root).rglob("*"):
        if log.is_file():
            problems += forbidden(f"attempt log {log}", log.read_text(errors="replace"))
    return problems


def hold_write_lock(home: Home) -> list[str]:
    """A run that needs the write lock an outside connection holds: it must fail clearly."""
    problems: list[str] = []
    runs_before = home.count("SELECT count(*) FROM runs")
    events_before = home.count("SELECT count(*) FROM events")
    blocker = sqlite3.connect(home.db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        blocked = home.run(
            "run", "fan.py:fan", "--executor", "inline", LOCKGATE_DB_BUSY_TIMEOUT=str(BUSY_TIMEOUT)
        )
        waited = time.monotonic() - started
        # Readers never wait for writers in WAL mode, even with the lock held.
        listed = home.run("runs", "--json", "--limit", "1000", LOCKGATE_DB_BUSY_TIMEOUT="1")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    output = blocked.stdout + blocked.stderr
    expected = f"metadata DB busy: waited {BUSY_TIMEOUT} s for the write lock on {home.db}"
    if blocked.returncode == 0:
        problems.append("a run succeeded although the write lock was held throughout")
    if expected not in output:
        problems.append(f"the blocked run did not say {expected!r}; it printed {output[-500:]!r}")
    if "Traceback" in output:
        problems.append(f"the blocked run printed a traceback: {output[-800:]}")
    if waited < BUSY_TIMEOUT:
        problems.append(f"the blocked run gave up after {waited:.2f} s, before the busy timeout")
    if waited > BUSY_TIMEOUT + 30:  # process start-up on a busy machine, not more waits
        problems.append(f"the blocked run took {waited:.0f} s to give up, not about {BUSY_TIMEOUT}")
    if listed.returncode != 0:
        problems.append(f"`lockgate runs` failed while a writer held the lock: {listed.stderr}")
    elif len(json.loads(listed.stdout)) != runs_before:
        problems.append(f"`lockgate runs` listed {listed.stdout[:300]} with the lock held")
    if home.count("SELECT count(*) FROM runs") != runs_before:
        problems.append("the blocked run left a run row behind")
    if home.count("SELECT count(*) FROM events") != events_before:
        problems.append("the blocked run left events behind")
    return problems


@pytest.mark.timeout(1200)  # the full (make chaos) size
@pytest.mark.scenario("5. SQLite: 8 concurrent runs writing events")
def test_concurrent_runs_on_one_sqlite_file_lose_nothing(chaos, tmp_path: Path):
    home = Home(tmp_path)
    all_runs: list[str] = []
    for round_ in range(chaos.size(1, 5)):
        problems, run_ids = contend(home, round_)
        all_runs += run_ids
        problems += logs_problems(home)
        at_once = most_at_once(home, run_ids)
        if at_once < RUNS // 2:
            problems.append(f"at most {at_once} runs wrote at once: the writes did not contend")
        succeeded = home.count("SELECT count(*) FROM events WHERE kind = 'task_succeeded'")
        if succeeded != len(all_runs) * TASKS:
            problems.append(
                f"{succeeded} task_succeeded events for {len(all_runs)} runs of {TASKS} "
                f"task runs each, expected {len(all_runs) * TASKS} (a lost or doubled write)"
            )
        problems += hold_write_lock(home)
        duplicates = verified = 0
        for run_id in all_runs:  # this round's runs, and every earlier round's still
            verdict = check_run(home.settings, run_id)
            problems += verdict.problems
            duplicates += verdict.duplicates
            verified += verdict.verified
        chaos.record(problems, duplicates=duplicates, verified=verified)
    chaos.check()
