"""How far one pipeline scales: a 100,000-node graph, and a 10,000-way fan-out run.

    make bench                      # or: .venv/bin/python bench/scale.py [--quick]

Each measurement runs in a fresh interpreter, so its peak RSS is its own:

  graph     trace, validate (unknown nodes, cycles), order and hash a pipeline of
            N nodes: a chain (each node consumes the previous one) and a fan-out
            (one source, N-2 consumers, one sink gathering them). Targets: under
            5 s and 1 GB for N = 100,000.
  fan-out   run a 10,000-way fan-out end to end on the process executor with the
            default durable SQLite store: it must complete; time and peak RSS of
            the coordinator are reported.

Every figure is the median of --repeat runs; the baseline, measured in the same
run, is a plain Python loop building the same N-element graph as dicts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap

from results_file import write_rows

GRAPH = textwrap.dedent(
    """
    import json, resource, sys, time

    start = time.perf_counter()
    import lockgate as lg

    N, SHAPE = int(sys.argv[1]), sys.argv[2]


    @lg.task
    def step(x: int) -> int:
        return x


    @lg.task
    def gather(xs: list) -> int:
        return len(xs)


    @lg.pipeline
    def chain():
        value = 0
        for _ in range(N):
            value = step(value)
        return value


    @lg.pipeline
    def fan():
        source = step(0)
        return gather([step(source) for _ in range(N - 2)])


    pipeline = chain if SHAPE == "chain" else fan
    traced = time.perf_counter()
    version = pipeline.version  # traces, validates, orders and hashes the graph
    print(json.dumps({
        "seconds": time.perf_counter() - traced,
        "import": traced - start,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "version": version,
    }))
    """
)

BASELINE = textwrap.dedent(
    """
    import hashlib, json, sys, time

    N = int(sys.argv[1])
    start = time.perf_counter()
    nodes = [{"id": f"step_{i}", "args": [{"node": f"step_{i - 1}"}] if i else [0]}
             for i in range(N)]
    order = [n["id"] for n in nodes]
    digest = hashlib.sha256(json.dumps(nodes, sort_keys=True).encode()).hexdigest()
    print(json.dumps({"seconds": time.perf_counter() - start}))
    """
)

FAN_OUT = textwrap.dedent(
    """
    import json, resource, sys, tempfile, time

    import lockgate as lg
    from lockgate.service.compose import Workspace
    from lockgate.service.config import Settings

    N = int(sys.argv[1])


    @lg.task
    def source() -> int:
        return 1


    @lg.task
    def leaf(x: int, i: int) -> int:
        return x + i


    @lg.task
    def sink(xs: list) -> int:
        return sum(xs)


    @lg.pipeline
    def wide():
        s = source()
        return sink([leaf(s, i) for i in range(N)])


    workspace = Workspace(Settings.from_env({}, home=tempfile.mkdtemp()))
    start = time.perf_counter()
    result = lg.run(wide, executor="process", workspace=workspace)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "ok": result.ok,
        "seconds": seconds,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    """
)


def fresh(script: str, *args: object, timeout: float = 900) -> dict[str, float]:
    """Run `script` in a new interpreter; its one JSON line."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(script)
    done = subprocess.run(
        [sys.executable, handle.name, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark script failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Measure, print the table and save it as bench/results/scale.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100_000, help="graph size")
    parser.add_argument("--fan-out", type=int, default=10_000, help="width of the run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 nodes, 1,000-way, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.fan_out, args.repeat = 10_000, 1_000, 1
    rows: list[tuple[str, str, str]] = []

    def row(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"{name:<52}{value:>12}  {note}", flush=True)

    print(f"lockgate scale benchmark: {args.nodes:,} nodes, median of {args.repeat}\n")
    baseline = statistics.median(fresh(BASELINE, args.nodes)["seconds"] for _ in range(args.repeat))
    row(f"baseline: {args.nodes:,} dicts built, ordered, hashed", f"{baseline:.2f} s")
    for shape in ("chain", "fan"):
        runs = [fresh(GRAPH, args.nodes, shape) for _ in range(args.repeat)]
        seconds = statistics.median(r["seconds"] for r in runs)
        rss = statistics.median(r["rss_mb"] for r in runs)
        label = "chain" if shape == "chain" else "fan-out"
        row(
            f"{args.nodes:,}-node {label}: trace, validate, order, hash",
            f"{seconds:.2f} s",
            f"{seconds / baseline:.0f}x the baseline; target < 5 s",
        )
        row(f"{args.nodes:,}-node {label}: peak RSS", f"{rss:.0f} MB", "target < 1 GB")
    runs = [fresh(FAN_OUT, args.fan_out, timeout=1800) for _ in range(args.repeat)]
    if not all(r["ok"] for r in runs):
        raise SystemExit(f"the {args.fan_out:,}-way fan-out did not succeed")
    seconds = statistics.median(r["seconds"] for r in runs)
    row(
        f"{args.fan_out:,}-way fan-out run (process executor)",
        f"{seconds:.1f} s",
        f"{seconds / args.fan_out * 1000:.2f} ms per task, durable SQLite; completed",
    )
    row(
        f"{args.fan_out:,}-way fan-out: coordinator peak RSS",
        f"{statistics.median(r['rss_mb'] for r in runs):.0f} MB",
    )
    print(f"\nwrote {write_rows('scale', rows, nodes=args.nodes, repeat=args.repeat)}")


if __name__ == "__main__":
    main()
