"""`lockgate stats` over 10,000 runs of 20 tasks on SQLite, against a plain read of the same rows.

    make bench        # or: .venv/bin/python bench/stats.py [--runs 10000] [--tasks 20]
                      #     [--repeat 3] [--json PATH] [--strict]

Builds a metadata database in a temporary LOCKGATE_HOME with the store's own
schema (migrations included), then fills it with bulk inserts through
SQLAlchemy Core: --runs runs spread over four pipelines and the last six
days, --tasks task runs each in a chain, with what production shows:

  runs       93 % succeeded, 4 % failed, 1 % gate_failed, 1 % cancelled; 2 %
             resumed by hand from the CLI, 1 % taken over by `recover`;
             run queue times of 0.1-30 s
  attempts   5 % of task runs retried once, 1 % twice, one task of the
             `features` pipeline retried three times each; attempt queue
             times of 0-5 s
  events     run_created, run_started, the run's end, and task_queued,
             task_started and task_succeeded per attempt (about 65 per run)
  gates      a two-check gate in every `train` run (8 % fail one check)
  lineage    every `train` run consumes a dataset version and registers a
             model version (one in ten without a Git SHA)

Then, median of --repeat, with the window `--since 7d` covering every run:

  run_stats         `service.stats.run_stats` in this process, opening the
                    workspace each time (schema check included)
  lockgate stats    `lockgate stats --json` as a subprocess, end to end
                    (interpreter start, imports, query, JSON)
  baseline          a plain SELECT of the same columns into Python, one row
                    per run, task run and attempt, in the same process: the
                    cost of reading what the metrics summarize, before any work
  floor             `python -m lockgate --version` as a subprocess

The target is `lockgate stats` under 1 s end to end; with --strict the exit
status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.stats import run_stats
from lockgate.stores.metadata import schema as t
from lockgate.stores.metadata.sql import SqlMetadataStore

TARGET_S = 1.0
PIPELINES = ("etl", "features", "train", "report")
DAY = 86_400.0
BATCH = 20_000


def median(measure: Callable[[], float], repeat: int) -> float:
    """The median of `repeat` measurements."""
    return statistics.median(measure() for _ in range(repeat))


def build(db: Path, runs: int, tasks: int, seed: int = 7) -> dict[str, int]:
    """Create the database and fill it; row counts per table."""
    SqlMetadataStore(f"sqlite:///{db}").close()  # the real schema, migrated
    engine = sa.create_engine(f"sqlite:///{db}")
    rng = random.Random(seed)
    now = time.time()
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in t.metadata.tables}
    counts = dict.fromkeys(t.metadata.tables, 0)

    def flush(conn: sa.Connection, force: bool = False) -> None:
        for name, pending in rows.items():
            if pending and (force or len(pending) >= BATCH):
                conn.execute(t.metadata.tables[name].insert(), pending)
                counts[name] += len(pending)
                pending.clear()

    def add(table: sa.Table, **values: Any) -> None:
        # executemany needs every row of a table to name the same columns
        rows[table.name].append(
            {c.name: values.get(c.name) for c in table.columns if c.name != "id" or "id" in values}
        )

    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA synchronous = OFF")
        for pid, name in enumerate(PIPELINES, 1):
            conn.execute(
                t.pipelines.insert(), {"id": pid, "name": name, "created_at": now - 9 * DAY}
            )
            conn.execute(
                t.pipeline_versions.insert(),
                {
                    "id": pid,
                    "pipeline_id": pid,
                    "version": f"{pid:064x}",
                    "graph": {},
                    "created_at": now - 9 * DAY,
                },
            )
        dataset = "d" * 64
        add(
            t.artifacts,
            sha256=dataset,
            serializer="json",
            size=10,
            type_name="builtins.list",
            origin="task",
            created_at=now - 9 * DAY,
        )
        add(
            t.artifact_versions,
            kind="dataset",
            name="transcripts",
            version=1,
            sha256=dataset,
            created_at=now - 9 * DAY,
        )
        task_run_id = attempt_id = 0
        models = 0
        for i, (pid, created) in enumerate(_runs(rng, runs, now)):
            run_id = f"r-bench-{i:06d}"
            started = created + rng.uniform(0.1, 30)
            status = _status(rng)
            manual = rng.random() < 0.02
            recovered = not manual and rng.random() < 0.01
            clock = started
            gate_node = None
            for n in range(tasks):
                task_run_id += 1
                queued = clock
                count = 1 + (rng.random() < 0.06) + (rng.random() < 0.01)
                if PIPELINES[pid - 1] == "features" and n == 3:
                    count = 4
                for number in range(1, count + 1):
                    attempt_id += 1
                    begun = queued + rng.expovariate(2.0)
                    ended = begun + rng.uniform(0.5, 20)
                    last = number == count
                    add(
                        t.attempts,
                        id=attempt_id,
                        task_run_id=task_run_id,
                        number=number,
                        state="succeeded" if last else "failed",
                        queued_at=queued,
                        started_at=begun,
                        finished_at=ended,
                    )
                    for kind, at in (
                        ("task_queued", queued),
                        ("task_started", begun),
                        ("task_succeeded" if last else "task_retrying", ended),
                    ):
                        add(
                            t.events,
                            run_id=run_id,
                            task_run_id=task_run_id,
                            attempt=number,
                            kind=kind,
                            at=at,
                            payload={},
                        )
                    queued = clock = ended
                add(
                    t.task_runs,
                    id=task_run_id,
                    run_id=run_id,
                    node_id=f"t{n:02d}",
                    map_index=-1,
                    task_name=f"t{n:02d}",
                    state="succeeded",
                    attempts=count,
                    queued_at=queued,
                    started_at=clock,
                    finished_at=clock,
                )
                if n == tasks - 2:
                    gate_node = task_run_id
            finished = clock + 0.05
            add(
                t.runs,
                id=run_id,
                pipeline_id=pid,
                pipeline_version_id=pid,
                status=status,
                params={},
                trigger="schedule",
                git_sha=None if rng.random() < 0.1 else "a" * 40,
                created_at=created,
                started_at=started,
                finished_at=finished,
                heartbeat_at=finished,
            )
            for kind, at, payload in (
                ("run_created", created, {}),
                ("run_started", started, {}),
                (f"run_{status}", finished, {}),
            ):
                add(t.events, run_id=run_id, kind=kind, at=at, payload=payload)
            if manual or recovered:
                by = rng.choice(["cli", "api", "python"]) if manual else "recover"
                add(
                    t.events,
                    run_id=run_id,
                    kind="run_resumed",
                    at=started + 1,
                    payload={"by": by, "previous_status": "failed" if manual else "running"},
                )
            if PIPELINES[pid - 1] == "train" and gate_node is not None:
                for metric, passed in (("accuracy", True), ("auc", rng.random() > 0.08)):
                    add(
                        t.gate_decisions,
                        run_id=run_id,
                        task_run_id=gate_node,
                        metric=metric,
                        value=0.9,
                        op=">=",
                        threshold=0.8,
                        expression=f"{metric} >= 0.8",
                        passed=passed,
                        reason="",
                        at=finished,
                    )
                models += 1
                sha = f"{models:064x}"
                add(
                    t.artifacts,
                    sha256=sha,
                    serializer="json",
                    size=10,
                    type_name="builtins.dict",
                    origin="task",
                    created_at=finished,
                )
                trainer = gate_node - 1
                add(
                    t.lineage_edges,
                    run_id=run_id,
                    task_run_id=trainer,
                    sha256=dataset,
                    direction="consumed",
                )
                add(
                    t.lineage_edges,
                    run_id=run_id,
                    task_run_id=trainer,
                    sha256=sha,
                    direction="produced",
                )
                add(
                    t.artifact_versions,
                    kind="model",
                    name="clf",
                    version=models,
                    sha256=sha,
                    run_id=run_id,
                    task_run_id=trainer,
                    created_at=finished,
                )
            if i % 500 == 0:
                # Runs first: the other tables' rows reference them.
                flush(conn, force=True)
        flush(conn, force=True)
    engine.dispose()
    return {name: n for name, n in counts.items() if n}


def _runs(rng: random.Random, count: int, now: float) -> Iterator[tuple[int, float]]:
    for i in range(count):
        yield 1 + i % len(PIPELINES), now - 6 * DAY + 6 * DAY * i / count - 300 * rng.random()


def _status(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.93:
        return "succeeded"
    if roll < 0.97:
        return "failed"
    return "gate_failed" if roll < 0.98 else "cancelled"


def baseline(db: Path) -> float:
    """Read the runs', task runs' and attempts' columns of the window into Python."""
    begin = time.perf_counter()
    engine = sa.create_engine(f"sqlite:///{db}")
    since = time.time() - 7 * DAY
    with engine.connect() as conn:
        window = t.runs.c.finished_at >= since
        conn.execute(
            sa.select(
                t.runs.c.id,
                t.runs.c.status,
                t.runs.c.created_at,
                t.runs.c.started_at,
                t.runs.c.finished_at,
            ).where(window)
        ).all()
        conn.execute(
            sa.select(t.task_runs.c.task_name, t.task_runs.c.attempts)
            .join(t.runs, t.runs.c.id == t.task_runs.c.run_id)
            .where(window)
        ).all()
        conn.execute(
            sa.select(t.task_runs.c.task_name, t.attempts.c.queued_at, t.attempts.c.started_at)
            .join(t.task_runs, t.task_runs.c.id == t.attempts.c.task_run_id)
            .join(t.runs, t.runs.c.id == t.task_runs.c.run_id)
            .where(window)
        ).all()
    engine.dispose()
    return time.perf_counter() - begin


def in_process(home: Path) -> float:
    """`run_stats` with a freshly opened workspace."""
    begin = time.perf_counter()
    workspace = Workspace(Settings.from_env({}, home=home))
    try:
        result = run_stats(workspace, since="7d")
    finally:
        workspace.close()
    assert result.totals.finished_runs > 0
    return time.perf_counter() - begin


def subprocess_time(args: list[str], env: dict[str, str]) -> float:
    """Wall time of a command that must succeed."""
    begin = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    return time.perf_counter() - begin


def main(argv: list[str] | None = None) -> int:
    """Build, measure, print; exit 1 with --strict if `lockgate stats` misses 1 s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lockgate-bench-stats-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        db = home / "lockgate.db"
        began = time.perf_counter()
        counts = build(db, args.runs, args.tasks)
        built = time.perf_counter() - began
        print(f"lockgate stats benchmark: median of {args.repeat}, SQLite, {os.cpu_count()} CPUs")
        print(f"built in {built:.1f} s: " + ", ".join(f"{n:,} {k}" for k, n in counts.items()))
        env = {**os.environ, "LOCKGATE_HOME": str(home)}
        for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT"):
            env.pop(name, None)
        cli = [sys.executable, "-m", "lockgate", "stats", "--since", "7d", "--json"]
        output = subprocess.run(cli, env=env, check=True, capture_output=True, text=True).stdout
        totals = json.loads(output)["totals"]
        base = median(lambda: baseline(db), args.repeat)
        ours = median(lambda: in_process(home), args.repeat)
        command = median(lambda: subprocess_time(cli, env), args.repeat)
        floor = median(
            lambda: subprocess_time([sys.executable, "-m", "lockgate", "--version"], env),
            args.repeat,
        )
    rows = [
        ("baseline: plain SELECT of the rows into Python", base, ""),
        ("run_stats (in process, workspace opened)", ours, f"{ours / base:.2f}x the baseline"),
        ("floor: python -m lockgate --version", floor, ""),
        ("lockgate stats --json (subprocess)", command, f"{command / base:.2f}x the baseline"),
    ]
    for name, value, note in rows:
        print(f"{name:<52}{value * 1000:>9.0f} ms  {note}")
    met = command < TARGET_S
    print(
        f"{totals['finished_runs']:,} runs in the window; target: `lockgate stats` under "
        f"{TARGET_S:.0f} s end to end: {'met' if met else 'MISSED'}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runs": args.runs,
                    "tasks": args.tasks,
                    "repeat": args.repeat,
                    "rows": counts,
                    "seconds": {name: value for name, value, _ in rows},
                    "target_met": met,
                },
                indent=2,
            )
        )
    return 1 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
