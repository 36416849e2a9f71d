"""Scenario 4: several real servers on one database race on a schedule and a queue.

Two or three `lockgate server` processes share a PostgreSQL database (two
share a SQLite file in the single-machine variant). They race over the ticks
of an every-second schedule, sped up 10x (race_server.py), and over a queue of
manually triggered runs, each triggered twice with the same idempotency key,
half before the servers start and half while they run. Afterwards: one run
per tick and per key, none missing, each launched and driven exactly once,
every run passing the checker, and the two-slot pool never held by more than
two tasks at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checker import check_run

from lockgate.model.states import EventKind
from lockgate.service.config import Settings
from lockgate.stores.metadata.sql import SqlMetadataStore
from overlap import max_overlap
from servers import free_port

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


def trigger(env: dict[str, str], root: Path, key: str) -> None:
    argv = [sys.executable, "-m", "lockgate", "trigger", "every_second", "--key", key]
    argv += ["-p", f"logical_date={key}", "--json"]
    for _ in range(2):  # the same key twice: it queues once
        subprocess.run(argv, env=env, cwd=root, check=True, capture_output=True, timeout=60)


def race(chaos, root: Path, db_url: str, servers: int, ticks: int, manual: int) -> None:
    (root / "pipelines.py").write_text(PIPELINES)
    config = root / "lockgate.toml"
    config.write_text('[project]\npipelines = ["pipelines.py"]\n\n[pools]\ngpu = 2\n')
    env = {
        **os.environ,
        "LOCKGATE_CONFIG": str(config),
        "LOCKGATE_DB_URL": db_url,
        "LOCKGATE_ARTIFACT_ROOT": str(root / "artifacts"),
        "LOCKGATE_HOME": str(root / "home"),
        "RACE_T0": str(T0),
        "RACE_SPEED": "10",
        "RACE_END": str(T0 + ticks + 0.5),
    }
    env.pop("LOCKGATE_FAILPOINTS", None)
    keys = [f"manual-{k}" for k in range(manual)]
    for key in keys[: manual // 2]:
        trigger(env, root, key)
    # The simulated clock starts once every server is up and stops after `ticks` ticks.
    env["RACE_WALL0"] = str(time.time() + 4.0)
    script = Path(__file__).with_name("race_server.py")
    processes = []
    for index in range(servers):
        log = (root / f"server-{index}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env={**env, "RACE_PORT": str(free_port())},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    for key in keys[manual // 2 :]:
        trigger(env, root, key)
    store = SqlMetadataStore(db_url)
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            runs = store.list_runs(limit=10_000)
            if len(runs) >= ticks + manual and all(r.status.terminal for r in runs):
                break
            dead = [p for p in processes if p.poll() is not None]
            assert not dead, (root / "server-0.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail(f"runs did not finish: {len(runs)} of {ticks + manual}")
        time.sleep(1.0)  # a late duplicate would show up now
        for process in processes:
            process.terminate()
        assert [p.wait(timeout=60) for p in processes] == [0] * servers

        runs = store.list_runs(limit=10_000)
        by_key: dict[str, list] = {}
        for run in runs:
            by_key.setdefault(run.trigger_key or f"no key: {run.id}", []).append(run)
        expected = {
            f"schedule:{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(T0 + i))}"
            for i in range(1, ticks + 1)
        }
        expected |= {f"cli:{key}" for key in keys}  # a key is scoped by its channel
        for key in sorted(expected | set(by_key)):
            found = by_key.get(key, [])
            problems = []
            if key not in expected:
                problems.append(f"unexpected run {[r.id for r in found]} with key {key}")
            elif not found:
                problems.append(f"no run for {key}: lost")
            elif len(found) > 1:
                problems.append(f"{len(found)} runs for {key}")
            duplicates = max(0, len(found) - 1)
            verified = 0
            for run in found:
                kinds = [e.kind for e in store.events(run.id)]
                if kinds.count(EventKind.RUN_STARTED) != 1 or EventKind.RUN_RESUMED in kinds:
                    problems.append(f"{run.id} ({key}) was driven more than once")
                verdict = check_run(Settings.from_env(env), run.id)
                problems += [f"{run.id} ({key}): {p}" for p in verdict.problems]
                duplicates += verdict.duplicates
                verified += verdict.verified
            chaos.record(problems, duplicates=duplicates, verified=verified)
        launchers = {r.claimed_by for r in runs}
        assert len(launchers) == servers, "every server should have launched some runs"
        intervals = [(a.started_at, a.finished_at) for run in runs for a in store.attempts(run.id)]
        overlap = max_overlap(intervals)
        chaos.record([] if overlap <= 2 else [f"the two-slot pool held {overlap} tasks at once"])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        store.close()
    chaos.check()


@pytest.mark.scenario("4. two and three servers racing on PostgreSQL")
@pytest.mark.timeout(1800)
def test_servers_on_postgresql_run_each_tick_and_queued_run_exactly_once(
    chaos, pg_server, tmp_path
):
    for servers in (2, 3):
        root = tmp_path / f"servers-{servers}"
        root.mkdir()
        # Each race gets its own database on the throwaway cluster.
        url = fresh_database(pg_server, f"race{servers}")
        race(chaos, root, url, servers, ticks=chaos.size(30, 200), manual=chaos.size(8, 40))


@pytest.mark.scenario("4b. two servers racing on one SQLite file")
@pytest.mark.timeout(1800)
def test_two_servers_on_one_sqlite_file_run_each_tick_exactly_once(chaos, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    race(chaos, tmp_path, url, 2, ticks=chaos.size(20, 100), manual=chaos.size(6, 20))


def fresh_database(pg_server: str, name: str) -> str:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_server + "postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return pg_server + name
