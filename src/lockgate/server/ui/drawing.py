"""What the UI's SVG pictures are made of: DAG boxes and edges, Gantt bars, trend lines.

Plain data for the templates (numbers and strings, escaped by Jinja), built
from stored rows with `lockgate.model.layout`. Nothing here writes markup, so
nothing here can inject any.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lockgate.model.layout import Layout, layered_layout
from lockgate.model.refs import NodeRef, decode, walk_refs
from lockgate.model.states import TaskState
from lockgate.ports.metadata import AttemptRecord, RunRecord, TaskRunRecord

#: Gantt rows drawn at most; a bigger run says how many were left out.
GANTT_ROWS = 300
GANTT_WIDTH = 900.0
GANTT_ROW = 18.0
GANTT_LABEL = 180.0

# The state a mapped node shows, from the states of its items: the first found wins.
_MAP_PRECEDENCE = (
    TaskState.RUNNING,
    TaskState.RETRYING,
    TaskState.QUEUED,
    TaskState.WAITING,
    TaskState.FAILED,
    TaskState.CANCELLED,
    TaskState.PENDING,
    TaskState.SKIPPED,
    TaskState.SUCCEEDED,
    TaskState.CACHED,
)


@dataclass(frozen=True, slots=True)
class Picture:
    """A laid-out graph: boxes (with id, label, link, state) and edge paths."""

    width: float
    height: float
    node_width: float
    node_height: float
    boxes: list[dict[str, Any]]
    edges: list[str]


def graph_edges(graph: Mapping[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    """Node ids (topological order) and (upstream, downstream) edges of a stored graph."""
    nodes = [node["id"] for node in graph["nodes"]]
    edges: list[tuple[str, str]] = []
    for node in graph["nodes"]:
        upstream: dict[str, None] = {}
        for ref in walk_refs((decode(node["args"]), decode(node["kwargs"]))):
            if isinstance(ref, NodeRef):
                upstream.setdefault(ref.node, None)
        for after in node.get("after", ()):
            upstream.setdefault(after, None)
        edges.extend((up, node["id"]) for up in upstream)
    return nodes, edges


def node_states(records: Sequence[TaskRunRecord]) -> dict[str, str]:
    """Each node's state; a mapped node shows its busiest (or worst) item's."""
    whole: dict[str, TaskState] = {}
    items: dict[str, set[TaskState]] = {}
    for record in records:
        if record.map_index is None:
            whole[record.node_id] = record.state
        else:
            items.setdefault(record.node_id, set()).add(record.state)
    states = {node: state.value for node, state in whole.items()}
    for node, found in items.items():
        if whole.get(node) in (None, TaskState.RUNNING, TaskState.PENDING):
            states[node] = next(s for s in _MAP_PRECEDENCE if s in found).value
    return states


def _edge_path(layout: Layout, up: str, down: str) -> str:
    a, b = layout.boxes[up], layout.boxes[down]
    x1, y1 = a.x + layout.node_width, a.y + layout.node_height / 2
    x2, y2 = b.x, b.y + layout.node_height / 2
    mid = (x1 + x2) / 2
    return f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"


def picture(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]],
    *,
    labels: Mapping[str, str] | None = None,
    states: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
    kinds: Mapping[str, str] | None = None,
    node_width: float = 160.0,
) -> Picture:
    """Lay out a graph and describe each box and edge for the SVG template."""
    layout = layered_layout(nodes, edges, node_width=node_width)
    labels, states, links, kinds = labels or {}, states or {}, links or {}, kinds or {}
    boxes = []
    for node in nodes:
        box = layout.boxes[node]
        label = labels.get(node, node)
        boxes.append(
            {
                "id": node,
                "x": box.x,
                "y": box.y,
                "label": label if len(label) <= 22 else label[:21] + "…",
                "title": label,
                "state": states.get(node, "pending"),
                "href": links.get(node),
                "kind": kinds.get(node, "task"),
            }
        )
    paths = [_edge_path(layout, up, down) for up, down in dict.fromkeys(edges)]
    return Picture(layout.width, layout.height, layout.node_width, layout.node_height, boxes, paths)


@dataclass
class Gantt:
    """Rows of bars on one time axis (seconds since the run was created)."""

    width: float = GANTT_WIDTH + GANTT_LABEL
    height: float = 0.0
    span: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    left_out: int = 0


def gantt(
    run: RunRecord, records: Sequence[TaskRunRecord], attempts: Sequence[AttemptRecord]
) -> Gantt:
    """Each task run's attempts: queue time, run time (coloured by outcome) and retry waits."""
    now = time.time()
    start = run.created_at
    end = run.finished_at or now
    for attempt in attempts:
        end = max(end, attempt.finished_at or now if attempt.started_at else attempt.queued_at)
    span = max(end - start, 1e-3)
    scale = GANTT_WIDTH / span
    by_task_run: dict[int, list[AttemptRecord]] = {}
    for attempt in attempts:
        by_task_run.setdefault(attempt.task_run_id, []).append(attempt)
    chart = Gantt(span=span)
    shown = [r for r in records if r.id in by_task_run]
    chart.left_out = max(0, len(shown) - GANTT_ROWS)

    def x(at: float) -> float:
        return round(GANTT_LABEL + (at - start) * scale, 1)

    for row, record in enumerate(shown[:GANTT_ROWS]):
        bars = []
        previous_end: float | None = None
        for attempt in sorted(by_task_run[record.id], key=lambda a: a.number):
            if previous_end is not None and attempt.queued_at > previous_end:
                bars.append(_bar("retry-wait", x(previous_end), x(attempt.queued_at), attempt))
            started = attempt.started_at
            queued_until = started if started is not None else (attempt.finished_at or now)
            bars.append(_bar("queue", x(attempt.queued_at), x(queued_until), attempt))
            if started is not None:
                finished = attempt.finished_at or now
                bars.append(_bar(attempt.state.value, x(started), x(finished), attempt))
            previous_end = attempt.finished_at
        chart.rows.append({"label": record.label, "y": row * GANTT_ROW, "bars": bars})
    chart.height = max(1, len(chart.rows)) * GANTT_ROW + 20
    step = _tick_step(span)
    tick = 0.0
    while tick <= span:
        chart.ticks.append({"x": x(start + tick), "label": _seconds(tick)})
        tick += step
    return chart


def _bar(kind: str, x1: float, x2: float, attempt: AttemptRecord) -> dict[str, Any]:
    what = {"queue": "queued", "retry-wait": "waiting to retry"}.get(kind, kind)
    title = f"attempt {attempt.number}: {what}"
    if kind == attempt.state.value and attempt.error is not None:
        title += f" ({attempt.error.summary()[:200]})"
    return {"kind": kind, "x": x1, "width": max(1.0, round(x2 - x1, 1)), "title": title}


def _tick_step(span: float) -> float:
    for step in (0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 6 * 3600, 86400):
        if span / step <= 8:
            return step
    return span / 8


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:g}h"
    if value >= 60:
        return f"{value / 60:g}m"
    return f"{value:g}s"


def trend_line(
    values: Sequence[float | None], *, width: float = 240.0, height: float = 48.0
) -> dict[str, Any]:
    """A polyline (and a dot per value) for a small trend chart; missing values are skipped."""
    known = [v for v in values if v is not None]
    if not known:
        return {"points": "", "dots": [], "width": width, "height": height, "last": None}
    low, high = min(known), max(known)
    spread = (high - low) or 1.0
    step = width / max(1, len(values) - 1)
    dots = [
        (round(i * step, 1), round(height - 4 - (v - low) / spread * (height - 8), 1))
        for i, v in enumerate(values)
        if v is not None
    ]
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in dots)
    return {"points": points, "dots": dots, "width": width, "height": height, "last": known[-1]}
