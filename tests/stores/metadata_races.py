"""Worker processes for test_metadata_races.py (a module of its own so `spawn` can import it).

Each worker opens its own `SqlMetadataStore` on the shared database, waits at
a barrier so that all of them start each phase together, and reports what it
did through a queue. A phase's `held` counter is shared by the workers: a
worker adds one after its claim (or slot) has committed and takes it away
before it commits the end, so the counter never exceeds what the database
holds at that moment, and its high-water mark (`peak`) can only show an
over-commitment that really happened. Holding each claim or slot a few
milliseconds makes any over-commitment overlap, and so show.
"""

from __future__ import annotations

import random
import time
import traceback
from dataclasses import replace
from typing import Any

from lockgate.errors import RunExistsError
from lockgate.model.states import RunState
from lockgate.ports.metadata import WriteBatch
from lockgate.stores.metadata.sql import SqlMetadataStore
from lockgate.testing.metadata_contract import T0, new_run

KEYS = 200
PIPELINE = "ticks"
RUN_LIMIT = 3
POOL_SLOTS = 2
POOL_TASKS = 15


class Counter:
    """A shared count and its high-water mark (two multiprocessing Values)."""

    def __init__(self, held: Any, peak: Any) -> None:
        self.held, self.peak = held, peak

    def add(self, change: int) -> None:
        """Change the count; keep the highest it reached."""
        with self.held.get_lock():
            self.held.value += change
            self.peak.value = max(self.peak.value, self.held.value)


def worker(url: str, index: int, barrier: Any, runs: Counter, slots: Counter, out: Any) -> None:
    """Run the three phases as worker `index`; put a dict of results (or an error) on `out`."""
    try:
        barrier.wait(timeout=120)
        store = SqlMetadataStore(url)  # the workers race to migrate a new database, too
        try:
            result = {
                "index": index,
                "triggers": _create_runs(store, index, barrier),
                "claims": _claim_runs(store, index, barrier, runs),
                "slots": _take_slots(store, index, barrier, slots),
            }
        finally:
            store.close()
        out.put(result)
    except BaseException:
        out.put({"index": index, "error": traceback.format_exc()})


def _create_runs(store: SqlMetadataStore, index: int, barrier: Any) -> dict[str, Any]:
    """(a) Every worker tries to start a run for each of the same KEYS trigger keys."""
    keys = list(range(KEYS))
    random.Random(index).shuffle(keys)
    created, refused = [], []
    barrier.wait(timeout=120)
    for key in keys:
        run = new_run(f"r-{index}-{key}", PIPELINE, [("a", "a")], trigger_key=f"tick:{key}")
        try:
            # Created-at by key, so that "oldest first" has one right answer.
            store.create_run(replace(run, created_at=T0 + key))
        except RunExistsError as exc:
            refused.append((key, exc.run_id))
        else:
            created.append(key)
    return {"created": created, "refused": refused}


def _claim_runs(
    store: SqlMetadataStore, index: int, barrier: Any, counter: Counter
) -> dict[str, Any]:
    """(b) Every worker claims queued runs (at most RUN_LIMIT running) and finishes them."""
    claimer = f"claimer-{index}"
    claimed: list[str] = []
    seen_running = 0
    barrier.wait(timeout=120)
    while True:
        took = store.claim_queued(
            limits={PIPELINE: RUN_LIMIT}, claimer=claimer, at=time.time(), max_runs=2
        )
        if not took:
            if not store.list_runs(pipeline=PIPELINE, status=RunState.QUEUED, limit=1):
                break
            time.sleep(0.002)
            continue
        counter.add(len(took))
        running = store.list_runs(pipeline=PIPELINE, status=RunState.RUNNING, limit=1000)
        seen_running = max(seen_running, len(running))
        time.sleep(0.005)
        for run in took:
            assert run.claimed_by == claimer and run.status is RunState.RUNNING
            claimed.append(run.id)
            counter.add(-1)
            store.set_run_state(run.id, RunState.SUCCEEDED, time.time())
    return {"claimed": claimed, "seen_running": seen_running}


def _take_slots(
    store: SqlMetadataStore, index: int, barrier: Any, counter: Counter
) -> dict[str, Any]:
    """(c) Every worker's run takes POOL_TASKS turns on a POOL_SLOTS-slot pool."""
    run_id = f"pool-{index}"
    nodes = [(f"t{i}", "t") for i in range(POOL_TASKS)]
    # Created running: a queued one could still be claimed (and finished, which frees
    # its slots) by a worker that has not left phase (b) yet.
    records = store.create_run(replace(new_run(run_id, "pooled", nodes), status=RunState.RUNNING))
    store.set_run_state(run_id, RunState.RUNNING, time.time())
    taken, waits = [], 0
    barrier.wait(timeout=120)
    for record in records:
        while not store.acquire_slot(
            "gpu", POOL_SLOTS, record.id, run_id, time.time(), time.time() - 600
        ):
            waits += 1
            time.sleep(0.001)
        counter.add(1)
        time.sleep(0.003)
        counter.add(-1)
        store.commit(run_id, WriteBatch(at=time.time(), releases=[record.id]))
        taken.append(record.id)
    return {"taken": taken, "waits": waits}
