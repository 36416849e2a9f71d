"""What lockgate costs per task, with durable state, against baselines measured in the same run.

    make bench                      # or: .venv/bin/python bench/overhead.py [--quick]

Workloads, each on the inline and the process executor, with the default
durable SQLite store (WAL; task transitions share a group fsync, see
docs/failures.md) in a fresh temporary home:

  chain    N no-op tasks, each consuming the previous one's output
  fan-out  one source, N no-op tasks reading it, one sink gathering them
  diamond  a -> (b, c) -> d passing 100 MB numpy arrays (a makes one, b and c
           each make a new one from it, d combines both)

Per-task overhead is the marginal cost: (time of the N-task run - time of a
1-task run of the same executor) / N, so pool start-up is reported apart.
Baselines, measured in the same invocation:

  durable commit   a plain Python call plus one SQLite commit with an fsync
                   (WAL, synchronous=FULL): the floor for recording each task
                   durably one fsync at a time
  grouped commit   the same with synchronous=NORMAL, the WAL fsynced by another
                   thread: the floor for lockgate's default (a commit per task
                   before the next runs, fsyncs shared)
  np.save + load   the diamond's hand-offs done by hand: each array np.save'd to
                   a file and np.load'ed by its consumers

Also reported: `import lockgate` in a fresh interpreter, and the coordinator's
peak RSS while it drives a fan-out of 10,000 no-op tasks on the process executor.
Every figure is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from results_file import write_rows

import lockgate as lg
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings

ARRAY_ELEMENTS = 100 * 1024 * 1024 // 8  # 100 MiB of float64


@lg.task
def noop(previous: int) -> int:
    return previous + 1


@lg.task
def gather(values: list) -> int:
    return len(values)


@lg.task
def make_array() -> np.ndarray:
    return np.ones(ARRAY_ELEMENTS)


@lg.task
def double(x: np.ndarray) -> np.ndarray:
    return x * 2


@lg.task
def increment(x: np.ndarray) -> np.ndarray:
    return x + 1


@lg.task
def combine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a[0] + b[0] + a.size)


def chain(n: int) -> lg.Pipeline:
    @lg.pipeline(name=f"chain_{n}")
    def pipeline():
        value = noop(0)
        for _ in range(n - 1):  # a Python loop that builds n nodes
            value = noop(value)
        return value

    return pipeline


def fan_out(n: int) -> lg.Pipeline:
    @lg.pipeline(name=f"fan_out_{n}")
    def pipeline():
        source = noop(0)
        return gather([noop(source) for _ in range(n)])

    return pipeline


@lg.pipeline
def diamond():
    a = make_array()
    return combine(double(a), increment(a))


def timed_run(pipeline: lg.Pipeline, executor: str, workers: int | None = None) -> float:
    _ = pipeline.graph  # tracing is not execution
    with tempfile.TemporaryDirectory() as home:
        workspace = Workspace(Settings.from_env({}, home=home))
        _ = workspace.metadata, workspace.artifacts
        start = time.perf_counter()
        result = lg.run(pipeline, workspace=workspace, executor=executor, workers=workers)
        elapsed = time.perf_counter() - start
        assert result.ok, result.record.error
        workspace.close()
    return elapsed


def durable_commit_baseline(n: int, synchronous: str = "FULL") -> float:
    with tempfile.TemporaryDirectory() as directory:
        conn = sqlite3.connect(Path(directory) / "b.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
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


def numpy_diamond_baseline() -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory)
        start = time.perf_counter()
        np.save(path / "a.npy", make_array.fn())
        b = double.fn(np.load(path / "a.npy"))
        np.save(path / "b.npy", b)
        c = increment.fn(np.load(path / "a.npy"))
        np.save(path / "c.npy", c)
        del b, c
        combine.fn(np.load(path / "b.npy"), np.load(path / "c.npy"))
        return time.perf_counter() - start


def handoff_numpy(durable: bool) -> float:
    array = np.full(ARRAY_ELEMENTS, 3.0)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "a.npy"
        start = time.perf_counter()
        with path.open("wb") as handle:
            np.save(handle, array)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        loaded = np.load(path)
        elapsed = time.perf_counter() - start
    assert loaded[0] == 3.0
    return elapsed


def handoff_store() -> float:
    from lockgate.stores.artifacts import open_artifact_store

    array = np.full(ARRAY_ELEMENTS, 3.0)
    with tempfile.TemporaryDirectory() as directory:
        store = open_artifact_store(directory)
        start = time.perf_counter()
        loaded = store.get(store.put(array))
        elapsed = time.perf_counter() - start
    assert loaded[0] == 3.0
    return elapsed


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import lockgate; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout)


def coordinator_peak_rss_mb(n: int) -> float:
    """Run a fan-out of n in a fresh interpreter; return its (the coordinator's) peak RSS.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent,
    which here has just held 100 MB arrays.
    """
    code = f"""
import json, re, sys, tempfile
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
import overhead, lockgate as lg
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
with tempfile.TemporaryDirectory() as home:
    result = lg.run(overhead.fan_out({n}), executor="process",
                    workspace=Workspace(Settings.from_env({{}}, home=home)))
    assert result.ok, result.record.error
status = Path("/proc/self/status").read_text()
print(json.dumps(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def median(measure: Callable[[], float], repeat: int) -> float:
    return statistics.median(measure() for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="N for chain and fan-out")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss-tasks", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="N=200, 1 repeat, RSS at 1,000")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.repeat, args.rss_tasks = 200, 1, 1000
    n, repeat = args.tasks, args.repeat
    rows: list[tuple[str, str, str]] = []

    def row(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"{name:<50}{value:>14}  {note}", flush=True)

    print(f"lockgate overhead benchmark: N={n}, median of {repeat}, durable SQLite\n")
    floor = median(lambda: durable_commit_baseline(n), repeat) / n * 1000
    row("baseline: call + 1 durable commit", f"{floor:.3f} ms", "per task, same machine, now")
    grouped = median(lambda: durable_commit_baseline(n, "NORMAL"), repeat) / n * 1000
    row("baseline: call + 1 commit, fsync grouped", f"{grouped:.3f} ms", "per task")
    for executor in ("inline", "process"):
        single = median(lambda: timed_run(chain(1), executor), repeat)  # noqa: B023
        row(f"[{executor}] 1-task run (start-up)", f"{single * 1000:.0f} ms")
        for label, build in (("chain", chain), ("fan-out", fan_out)):
            total = median(lambda: timed_run(build(n), executor), repeat)  # noqa: B023
            per_task = (total - single) / n * 1000
            row(f"[{executor}] {label} of {n}: end to end", f"{total:.2f} s")
            row(
                f"[{executor}] {label} of {n}: per task",
                f"{per_task:.3f} ms",
                f"{per_task / floor:.1f}x the durable-commit floor",
            )
    # 100 MB writes swing by 3x here with the state of disk write-back, so each
    # repetition flushes dirty pages, then times the baseline and lockgate back
    # to back; the ratio reported is the median of those pairs.
    handoff = []
    for _ in range(max(repeat, 5)):
        os.sync()
        plain_once = handoff_numpy(durable=False)
        os.sync()
        durable_once = handoff_numpy(durable=True)
        os.sync()
        handoff.append((plain_once, durable_once, handoff_store()))
    plain = statistics.median(h[0] for h in handoff)
    durable = statistics.median(h[1] for h in handoff)
    ours = statistics.median(h[2] for h in handoff)
    row("baseline: 100 MB np.save + np.load", f"{plain:.3f} s")
    row("baseline: 100 MB np.save + fsync + np.load", f"{durable:.3f} s")
    row(
        "lockgate: 100 MB artifact put + verified get",
        f"{ours:.3f} s",
        f"{statistics.median(h[2] / h[0] for h in handoff):.2f}x plain, "
        f"{statistics.median(h[2] / h[1] for h in handoff):.2f}x with fsync",
    )
    for executor in ("inline", "process"):
        pairs = []
        for _ in range(repeat):
            os.sync()
            baseline = numpy_diamond_baseline()
            os.sync()
            pairs.append((baseline, timed_run(diamond, executor)))
        ratio = statistics.median(o / b for b, o in pairs)
        row(
            f"[{executor}] diamond passing 100 MB arrays",
            f"{statistics.median(o for _, o in pairs):.2f} s",
            f"{ratio:.2f}x the same diamond by hand with np.save + np.load",
        )
    row("import lockgate", f"{median(import_time, repeat) * 1000:.0f} ms")
    rss = coordinator_peak_rss_mb(args.rss_tasks)
    row(f"coordinator peak RSS, fan-out of {args.rss_tasks:,} (process)", f"{rss:.0f} MB")
    write_rows("overhead", rows, tasks=n, repeat=repeat)


if __name__ == "__main__":
    main()
