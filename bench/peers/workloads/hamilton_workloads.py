"""Hamilton's workloads, for reference: its default driver, in memory, nothing durable.

Hamilton builds the DAG from function names and parameter names, so each
node is a generated function in a generated module; building the driver is
setup. On a 1,000-chain the default driver overflows Python's recursion
limit (reported as the error, not worked around).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import ARRAY_ELEMENTS, main


def source_code(workload: str, n: int) -> tuple[str, str]:
    """The generated module's source and the name of the sink node."""
    lines = ["import numpy as np", ""]
    if workload == "chain":
        lines += ["def n0() -> int:", "    return 1", ""]
        for i in range(1, n):
            lines += [f"def n{i}(n{i - 1}: int) -> int:", f"    return n{i - 1} + 1", ""]
        return "\n".join(lines), f"n{n - 1}"
    if workload == "fanout":
        lines += ["def source() -> int:", "    return -1", ""]
        for i in range(n):
            lines += [f"def b{i}(source: int) -> int:", "    return source + 1", ""]
        params = ", ".join(f"b{i}: int" for i in range(n))
        lines += [f"def gather({params}) -> int:", f"    return {n}", ""]
        return "\n".join(lines), "gather"
    lines += [
        "def a() -> np.ndarray:",
        f"    return np.ones({ARRAY_ELEMENTS})",
        "",
        "def b(a: np.ndarray) -> np.ndarray:",
        "    return a * 2",
        "",
        "def c(a: np.ndarray) -> np.ndarray:",
        "    return a + 1",
        "",
        "def d(b: np.ndarray, c: np.ndarray) -> float:",
        "    return float(b[0] + c[0] + b.size)",
        "",
    ]
    return "\n".join(lines), "d"


def setup(workload: str, n: int, config: str, workdir: Path) -> Callable[[], Any]:
    from hamilton import driver

    code, sink = source_code(workload, n)
    module = types.ModuleType(f"{workload}_{n}")
    sys.modules[module.__name__] = module  # Hamilton keeps the functions defined in it
    exec(compile(code, f"<{workload}_{n}>", "exec"), module.__dict__)
    dr = driver.Builder().with_modules(module).build()

    def run() -> Any:
        return dr.execute([sink])[sink]

    return run


if __name__ == "__main__":
    main(setup)
