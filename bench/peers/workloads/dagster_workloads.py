"""Dagster's workloads: ops run with `execute_in_process`, or assets run with `materialize`.

Both against a DagsterInstance in a temp DAGSTER_HOME (SQLite run and event
storage, telemetry off in its dagster.yaml), so every event is durable.
`execute_in_process` keeps op outputs in memory; `materialize` writes each
asset's value with the default filesystem IO manager (pickles). Both use
Dagster's in-process executor; the default multiprocess executor (a fresh
Python process per op, whose cost is mostly start-up) is not measured.

No `from __future__ import annotations`: Dagster resolves the annotations
of locally defined ops at definition time.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ARRAY_ELEMENTS, main


def op_job(workload: str, n: int) -> Any:
    import dagster as dg
    import numpy as np

    @dg.op
    def noop(previous: int) -> int:
        return previous + 1

    @dg.op
    def start() -> int:
        return 0

    @dg.op
    def source() -> int:
        return -1

    @dg.op
    def gather(values: list) -> int:
        return len(values)

    @dg.op
    def make_array() -> np.ndarray:
        return np.ones(ARRAY_ELEMENTS)

    @dg.op
    def double(x: np.ndarray) -> np.ndarray:
        return x * 2

    @dg.op
    def increment(x: np.ndarray) -> np.ndarray:
        return x + 1

    @dg.op
    def combine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a[0] + b[0] + a.size)

    @dg.job(name=f"{workload}_{n}")
    def job() -> None:
        if workload == "chain":
            value = noop.alias("n1")(start())
            for i in range(2, n + 1):
                value = noop.alias(f"n{i}")(value)
        elif workload == "fanout":
            s = source()
            gather([noop.alias(f"b{i}")(s) for i in range(n)])
        else:
            a = make_array()
            combine(double(a), increment(a))

    return job


def assets(workload: str, n: int) -> tuple[list[Any], str]:
    """The asset definitions and the sink's name."""
    import dagster as dg
    import numpy as np

    def step(name: str, upstream: str | None, value: int = 0) -> Any:
        if upstream is None:

            @dg.asset(name=name)
            def first() -> int:
                return value

            return first

        @dg.asset(name=name, ins={"previous": dg.AssetIn(upstream)})
        def next_one(previous: int) -> int:
            return previous + 1

        return next_one

    if workload == "chain":
        defs = [step("n1", None, 1)] + [step(f"n{i}", f"n{i - 1}") for i in range(2, n + 1)]
        return defs, f"n{n}"
    if workload == "fanout":
        branches = [step(f"b{i}", "source") for i in range(n)]

        @dg.asset(ins={f"b{i}": dg.AssetIn(f"b{i}") for i in range(n)})
        def gather(**values: int) -> int:
            return len(values)

        return [step("source", None, -1), *branches, gather], "gather"

    @dg.asset
    def a() -> np.ndarray:
        return np.ones(ARRAY_ELEMENTS)

    @dg.asset
    def b(a: np.ndarray) -> np.ndarray:
        return a * 2

    @dg.asset
    def c(a: np.ndarray) -> np.ndarray:
        return a + 1

    @dg.asset
    def d(b: np.ndarray, c: np.ndarray) -> float:
        return float(b[0] + c[0] + b.size)

    return [a, b, c, d], "d"


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    import dagster as dg

    instance = dg.DagsterInstance.get()  # DAGSTER_HOME: set by run.py to a temp dir
    if config == "ops":
        job = op_job(workload, n)

        def run_ops() -> Any:
            result = job.execute_in_process(instance=instance)
            sink = {"chain": f"n{n}", "fanout": "gather", "diamond": "combine"}[workload]
            return result.output_for_node(sink)

        return run_ops

    defs, sink = assets(workload, n)

    def run_assets() -> Any:
        result = dg.materialize(defs, instance=instance)
        return result.output_for_node(sink)

    return run_assets


if __name__ == "__main__":
    main(setup)
