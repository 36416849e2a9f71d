"""The floor: the same workloads as plain Python calls, no orchestrator, nothing durable.

The diamond hands its arrays on the way a script without an orchestrator
would keep them between steps: np.save to a file, np.load back (no fsync).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ARRAY_ELEMENTS, main


def noop(previous: int) -> int:
    return previous + 1


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    import numpy as np

    def chain() -> int:
        value = noop(0)
        for _ in range(n - 1):
            value = noop(value)
        return value

    def fanout() -> int:
        source = noop(-1)
        return len([noop(source) for _ in range(n)])

    def diamond() -> float:
        np.save(workdir / "a.npy", np.ones(ARRAY_ELEMENTS))
        np.save(workdir / "b.npy", np.load(workdir / "a.npy") * 2)
        np.save(workdir / "c.npy", np.load(workdir / "a.npy") + 1)
        b, c = np.load(workdir / "b.npy"), np.load(workdir / "c.npy")
        return float(b[0] + c[0] + b.size)

    return {"chain": chain, "fanout": fanout, "diamond": diamond}[workload]


if __name__ == "__main__":
    main(setup)
