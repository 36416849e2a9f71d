"""The six run metrics (`lockgate stats`, `lg.stats`) over real runs on SQLite."""

from __future__ import annotations

import datetime as dt
import json
import statistics

import pytest
from click.testing import CliRunner

import lockgate as lg
from lockgate.cli.main import cli
from lockgate.errors import PipelineNotFoundError, UsageError
from lockgate.model.states import RunState, Trigger
from lockgate.service import lineage
from lockgate.service.compose import Workspace
from lockgate.service.lifecycle import decide_approval, recover_runs, resume_run
from lockgate.service.stats import parse_window, run_stats, stats_trend

calls: dict[str, int] = {}
switch = {"broken": True, "accuracy": 0.95}


def _fail_first(name: str, times: int) -> None:
    calls[name] = calls.get(name, 0) + 1
    if calls[name] <= times:
        raise RuntimeError(f"{name} failed (call {calls[name]})")


@lg.task(retries=3, retry_delay=0)
def flaky() -> int:
    _fail_first("flaky", 2)  # two retries, then it works: at the limit, not above it
    return 1


@lg.task(retries=3, retry_delay=0)
def stormy(x: int) -> int:
    _fail_first("stormy", 3)
    return x


@lg.task
def breaks(x: int) -> int:
    if switch["broken"]:
        raise ValueError("broken until fixed")
    return x


@lg.task
def ingest() -> lg.Dataset:
    return lg.Dataset("rows", [1, 2, 3])


@lg.task
def fit(rows: list) -> dict:
    return {"w": sum(rows)}


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": switch["accuracy"]}


@lg.task
def handmade() -> dict:
    return {"w": -1}


@lg.pipeline
def retrying():
    return stormy(flaky())


@lg.pipeline
def fragile():
    return breaks(1)


@lg.pipeline
def training():
    model = fit(ingest())
    return lg.register(model, name="clf", scores=lg.gate(score(model), {"accuracy": ">= 0.9"}))


@lg.pipeline
def unsourced():
    return lg.register(handmade(), name="clf")


@lg.pipeline
def approved():
    return lg.approval("ship it?", after=[breaks(2)])


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()
    switch.update(broken=True, accuracy=0.95)


def run(workspace: Workspace, pipeline: lg.Pipeline) -> lg.RunResult:
    return lg.run(pipeline, workspace=workspace, executor="inline")


def by_name(result, name):
    return next(p for p in result.pipelines if p.pipeline == name)


def test_flaky_failing_and_gated_runs(workspace):
    assert run(workspace, retrying).ok
    calls.clear()
    assert run(workspace, retrying).ok
    assert run(workspace, fragile).status is RunState.FAILED
    assert run(workspace, training).ok
    switch["accuracy"] = 0.5
    assert run(workspace, training).status is RunState.GATE_FAILED

    result = run_stats(workspace, since="1h")
    assert [p.pipeline for p in result.pipelines] == ["fragile", "retrying", "training"]
    tasks = {t.task: t for t in by_name(result, "retrying").tasks}
    assert (tasks["flaky"].task_runs, tasks["flaky"].retries, tasks["flaky"].retry_rate) == (
        2,
        4,
        2,
    )
    assert not tasks["flaky"].retry_flagged  # flagged only above 2
    assert (tasks["stormy"].retry_rate, tasks["stormy"].max_retries) == (3, 3)
    assert tasks["stormy"].retry_flagged
    assert by_name(result, "retrying").success_rate == 1.0
    fragile_stats = by_name(result, "fragile")
    assert (fragile_stats.finished_runs, fragile_stats.success_rate) == (1, 0.0)
    assert fragile_stats.success_flagged
    gated = by_name(result, "training")
    assert (gated.gates.evaluations, gated.gates.passed, gated.gates.pass_rate) == (2, 1, 0.5)
    assert (gated.succeeded_clean, gated.success_rate, gated.success_flagged) == (1, 0.5, True)
    assert result.totals.finished_runs == 5 and result.totals.success_rate == 0.6
    assert result.totals.gates.pass_rate == 0.5


def test_percentiles_match_the_stored_timestamps(workspace):
    for _ in range(3):
        assert run(workspace, retrying).ok
        calls.clear()
    assert run(workspace, fragile).status is RunState.FAILED
    store = workspace.metadata
    records = store.list_runs(limit=100)
    durations = [r.finished_at - r.created_at for r in records]
    queues = [r.started_at - r.created_at for r in records]
    waits = [
        a.started_at - a.queued_at
        for r in records
        for a in store.attempts(r.id)
        if a.started_at is not None
    ]

    def quantiles(values):
        cuts = statistics.quantiles(values, n=20, method="inclusive")
        return pytest.approx(statistics.median(values), abs=1e-6), pytest.approx(cuts[18], abs=1e-6)

    totals = run_stats(workspace, since="1h").totals
    assert (totals.run_time_s.count, totals.task_queue_s.count) == (4, len(waits))
    assert (totals.run_time_s.p50, totals.run_time_s.p95) == quantiles(durations)
    assert (totals.run_queue_s.p50, totals.run_queue_s.p95) == quantiles(queues)
    assert (totals.task_queue_s.p50, totals.task_queue_s.p95) == quantiles(waits)


def test_a_run_resumed_by_hand_is_not_a_success_without_intervention(workspace):
    by_hand = run(workspace, fragile)
    switch["broken"] = False
    assert lg.resume(by_hand.run_id, pipeline=fragile, workspace=workspace, executor="inline").ok
    # A coordinator that died mid-run: `recover` takes the run over automatically.
    switch["broken"] = True
    orphan = run(workspace, fragile)
    store = workspace.metadata
    store.set_run_state(orphan.run_id, RunState.RUNNING, orphan.record.finished_at)
    store.heartbeat(orphan.run_id, orphan.record.created_at - 3600)
    switch["broken"] = False
    (recovered,) = recover_runs(workspace, executor="inline")
    assert recovered.run_id == orphan.run_id and recovered.result is not None
    assert recovered.result.ok

    row = by_name(run_stats(workspace, since="1h"), "fragile")
    assert (row.finished_runs, row.succeeded, row.succeeded_clean) == (2, 2, 1)
    assert row.success_rate == 0.5 and row.success_flagged


def test_going_on_after_an_approval_is_not_an_intervention(workspace):
    switch["broken"] = False
    waiting = run(workspace, approved)
    assert waiting.status is RunState.WAITING
    decided = decide_approval(
        workspace, waiting.run_id, "approval", approve=True, by="alice", executor="inline"
    )
    assert decided.status is RunState.SUCCEEDED
    failed = run(workspace, retrying)  # the flaky tasks fail, then succeed
    assert failed.ok
    row = by_name(run_stats(workspace, since="1h"), "approved")
    assert (row.succeeded, row.succeeded_clean, row.success_rate) == (1, 1, 1.0)


def test_the_window_and_the_pipeline_filter(workspace):
    first = run(workspace, fragile)
    second = run(workspace, retrying)
    end_first, end_second = first.record.finished_at, second.record.finished_at
    # [since, now): a run that finished exactly at `since` is in, exactly at `now` is out
    # (the difference of two nearby epochs is exact, so since is exactly end_first).
    edges = run_stats(workspace, since=end_second - end_first, now=end_second)
    assert [p.pipeline for p in edges.pipelines] == ["fragile"]
    assert edges.since == end_first
    both = run_stats(workspace, since="1h", now=end_second + 0.001)
    assert both.totals.finished_runs == 2
    only = run_stats(workspace, pipeline="retrying", since="1h")
    assert [p.pipeline for p in only.pipelines] == ["retrying"]
    assert only.totals.finished_runs == 1 and only.pipeline == "retrying"
    with pytest.raises(PipelineNotFoundError, match=r"'nightly'.*lockgate runs"):
        run_stats(workspace, pipeline="nightly", since="1h")


def test_lineage_completeness_agrees_with_the_lineage_walk(workspace):
    assert run(workspace, training).ok
    assert run(workspace, unsourced).ok
    row = run_stats(workspace, since="1h").totals.lineage
    walked = lineage.lineage_completeness(workspace)
    assert (row.complete, row.total, row.ratio) == (walked["complete"], walked["total"], 0.5)
    assert [(m.model, list(m.missing)) for m in row.incomplete] == [
        (i["model"], i["missing"]) for i in walked["incomplete"]
    ]
    assert by_name(run_stats(workspace, since="1h"), "training").lineage.ratio == 1.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600), (dt.timedelta(hours=2), 7200)],
)
def test_windows(text, seconds):
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["7", "7x", "d7", "-1d", "0h", "", "1d2h"])
def test_bad_windows_say_what_is_accepted(text):
    with pytest.raises(UsageError, match="30m, 24h, 7d or 2w"):
        parse_window(text)


def test_trend_buckets_cover_the_window(workspace):
    assert run(workspace, fragile).status is RunState.FAILED
    assert run(workspace, retrying).ok
    now = workspace.metadata.list_runs(limit=1)[0].finished_at + 1
    trend = stats_trend(workspace, since="2h", buckets=4, now=now)
    assert [b["end_ts"] - b["start_ts"] for b in trend] == [pytest.approx(1800)] * 4
    assert trend[-1]["end_ts"] == now and [b["finished_runs"] for b in trend] == [0, 0, 0, 2]
    assert trend[-1]["success_rate"] == 0.5 and trend[0]["success_rate"] is None
    json.dumps(trend)
    with pytest.raises(UsageError, match="buckets"):
        stats_trend(workspace, since="2h", buckets=0)


def test_lg_stats_reads_the_default_workspace(home_env):
    workspace = Workspace()
    try:
        assert run(workspace, fragile).status is RunState.FAILED
    finally:
        workspace.close()
    result = lg.stats("fragile", since="1d")
    assert result.totals.finished_runs == 1 and result.to_dict()["pipeline"] == "fragile"


def test_the_stats_command(home_env):
    workspace = Workspace()
    try:
        assert run(workspace, retrying).ok
        assert run(workspace, fragile).status is RunState.FAILED
    finally:
        workspace.close()
    runner = CliRunner()
    human = runner.invoke(cli, ["stats", "--since", "1d"])
    assert human.exit_code == 0, human.output
    assert "below 95%" in human.output and "> 2 retries" in human.output
    assert "fragile" in human.output and "stormy" in human.output
    data = json.loads(runner.invoke(cli, ["stats", "--json", "--pipeline", "retrying"]).output)
    (row,) = data["pipelines"]
    assert row["pipeline"] == "retrying" and row["success_rate"] == 1.0
    stormy_row = next(t for t in row["tasks"] if t["task"] == "stormy")
    assert stormy_row["retry_flagged"] and stormy_row["retry_rate"] == 3
    assert data["thresholds"] == {"success_rate_min": 0.95, "retry_rate_max": 2.0}
    assert data["window"] == "7d" and data["window_s"] == 604800


def test_a_bad_window_is_a_usage_error(home_env):
    result = CliRunner().invoke(cli, ["stats", "--since", "yesterday"])
    assert result.exit_code == 2
    assert "'yesterday' is not a window" in result.output and "30m, 24h, 7d or 2w" in result.output


def test_recover_is_the_only_resume_that_is_not_an_intervention(workspace):
    failed = run(workspace, fragile)
    switch["broken"] = False
    resume_run(workspace, failed.run_id, pipeline=fragile, by=Trigger.API, executor="inline")
    row = by_name(run_stats(workspace, since="1h"), "fragile")
    assert (row.succeeded, row.succeeded_clean) == (1, 0)
