"""Scenario 2: a worker process killed mid-task; the machine's other runs carry on.

Two runs share one installation, each with its own coordinator and process
workers. The test SIGKILLs the worker executing `victim`'s slow task at a
random moment. That attempt is recorded as a crash of the worker (signal 9)
and retried in a fresh process; the neighbouring run finishes with every task
on its first attempt.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from checker import check_run
from installation import Installation

PIPELINES = """
import os
import pathlib
import time

import lockgate as lg

MARKS = pathlib.Path(os.environ["CHAOS_MARKS"])


@lg.task
def prepare(n: int) -> list:
    return list(range(n))


@lg.task(retries=1, retry_delay=0.1)
def slow(rows: list) -> int:
    ctx = lg.current()
    (MARKS / f"{ctx.run_id}.{ctx.attempt}.pid").write_text(str(os.getpid()))
    time.sleep(1.5)
    return sum(rows)


@lg.task
def step(value: int, i: int) -> int:
    time.sleep(0.25)
    return value + i


@lg.pipeline
def victim(n: int = 100):
    return step(slow(prepare(n)), 0)


@lg.pipeline
def bystander(n: int = 7):
    value = n
    for i in range(8):
        value = step(value, i)
    return value
"""


def attempt_rows(site: Installation, run_id: str) -> list[tuple[str, int, str, str | None]]:
    engine = sa.create_engine(site.settings.db_url)
    try:
        with engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    sa.text(
                        "SELECT t.node_id, a.number, a.state, a.error_type FROM attempts a "
                        "JOIN task_runs t ON t.id = a.task_run_id WHERE t.run_id = :r "
                        "ORDER BY t.node_id, a.number"
                    ),
                    {"r": run_id},
                )
            ]
    finally:
        engine.dispose()


@pytest.mark.scenario("2. worker SIGKILL mid-task, neighbour run unaffected")
@pytest.mark.timeout(1200)
def test_a_killed_worker_is_retried_and_other_runs_are_untouched(chaos, tmp_path: Path):
    site = Installation(tmp_path)
    (tmp_path / "pipelines.py").write_text(PIPELINES)
    rng = chaos.rng()
    for index in range(chaos.size(short=1, full=10)):
        run = ["run", "--executor", "process", "--workers", "2", "--json"]
        neighbour = site.start(*run, "pipelines.py:bystander", "-p", f"n={index}")
        target = site.start(*run, "pipelines.py:victim", "-p", f"n={100 + index}")
        problems: list[str] = []
        deadline = time.monotonic() + 60
        while not list(site.marks.glob("*.1.pid")) and time.monotonic() < deadline:
            time.sleep(0.02)
        (pid_file,) = site.marks.glob("*.1.pid")
        time.sleep(rng.uniform(0.0, 1.0))
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.rename(pid_file.with_suffix(".killed"))
        outcomes = {}
        for name, process in (("victim", target), ("bystander", neighbour)):
            out, err = process.communicate(timeout=120)
            if process.returncode != 0:
                problems.append(f"{name} exited {process.returncode}: {err[-800:]}")
                continue
            outcomes[name] = json.loads(out.strip().splitlines()[-1])
        duplicates = verified = 0
        for name, outcome in outcomes.items():
            verdict = check_run(site.settings, outcome["run_id"])
            problems += [f"{name}: {p}" for p in verdict.problems]
            duplicates += verdict.duplicates
            verified += verdict.verified
            attempts = attempt_rows(site, outcome["run_id"])
            if name == "bystander" and any(number != 1 for _, number, _, _ in attempts):
                problems.append(f"the neighbour run needed retries: {attempts}")
            if name == "victim":
                slow = [row for row in attempts if row[0] == "slow"]
                expected = [
                    ("slow", 1, "failed", "lockgate.WorkerCrashed"),
                    ("slow", 2, "succeeded", None),
                ]
                if slow != expected:
                    problems.append(f"victim's slow attempts are {slow}, expected {expected}")
        chaos.record(problems, duplicates=duplicates, verified=verified)
    assert chaos.iterations == chaos.size(short=1, full=10)
    assert chaos.failures == 0, chaos.summary()
