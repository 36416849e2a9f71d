"""What the UI draws: edges of a stored graph, node states of map nodes, the Gantt chart."""

from __future__ import annotations

import lockgate as lg
from lockgate.model.states import AttemptState, RunState, TaskState
from lockgate.ports.executor import ErrorInfo
from lockgate.ports.metadata import AttemptRecord, RunRecord, TaskRunRecord
from lockgate.server.ui import drawing

T0 = 1_800_000_000.0


@lg.task
def load(n: int) -> list:
    return list(range(n))


@lg.task
def double(x: int) -> int:
    return 2 * x


@lg.task
def report(rows: list, doubled: list) -> str:
    return f"{rows} {doubled}"


@lg.pipeline
def shaped(n: int = 3):
    rows = load(n)
    return report(rows, double.map(rows))


def task_run(id_: int, node: str, state: TaskState, index: int | None = None) -> TaskRunRecord:
    return TaskRunRecord(id_, "r-1", node, index, node, state)


def attempt(task_run_id: int, number: int, state: AttemptState, queued: float, started, finished):
    error = None
    if state in (AttemptState.FAILED, AttemptState.TIMED_OUT):
        error = ErrorInfo("TimeoutError", "timed out after 2 s")
    return AttemptRecord(
        task_run_id, "train", None, number, state, queued, started, finished, error
    )


def test_edges_of_a_stored_graph_follow_data_inputs():
    graph = shaped.graph.to_dict()
    nodes, edges = drawing.graph_edges(graph)
    assert nodes == list(shaped.graph.order)
    assert sorted(edges) == [("double", "report"), ("load", "double"), ("load", "report")]


def test_a_map_node_shows_its_busiest_item_then_its_worst():
    running = [
        task_run(1, "double", TaskState.RUNNING),
        task_run(2, "double", TaskState.SUCCEEDED, 0),
        task_run(3, "double", TaskState.RUNNING, 1),
        task_run(4, "double", TaskState.FAILED, 2),
        task_run(5, "load", TaskState.SUCCEEDED),
    ]
    assert drawing.node_states(running) == {"double": "running", "load": "succeeded"}
    settled = [task_run(1, "double", TaskState.RUNNING), task_run(2, "double", TaskState.FAILED, 0)]
    assert drawing.node_states(settled)["double"] == "failed"
    # Once the whole node has its own end state, that wins.
    ended = [task_run(1, "double", TaskState.FAILED), task_run(2, "double", TaskState.SUCCEEDED, 0)]
    assert drawing.node_states(ended)["double"] == "failed"


def test_the_gantt_shows_queue_time_runs_timeouts_and_retry_waits():
    run = RunRecord(
        "r-1", "p", "v", RunState.SUCCEEDED, {}, "api", T0, started_at=T0 + 1, finished_at=T0 + 10
    )
    records = [task_run(1, "train", TaskState.SUCCEEDED), task_run(2, "skipped", TaskState.SKIPPED)]
    attempts = [
        attempt(1, 1, AttemptState.TIMED_OUT, T0 + 1, T0 + 2, T0 + 4),
        attempt(1, 2, AttemptState.SUCCEEDED, T0 + 5, T0 + 5.5, T0 + 10),
    ]
    chart = drawing.gantt(run, records, attempts)
    assert [row["label"] for row in chart.rows] == ["train"]  # no attempt, no row
    bars = chart.rows[0]["bars"]
    kinds = [bar["kind"] for bar in bars]
    assert kinds == ["queue", "timed_out", "retry-wait", "queue", "succeeded"]
    scale = drawing.GANTT_WIDTH / 10
    first_queue, timed_out, wait = bars[0], bars[1], bars[2]
    assert first_queue["x"] == drawing.GANTT_LABEL + 1 * scale
    assert first_queue["width"] == 1 * scale
    assert timed_out["width"] == 2 * scale and "timed out after 2 s" in timed_out["title"]
    assert wait["x"] == drawing.GANTT_LABEL + 4 * scale and wait["width"] == 1 * scale
    assert [t["label"] for t in chart.ticks][:3] == ["0s", "5s", "10s"]


def test_big_runs_draw_a_bounded_number_of_gantt_rows():
    run = RunRecord("r-1", "p", "v", RunState.RUNNING, {}, "api", T0)
    records = [task_run(i, f"n{i}", TaskState.QUEUED) for i in range(1, 1001)]
    attempts = [attempt(i, 1, AttemptState.QUEUED, T0 + 1, None, None) for i in range(1, 1001)]
    chart = drawing.gantt(run, records, attempts)
    assert len(chart.rows) == drawing.GANTT_ROWS and chart.left_out == 1000 - drawing.GANTT_ROWS


def test_trend_lines_skip_gaps():
    line = drawing.trend_line([None, 1.0, None, 0.5], width=30, height=12)
    assert line["points"] == "10.0,4.0 30.0,8.0" and line["last"] == 0.5
    assert line["dots"] == [(10.0, 4.0), (30.0, 8.0)]
    assert drawing.trend_line([None, None])["points"] == ""
