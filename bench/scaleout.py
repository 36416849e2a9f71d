"""The Ray executor against the process executor, measured side by side in one run.

    make bench                      # or: .venv/bin/python bench/scaleout.py [--quick]

Both executors get 2 CPUs (2 worker processes; a 2-CPU Ray instance started
once in this process) and the default durable SQLite store in a fresh home.

  per task   a fan-out of N no-op tasks; the marginal cost per task is
             (time of the N-task run - time of a 1-task run) / N, so start-up
             is reported apart
  1 GB       one task makes a 1 GiB float64 array, the next one sums it; run
             twice in a fresh interpreter per executor (Ray started and its
             workers warmed by a 3-task run first), which reports both runs'
             wall times and its own peak RSS (VmHWM): the coordinator's. The
             second run is the figure compared: the first 1 GiB a fresh Ray
             worker allocates is about twice as slow as later ones here. The baseline
             is the same hand-off by hand in the same run: np.save to a file,
             np.load back.

Workers write outputs to the artifact store and read inputs from it, so the
array never reaches the coordinator: its peak RSS stays far below 1 GiB on
both executors. Ray's own start-up (a local instance) is reported apart.
Every figure is the median of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from results_file import write_rows

import lockgate as lg
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings

GIB_ELEMENTS = 1024**3 // 8  # 1 GiB of float64
CPUS = 2


@lg.task
def noop(previous: int) -> int:
    return previous + 1


@lg.task
def gather(values: list) -> int:
    return len(values)


def fan_out(n: int) -> lg.Pipeline:
    @lg.pipeline(name=f"fan_out_{n}")
    def pipeline():
        source = noop(0)
        return gather([noop(source) for _ in range(n)])

    return pipeline


@lg.task
def make_gib() -> np.ndarray:
    return np.full(GIB_ELEMENTS, 1.5)


@lg.task
def total(array: np.ndarray) -> float:
    return float(array.sum())


@lg.pipeline
def handoff():
    return total(make_gib())


def timed_run(pipeline: lg.Pipeline, executor: str) -> float:
    _ = pipeline.graph  # tracing is not execution
    with tempfile.TemporaryDirectory() as home:
        workspace = Workspace(Settings.from_env({}, home=home))
        _ = workspace.metadata, workspace.artifacts
        start = time.perf_counter()
        result = lg.run(pipeline, workspace=workspace, executor=executor, workers=CPUS)
        elapsed = time.perf_counter() - start
        assert result.ok, result.record.error
        workspace.close()
    return elapsed


def handoff_in_fresh_interpreter(executor: str) -> dict[str, float]:
    """Run `handoff` on `executor` in a new interpreter: its wall time and peak RSS."""
    code = f"""
import json, os, re, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).parent)!r})
import scaleout, lockgate as lg
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
if {executor!r} == "ray":
    # Reported apart: a cluster joined with --ray-address is up, its workers warm.
    scaleout.start_ray()
    scaleout.timed_run(scaleout.fan_out(2), "ray")
def once():
    with tempfile.TemporaryDirectory() as home:
        workspace = Workspace(Settings.from_env({{}}, home=home))
        _ = workspace.metadata, workspace.artifacts
        os.sync()
        start = time.perf_counter()
        result = lg.run(
            scaleout.handoff, executor={executor!r}, workers={CPUS}, workspace=workspace
        )
        elapsed = time.perf_counter() - start
        assert result.ok, result.record.error
        assert result.output("total") == 1.5 * scaleout.GIB_ELEMENTS
    return elapsed
first = once()
elapsed = once()
status = Path("/proc/self/status").read_text()
rss = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
print(json.dumps({{"first": first, "seconds": elapsed, "peak_rss_mb": rss}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{executor} hand-off failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def handoff_by_hand() -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "a.npy"
        start = time.perf_counter()
        np.save(path, make_gib.fn())
        value = total.fn(np.load(path))
        elapsed = time.perf_counter() - start
    assert value == 1.5 * GIB_ELEMENTS
    return elapsed


def start_ray() -> float:
    from lockgate.executors.ray import import_ray

    ray = import_ray(None)
    start = time.perf_counter()
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500, help="N for the fan-out")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="N=100, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.repeat = 100, 1
    n, repeat = args.tasks, args.repeat
    rows: list[tuple[str, str, str]] = []

    def row(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"{name:<52}{value:>12}  {note}", flush=True)

    print(f"lockgate scale-out benchmark: {CPUS} CPUs per executor, N={n}, median of {repeat}\n")
    row("Ray: start a local instance", f"{start_ray():.2f} s", "once per run without --ray-address")
    per_task = {}
    for executor in ("process", "ray"):
        timed_run(fan_out(1), executor)  # warm: Ray workers and imports
        single = statistics.median(timed_run(fan_out(1), executor) for _ in range(repeat))
        many = statistics.median(timed_run(fan_out(n), executor) for _ in range(repeat))
        per_task[executor] = (many - single) / n * 1000
        row(f"[{executor}] 1-task run", f"{single * 1000:.0f} ms")
        row(f"[{executor}] fan-out of {n}: end to end", f"{many:.2f} s")
        row(f"[{executor}] fan-out of {n}: per task", f"{per_task[executor]:.2f} ms")
    row(
        "per-task overhead, ray / process",
        f"{per_task['ray'] / per_task['process']:.2f}x",
        "same machine, same run",
    )
    by_hand = []
    runs: dict[str, list[dict[str, float]]] = {"process": [], "ray": []}
    for _ in range(repeat):
        os.sync()
        by_hand.append(handoff_by_hand())
        for executor in runs:
            os.sync()
            runs[executor].append(handoff_in_fresh_interpreter(executor))
    baseline = statistics.median(by_hand)
    row("baseline: 1 GiB np.save + np.load by hand", f"{baseline:.2f} s")
    for executor, measured in runs.items():
        seconds = statistics.median(m["seconds"] for m in measured)
        first = statistics.median(m["first"] for m in measured)
        rss = statistics.median(m["peak_rss_mb"] for m in measured)
        ratio = f"{seconds / baseline:.2f}x the hand-off by hand (first run: {first:.2f} s)"
        row(f"[{executor}] 1 GiB between two tasks", f"{seconds:.2f} s", ratio)
        row(f"[{executor}] coordinator peak RSS during it", f"{rss:.0f} MB", "array: 1024 MB")
    write_rows("scaleout", rows, tasks=n, repeat=repeat)


if __name__ == "__main__":
    main()
