"""Real processes racing on one metadata database: trigger keys, the run queue, pool slots.

Three spawned processes (tests/stores/metadata_races.py) each open their own
store on a new database and, phase by phase, (a) create runs for the same 200
trigger keys, (b) claim and finish the queued runs under a per-pipeline limit,
(c) take turns on a two-slot pool. PostgreSQL is the case that matters
(several servers on one database); SQLite runs the same race on a file.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter as Tally
from pathlib import Path
from typing import Any

import metadata_races as races
import pytest

from lockgate.model.states import RunState
from lockgate.stores.metadata.sql import SqlMetadataStore

WORKERS = 3


def _race(url: str) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    runs = races.Counter(ctx.Value("i", 0), ctx.Value("i", 0))
    slots = races.Counter(ctx.Value("i", 0), ctx.Value("i", 0))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=races.worker, args=(url, i, barrier, runs, slots, out))
        for i in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    results = []
    try:
        for _ in procs:
            results.append(out.get(timeout=100))
    except queue.Empty:
        pytest.fail("a racing worker did not report within 100 s (deadlock?)")
    finally:
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    errors = [r["error"] for r in results if "error" in r]
    assert not errors, errors[0]
    assert runs.peak.value <= races.RUN_LIMIT, f"{runs.peak.value} runs of one pipeline at once"
    assert slots.peak.value <= races.POOL_SLOTS, f"{slots.peak.value} slots held at once"
    return sorted(results, key=lambda r: r["index"])


def _check(url: str, results: list[dict[str, Any]]) -> None:
    # (a) Each trigger key started exactly one run; every other attempt was told which.
    created = [key for r in results for key in r["triggers"]["created"]]
    refused = [pair for r in results for pair in r["triggers"]["refused"]]
    assert sorted(created) == list(range(races.KEYS))
    assert len(refused) == (WORKERS - 1) * races.KEYS
    winner = {key: f"r-{r['index']}-{key}" for r in results for key in r["triggers"]["created"]}
    assert all(run_id == winner[key] for key, run_id in refused)

    # (b) Every run was claimed exactly once, never more than the limit running at once.
    claimed = [run_id for r in results for run_id in r["claims"]["claimed"]]
    assert Tally(claimed).most_common(1)[0][1] == 1
    assert sorted(claimed) == sorted(winner.values())
    assert max(r["claims"]["seen_running"] for r in results) <= races.RUN_LIMIT
    store = SqlMetadataStore(url)
    try:
        done = store.list_runs(pipeline=races.PIPELINE, limit=1000)
        assert len(done) == races.KEYS
        assert {r.status for r in done} == {RunState.SUCCEEDED}
        by_claimer = {
            run_id: f"claimer-{r['index']}" for r in results for run_id in r["claims"]["claimed"]
        }
        assert all(r.claimed_by == by_claimer[r.id] for r in done)
    finally:
        store.close()

    # (c) Every task took its turn on the pool.
    assert all(len(r["slots"]["taken"]) == races.POOL_TASKS for r in results)


@pytest.mark.slow
def test_processes_racing_on_postgresql(pg_url: str):
    results = _race(pg_url)
    _check(pg_url, results)


@pytest.mark.slow
def test_processes_racing_on_sqlite(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    results = _race(url)
    _check(url, results)
