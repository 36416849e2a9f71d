"""Ray's workloads, for reference: remote tasks and ObjectRefs, nothing durable.

Run in lockgate's .venv (ray is one of its extras). `ray.init(num_cpus=2)`
on a local instance in a temp dir, and its two workers' first task, are
setup; usage stats off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ARRAY_ELEMENTS, main


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    import numpy as np
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        _temp_dir=str(workdir / "ray"),
    )

    @ray.remote
    def noop(previous: int) -> int:
        return previous + 1

    # Ray starts its workers lazily: the first task waits 0.5-1.5 s for one. Waiting
    # here keeps that start-up in setup, out of the 1-task run subtracted from every N.
    ray.get([noop.remote(0) for _ in range(2)])

    @ray.remote
    def gather(*values: int) -> int:
        return len(values)

    @ray.remote
    def make_array() -> np.ndarray:
        return np.ones(ARRAY_ELEMENTS)

    @ray.remote
    def double(x: np.ndarray) -> np.ndarray:
        return x * 2

    @ray.remote
    def increment(x: np.ndarray) -> np.ndarray:
        return x + 1

    @ray.remote
    def combine(a: np.ndarray, b: np.ndarray) -> float:
        return float(a[0] + b[0] + a.size)

    def run() -> Any:  # ray.shutdown() at exit, after the clock stops
        if workload == "chain":
            value = noop.remote(0)
            for _ in range(n - 1):
                value = noop.remote(value)
        elif workload == "fanout":
            source = noop.remote(-1)
            value = gather.remote(*[noop.remote(source) for _ in range(n)])
        else:
            a = make_array.remote()
            value = combine.remote(double.remote(a), increment.remote(a))
        return ray.get(value)

    return run


if __name__ == "__main__":
    main(setup)
