"""Per-task overhead of lockgate with durable state, against a baseline measured in the same run.

    make bench            # or: .venv/bin/python bench/overhead.py [--tasks N] [--repeat R]

Workload: a chain of N no-op tasks on the inline executor, with the default
durable SQLite store (WAL, synchronous=FULL) in a temporary directory.
Baseline: N plain Python calls, each followed by one durable SQLite commit
(the same pragmas): the least any orchestrator with durable per-task state
pays. The ratio is lockgate's cost in units of that floor. Also reported: the
time to `import lockgate` in a fresh interpreter. Medians of R runs.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lockgate as lg
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings


@lg.task
def noop(previous: int) -> int:
    return previous + 1


def chain_pipeline(n: int) -> lg.Pipeline:
    @lg.pipeline(name=f"chain_{n}")
    def chain():
        value = noop(0)
        for _ in range(n - 1):  # a plain Python loop building n nodes, not a placeholder loop
            value = noop(value)
        return value

    return chain


def lockgate_chain(n: int) -> float:
    pipeline = chain_pipeline(n)
    _ = pipeline.graph  # tracing is not part of execution overhead
    with tempfile.TemporaryDirectory() as home:
        workspace = Workspace(Settings.from_env({}, home=home))
        _ = workspace.metadata, workspace.artifacts  # open stores before timing
        start = time.perf_counter()
        result = lg.run(pipeline, workspace=workspace, executor="inline")
        elapsed = time.perf_counter() - start
        assert result.ok and result.output() == n
        workspace.close()
    return elapsed


def baseline_chain(n: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(Path(directory) / "b.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE results (node INTEGER PRIMARY KEY, value INTEGER)")
        start = time.perf_counter()
        value = 0
        for i in range(n):
            value = noop.fn(value)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO results VALUES (?, ?)", (i, value))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return elapsed


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import lockgate; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.tasks
    ours = statistics.median(lockgate_chain(n) for _ in range(args.repeat))
    floor = statistics.median(baseline_chain(n) for _ in range(args.repeat))
    imports = statistics.median(import_time() for _ in range(args.repeat))
    print(f"chain of {n} no-op tasks, inline executor, durable SQLite (median of {args.repeat})")
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'lockgate per task (ms)':<44}{ours / n * 1000:>12.3f}")
    print(f"{'baseline: call + 1 durable commit (ms)':<44}{floor / n * 1000:>12.3f}")
    print(f"{'ratio lockgate / baseline':<44}{ours / floor:>12.2f}")
    print(f"{'import lockgate (ms)':<44}{imports * 1000:>12.1f}")


if __name__ == "__main__":
    main()
