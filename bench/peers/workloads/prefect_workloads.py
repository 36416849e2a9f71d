"""Prefect's workloads: a flow of tasks on the default task runner, state on a local server.

run.py gives each process a fresh PREFECT_HOME with no PREFECT_API_URL, so
Prefect starts its local server (a subprocess, SQLite in PREFECT_HOME) the way
a local run does; setup opens a client, which starts it. Every flow and task
run's state is recorded by that server (durable); task results are not
persisted (Prefect's default). The chain calls tasks directly; the fan-out
submits them to the default ThreadPoolTaskRunner. Logs at WARNING, analytics off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ARRAY_ELEMENTS, main


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    import numpy as np
    from prefect import flow, get_client, task

    with get_client(sync_client=True) as client:  # starts the local server
        client.hello()

    @task
    def noop(previous: int) -> int:
        return previous + 1

    @task
    def gather(values: list) -> int:
        return len(values)

    @task
    def make_array() -> np.ndarray:
        return np.ones(ARRAY_ELEMENTS)

    @task
    def double(x: np.ndarray) -> np.ndarray:
        return x * 2

    @task
    def increment(x: np.ndarray) -> np.ndarray:
        return x + 1

    @task
    def combine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a[0] + b[0] + a.size)

    @flow(name=f"{workload}-{n}")
    def chain() -> int:
        value = noop(0)
        for _ in range(n - 1):
            value = noop(value)
        return value

    @flow(name=f"{workload}-{n}")
    def fanout() -> int:
        source = noop(-1)
        return gather([noop.submit(source) for _ in range(n)])

    @flow(name=workload)
    def diamond() -> float:
        a = make_array()
        return combine(double(a), increment(a))

    return {"chain": chain, "fanout": fanout, "diamond": diamond}[workload]


if __name__ == "__main__":
    main(setup)
