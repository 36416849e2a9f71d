"""lockgate's workloads: `lg.run` on the inline or process executor, durable SQLite state.

Run by bench/peers/run.py with lockgate's .venv and a fresh LOCKGATE_HOME
(the default store: SQLite in WAL with synchronous=FULL, artifacts on disk);
the process executor gets its default pool (one worker per CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ARRAY_ELEMENTS, main


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    import numpy as np

    import lockgate as lg

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

    if workload == "chain":

        @lg.pipeline(name=f"chain_{n}")
        def pipeline():
            value = noop(0)
            for _ in range(n - 1):
                value = noop(value)
            return value

    elif workload == "fanout":

        @lg.pipeline(name=f"fanout_{n}")
        def pipeline():
            source = noop(-1)
            return gather([noop(source) for _ in range(n)])

    else:

        @lg.pipeline(name="diamond")
        def pipeline():
            a = make_array()
            return combine(double(a), increment(a))

    _ = pipeline.graph  # tracing is definition, not execution
    workspace = lg.Workspace()  # from LOCKGATE_HOME
    _ = workspace.metadata, workspace.artifacts  # a new home's schema, as a first run makes it

    def run() -> Any:
        result = lg.run(pipeline, executor=config, workspace=workspace).raise_for_status()
        return result.output()

    return run


if __name__ == "__main__":
    main(setup)
