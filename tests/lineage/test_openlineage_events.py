"""OpenLineage events of real runs: one run per drive, one per attempt, datasets by version.

Every test runs pipelines end to end with `[openlineage] transport = "file"`
and reads the NDJSON back; the `lineage` fixture validates every event
against the official schemas, and `check_i7` asserts exactly one START
(first) and one terminal event for every OpenLineage run.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import lockgate as lg
from lockgate import failpoints
from lockgate.failpoints import FailpointError
from lockgate.model.states import RunState
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.lifecycle import decide_approval
from lockgate.service.loader import load_pipeline
from lockgate.service.openlineage import attempt_uuid, node_uuid, run_uuid

state: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _reset():
    state.update(rows=[3, 1, 2], broken=False, flaky=0, accuracy=0.95)


@lg.task
def ingest() -> lg.Dataset:
    return lg.Dataset("transcripts", list(state["rows"]))


@lg.task
def total(rows: list) -> int:
    return sum(rows)


@lg.task
def check(rows: list) -> list:
    if state["broken"]:
        raise ValueError("rows are not sorted")
    return sorted(rows)


@lg.task(retries=1, retry_delay=0)
def flaky(rows: list) -> list:
    state["flaky"] += 1
    if state["flaky"] == 1:
        raise ConnectionError("source flaked")
    return rows


@lg.task
def numbers(n: int) -> list:
    return list(range(n))


@lg.task
def square(x: int) -> int:
    return x * x


@lg.task
def score(rows: list) -> dict:
    return {"accuracy": state["accuracy"]}


@lg.task
def slow(rows: list) -> list:
    time.sleep(0.4)
    return rows


@lg.task(cache=True)
def remembered(rows: list) -> int:
    return len(rows)


@lg.pipeline
def memo():
    return remembered(ingest())


@lg.pipeline
def produce():
    return total(ingest())


@lg.pipeline
def consume():
    return total(lg.Dataset.ref("transcripts"))


@lg.pipeline
def etl():
    return total(check(ingest()))


@lg.pipeline
def retried():
    return total(flaky(ingest()))


@lg.pipeline
def mapped(n: int = 3):
    return total(square.map(numbers(n)))


@lg.pipeline
def ship():
    rows = ingest()
    checked = lg.gate(score(rows), {"accuracy": ">= 0.9"})
    return lg.register(rows, name="support-bot", scores=checked)


@lg.pipeline
def reviewed():
    rows = ingest()
    ok = lg.approval("publish the totals?", approvers=["alice"], after=[rows])
    return total(rows).after(ok)


@lg.pipeline
def scheduled(logical_date: str = "2026-11-24"):
    return total(ingest())


@lg.pipeline
def crashy():
    return total(slow(ingest()))


def run(workspace: Workspace, pipeline: lg.Pipeline, **kwargs: Any) -> lg.RunResult:
    return lg.run(pipeline, workspace=workspace, executor="inline", **kwargs)


def dataset(entry: dict[str, Any]) -> tuple[str, str]:
    return entry["name"], entry["facets"]["version"]["datasetVersion"]


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["eventType"] for e in events]


def test_runs_and_attempts_are_openlineage_runs_with_dataset_versions(workspace, lineage):
    made, used = run(workspace, produce), run(workspace, consume)
    assert made.ok and used.ok
    assert len(lineage.check_i7()) == 5  # produce, ingest, total; consume, total

    start, end = lineage.of("produce")
    assert (start["eventType"], end["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == end["run"]["runId"] == run_uuid(made.run_id, 1)
    assert [dataset(o) for o in end["outputs"]] == [("dataset:transcripts", "1")]
    assert start["job"]["facets"]["jobType"]["jobType"] == "PIPELINE"
    assert start["job"]["facets"]["jobType"]["integration"] == "LOCKGATE"
    engine = start["run"]["facets"]["processing_engine"]
    assert (engine["name"], engine["version"]) == ("lockgate", lg.__version__)
    assert start["producer"].startswith("https://github.com/lockgate/lockgate")

    ingested = lineage.of("produce.ingest")
    assert types(ingested) == ["START", "COMPLETE"]
    assert ingested[0]["run"]["runId"] == attempt_uuid(made.run_id, "ingest", 1)
    parent = ingested[0]["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == run_uuid(made.run_id, 1)
    assert parent["job"] == {"namespace": "lockgate", "name": "produce", "facets": {}}
    assert ingested[0]["job"]["facets"]["jobType"]["jobType"] == "TASK"
    assert [dataset(o) for o in ingested[1]["outputs"]] == [("dataset:transcripts", "1")]

    summed = lineage.of("produce.total")[-1]
    assert [dataset(i) for i in summed["inputs"]] == [("dataset:transcripts", "1")]
    (output,) = summed["outputs"]
    sha = made.workspace.metadata.task_runs(made.run_id)[-1].output.sha256
    assert dataset(output) == (f"lockgate://artifacts/sha256/{sha}", sha)

    consumer = lineage.of("consume")
    assert [dataset(i) for i in consumer[0]["inputs"]] == [("dataset:transcripts", "1")]
    assert consumer[-1]["outputs"] == []
    used_total = lineage.of("consume.total")[-1]
    assert [dataset(i) for i in used_total["inputs"]] == [("dataset:transcripts", "1")]
    every = lineage.events()
    assert {e["job"]["namespace"] for e in every} == {"lockgate"}
    assert all("nominalTime" not in e["run"]["facets"] for e in every)


def test_a_failed_task_fails_with_its_error_and_aborts_what_it_skipped(workspace, lineage):
    state["broken"] = True
    result = run(workspace, etl)
    assert result.status is RunState.FAILED
    lineage.check_i7()
    checked = lineage.of("etl.check")
    assert types(checked) == ["START", "FAIL"]
    error = checked[1]["run"]["facets"]["errorMessage"]
    assert "rows are not sorted" in error["message"] and error["programmingLanguage"] == "python"
    skipped = lineage.of("etl.total")
    assert types(skipped) == ["START", "ABORT"]
    assert skipped[0]["run"]["runId"] == node_uuid(result.run_id, "total", 1)
    end = lineage.of("etl")[-1]
    assert end["eventType"] == "FAIL"
    assert "node 'check' failed" in end["run"]["facets"]["errorMessage"]["message"]


def test_each_retry_is_a_new_openlineage_run(workspace, lineage):
    result = run(workspace, retried)
    assert result.ok
    runs = lineage.check_i7()
    first, second = (attempt_uuid(result.run_id, "flaky", n) for n in (1, 2))
    assert types(runs[first]) == ["START", "FAIL"]
    assert "source flaked" in runs[first][1]["run"]["facets"]["errorMessage"]["message"]
    assert types(runs[second]) == ["START", "COMPLETE"]
    assert [dataset(i) for i in runs[second][1]["inputs"]] == [("dataset:transcripts", "1")]
    assert types(lineage.of("retried")) == ["START", "COMPLETE"]


def test_a_gate_failure_fails_the_gate_and_the_run_and_aborts_registration(workspace, lineage):
    passed = run(workspace, ship)
    assert passed.ok
    assert [dataset(o) for o in lineage.of("ship")[-1]["outputs"]] == [
        ("dataset:transcripts", "1"),
        ("model:support-bot", "1"),
    ]
    state["accuracy"] = 0.81
    failed = run(workspace, ship)
    assert failed.status is RunState.GATE_FAILED
    runs = lineage.check_i7()
    gate = runs[attempt_uuid(failed.run_id, "gate", 1)]
    assert types(gate) == ["START", "FAIL"]
    assert "accuracy 0.81 fails >= 0.9" in gate[1]["run"]["facets"]["errorMessage"]["message"]
    assert types(runs[node_uuid(failed.run_id, "register", 1)]) == ["START", "ABORT"]
    end = lineage.of("ship")[-1]
    assert end["run"]["runId"] == run_uuid(failed.run_id, 1) and end["eventType"] == "FAIL"
    assert "accuracy 0.81 fails >= 0.9" in end["run"]["facets"]["errorMessage"]["message"]


def test_a_cached_task_run_is_one_complete_openlineage_run_with_the_reused_output(
    workspace, lineage
):
    first, second = run(workspace, memo), run(workspace, memo)
    assert first.ok and second.ok
    runs = lineage.check_i7()
    executed = runs[attempt_uuid(first.run_id, "remembered", 1)]
    cached = runs[node_uuid(second.run_id, "remembered", 1)]
    assert types(cached) == ["START", "COMPLETE"]
    assert cached[1]["outputs"] == executed[1]["outputs"] != []
    assert [dataset(i) for i in cached[1]["inputs"]] == [("dataset:transcripts", "1")]


def test_a_cancelled_run_aborts_with_what_it_had_not_finished(workspace, lineage):
    @lg.task
    def stopper(rows: list) -> list:
        lg.cancel(lg.current().run_id, workspace=workspace)
        time.sleep(0.6)  # the coordinator looks for cancel requests every 0.5 s
        return rows

    @lg.pipeline
    def stopped():
        return total(stopper(ingest()))

    result = run(workspace, stopped)
    assert result.status is RunState.CANCELLED
    runs = lineage.check_i7()
    assert types(runs[attempt_uuid(result.run_id, "stopper", 1)]) == ["START", "COMPLETE"]
    assert types(runs[node_uuid(result.run_id, "total", 1)]) == ["START", "ABORT"]
    assert types(runs[run_uuid(result.run_id, 1)]) == ["START", "ABORT"]


def test_a_map_node_and_each_of_its_items_are_openlineage_runs(workspace, lineage):
    result = run(workspace, mapped)
    assert result.ok
    runs = lineage.check_i7()
    for i in range(3):
        events = runs[attempt_uuid(result.run_id, f"square[{i}]", 1)]
        assert events[0]["job"]["name"] == f"mapped.square[{i}]"
        assert types(events) == ["START", "COMPLETE"] and len(events[1]["outputs"]) == 1
    whole = runs[node_uuid(result.run_id, "square", 1)]
    assert whole[0]["job"]["name"] == "mapped.square" and types(whole) == ["START", "COMPLETE"]


def test_a_resume_is_a_new_drive_that_reports_only_what_it_runs(workspace, lineage):
    state["broken"] = True
    failed = run(workspace, etl)
    state["broken"] = False
    resumed = lg.resume(failed.run_id, pipeline=etl, workspace=workspace, executor="inline")
    assert resumed.ok and resumed.run_id == failed.run_id
    runs = lineage.check_i7()
    rid = failed.run_id
    assert types(runs[run_uuid(rid, 1)]) == ["START", "FAIL"]
    assert types(runs[run_uuid(rid, 2)]) == ["START", "COMPLETE"]
    assert types(lineage.of("etl.ingest")) == ["START", "COMPLETE"]  # committed: not run again
    for attempt, drive, outcome in ((1, 1, "FAIL"), (2, 2, "COMPLETE")):
        events = runs[attempt_uuid(rid, "check", attempt)]
        assert events[-1]["eventType"] == outcome
        assert events[0]["run"]["facets"]["parent"]["run"]["runId"] == run_uuid(rid, drive)
    assert types(runs[node_uuid(rid, "total", 1)]) == ["START", "ABORT"]
    assert types(runs[attempt_uuid(rid, "total", 1)]) == ["START", "COMPLETE"]


def test_a_run_waiting_for_approval_stays_open_until_the_drive_that_ends_it(workspace, lineage):
    waiting = run(workspace, reviewed)
    assert waiting.status is RunState.WAITING
    assert types(lineage.of("reviewed")) == ["START"]
    assert lineage.of("reviewed.approval") == []
    done = decide_approval(
        workspace, waiting.run_id, "approval", approve=True, by="alice", executor="inline"
    )
    assert done.ok
    runs = lineage.check_i7()
    assert types(runs[run_uuid(waiting.run_id, 1)]) == ["START", "COMPLETE"]
    assert run_uuid(waiting.run_id, 2) not in runs
    assert types(lineage.of("reviewed.approval")) == ["START", "COMPLETE"]
    assert types(lineage.of("reviewed.total")) == ["START", "COMPLETE"]


def test_a_drive_whose_coordinator_died_is_failed_by_the_resume(tmp_path, lineage, monkeypatch):
    env = {"LOCKGATE_HEARTBEAT_INTERVAL": "0.05", "LOCKGATE_HEARTBEAT_TIMEOUT": "0.1"}
    workspace = Workspace(Settings.from_env(env, home=tmp_path / "home"))
    monkeypatch.setenv("LOCKGATE_FAILPOINTS", "task.after_return_before_commit@slow:raise")
    failpoints.reset()
    try:
        with pytest.raises(FailpointError):  # the coordinator stops mid-run, like a crash
            lg.run(crashy, workspace=workspace, executor="process", workers=1)
        rid = workspace.metadata.list_runs()[0].id
        assert types(lineage.of("crashy")) == ["START"]
        assert types(lineage.of("crashy.slow")) == ["START"]  # its start was committed
        monkeypatch.delenv("LOCKGATE_FAILPOINTS")
        failpoints.reset()
        time.sleep(0.2)  # the dead coordinator's heartbeat goes stale
        assert lg.resume(rid, pipeline=crashy, workspace=workspace, executor="inline").ok
        runs = lineage.check_i7()
    finally:
        workspace.close()
        failpoints.reset()
    dead = runs[run_uuid(rid, 1)]
    assert types(dead) == ["START", "FAIL"]
    assert "coordinator stopped" in dead[1]["run"]["facets"]["errorMessage"]["message"]
    assert types(runs[attempt_uuid(rid, "slow", 1)]) == ["START", "FAIL"]
    assert types(runs[attempt_uuid(rid, "slow", 2)]) == ["START", "COMPLETE"]
    assert types(runs[run_uuid(rid, 2)]) == ["START", "COMPLETE"]


def test_a_scheduled_run_carries_its_logical_date_as_nominal_time(workspace, lineage):
    assert run(workspace, scheduled, params={"logical_date": "2026-11-24"}).ok
    start, end = lineage.of("scheduled")
    for event in (start, end):
        assert event["run"]["facets"]["nominalTime"]["nominalStartTime"] == (
            "2026-11-24T00:00:00+00:00"
        )


PIPELINE_FILE = """
import lockgate as lg


@lg.task
def hello() -> str:
    return "hi"


@lg.pipeline
def versioned():
    return hello()
"""


def test_the_source_code_location_names_the_file_and_its_git_sha(tmp_path, workspace, lineage):
    repo = tmp_path / "repo"
    repo.mkdir()
    source = repo / "flows.py"
    source.write_text(PIPELINE_FILE)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "flows.py"], check=True)
    subprocess.run([*git, "commit", "-q", "--no-gpg-sign", "-m", "flows"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert run(workspace, load_pipeline(f"{source}:versioned")).ok
    events = lineage.of("versioned") + lineage.of("versioned.hello")
    assert len(events) == 4
    for event in events:
        location = event["job"]["facets"]["sourceCodeLocation"]
        assert location["type"] == "git" and location["version"] == sha
        assert location["url"] == Path(source).resolve().as_uri()
