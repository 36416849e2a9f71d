"""Writing a benchmark's rows to bench/results/<name>.json, the same shape for every script."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_rows(name: str, rows: list[tuple[str, str, str]], **meta: object) -> Path:
    """Save `rows` (measure, value, note) with `meta` (tasks, repeat, ...) as results/NAME.json."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    table = [dict(zip(("measure", "value", "note"), r, strict=True)) for r in rows]
    path.write_text(json.dumps({**meta, "rows": table}, indent=2))
    return path
