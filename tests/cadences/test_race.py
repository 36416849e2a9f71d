"""Several real servers on one database: every tick runs exactly once, pools hold.

Three `lockgate server` processes share a PostgreSQL database (two share a
SQLite file in the single-machine variant) and race over the ticks of an
every-second schedule, sped up 10x. Afterwards: one run per tick, none
missing, each launched and driven exactly once, and the two-slot pool never
held by more than two tasks at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import free_port

from lockgate.model.states import EventKind, RunState
from lockgate.stores.metadata.sql import SqlMetadataStore

PIPELINES = """
import time
import lockgate as lg

@lg.task(pool="gpu")
def use_gpu(tick: str) -> str:
    time.sleep(0.02)
    return tick

@lg.pipeline(schedule="* * * * * *", catchup=True, max_catchup=1000)
def every_second(logical_date: str = "none"):
    return use_gpu(logical_date)
"""

T0 = 1_900_000_000.0  # a whole second, far from now: nothing but this race has ticks


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


def race(project, db_url: str, servers: int, ticks: int, tmp_path: Path) -> None:
    project.write(PIPELINES, "[pools]\ngpu = 2\n")
    speed = 10.0
    wall0 = time.time() + 4.0  # every server is up before the clock starts moving
    env = {
        **os.environ,
        "LOCKGATE_CONFIG": str(project.config),
        "LOCKGATE_DB_URL": db_url,
        "LOCKGATE_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
        "LOCKGATE_HOME": str(tmp_path / "home"),
        "RACE_T0": str(T0),
        "RACE_WALL0": str(wall0),
        "RACE_SPEED": str(speed),
        "RACE_END": str(T0 + ticks + 0.5),
    }
    script = Path(__file__).with_name("race_server.py")
    processes = []
    for index in range(servers):
        log = (tmp_path / f"server-{index}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env={**env, "RACE_PORT": str(free_port())},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    store = SqlMetadataStore(db_url)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            runs = store.list_runs(limit=10_000)
            if len(runs) >= ticks and all(r.status.terminal for r in runs):
                break
            dead = [p for p in processes if p.poll() is not None]
            assert not dead, (tmp_path / "server-0.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"runs did not finish: {len(runs)} of {ticks}")
        time.sleep(1.0)  # a late duplicate would show up now
        for process in processes:
            process.terminate()
        assert [p.wait(timeout=60) for p in processes] == [0] * servers

        runs = store.list_runs(limit=10_000)
        keys = sorted(r.trigger_key for r in runs)
        expected = sorted(
            f"schedule:{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(T0 + i))}"
            for i in range(1, ticks + 1)
        )
        assert keys == expected  # exactly one run per tick: none lost, none twice
        assert {r.status for r in runs} == {RunState.SUCCEEDED}
        launchers = {r.claimed_by for r in runs}
        assert len(launchers) == servers  # every server launched some of them
        intervals = []
        for run in runs:
            kinds = [e.kind for e in store.events(run.id)]
            assert kinds.count(EventKind.RUN_STARTED) == 1, run.id  # driven once
            assert EventKind.RUN_RESUMED not in kinds
            (attempt,) = store.attempts(run.id)
            intervals.append((attempt.started_at, attempt.finished_at))
        assert max_overlap(intervals) <= 2  # the two-slot pool never over-committed
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        store.close()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_three_servers_on_postgresql_run_each_tick_exactly_once(project, pg_url, tmp_path):
    race(project, pg_url, servers=3, ticks=200, tmp_path=tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_two_servers_on_one_sqlite_file_run_each_tick_exactly_once(project, tmp_path):
    race(project, f"sqlite:///{tmp_path / 'shared.db'}", servers=2, ticks=40, tmp_path=tmp_path)
