"""What every workload script shares: the command line, the clock and the one JSON line out.

Each peer's script (`<peer>.py`, run in that peer's own virtual environment)
defines `setup(workload, n, config, workdir) -> run`, which imports the
framework and defines the tasks; `run()` executes them and returns the sink's
value. This module times both apart and prints

    {"setup_s", "run_s", "peak_rss_mb", "tasks", "value", "ok", "error", "unsupported"}

Standard library only: it runs under every peer's interpreter. Workloads:

  chain    N no-op tasks, each adding 1 to the previous one's output (value N)
  fanout   one source, N no-op tasks reading it, one sink counting them (value N)
  diamond  a -> (b, c) -> d passing 100 MiB float64 arrays (value checked by d)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ARRAY_ELEMENTS = 100 * 1024 * 1024 // 8  # 100 MiB of float64
WORKLOADS = ("chain", "fanout", "diamond")


class Unsupported(Exception):
    """The peer cannot run this workload the way its docs show; the message says why."""


def task_count(workload: str, n: int) -> int:
    return {"chain": n, "fanout": n + 2, "diamond": 4}[workload]


def expected_value(workload: str, n: int) -> float:
    """What the sink returns: chain and fan-out count, the diamond sums first elements."""
    if workload == "diamond":
        return 2.0 + 2.0 + ARRAY_ELEMENTS  # a = ones: b[0] = 2, c[0] = 2
    return float(n)


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec)."""
    status = Path("/proc/self/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else 0.0


def main(setup: Callable[[str, int, str, Path], Callable[[], Any]]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("n", type=int)
    parser.add_argument("--config", default="")
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    out: dict[str, Any] = {
        "tasks": task_count(args.workload, args.n),
        "ok": False,
        "error": None,
        "unsupported": None,
    }
    try:
        start = time.perf_counter()
        run = setup(args.workload, args.n, args.config, args.workdir)
        out["setup_s"] = time.perf_counter() - start
        start = time.perf_counter()
        value = run()
        out["run_s"] = time.perf_counter() - start
        out["value"] = float(value)
        out["ok"] = out["value"] == expected_value(args.workload, args.n)
        if not out["ok"]:
            out["error"] = f"wrong result {value!r}"
    except Unsupported as exc:
        out["unsupported"] = str(exc)
    except BaseException as exc:  # reported in the JSON line, not hidden
        traceback.print_exc()
        out["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    out["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.flush()
    print("\nRESULT " + json.dumps(out), flush=True)
