"""Named versions: created once per content, consumed by reference, resolved at run start."""

from __future__ import annotations

import pytest

import lockgate as lg
from lockgate.errors import DefinitionError, VersionNotFoundError
from lockgate.model.states import EventKind, RunState

state = {"rows": [1, 2, 3], "fail_once": False, "calls": 0}


@lg.task(retries=1, retry_delay=0)
def ingest() -> lg.Dataset:
    state["calls"] += 1
    if state["fail_once"] and state["calls"] == 1:
        raise ConnectionError("source flaked")
    return lg.Dataset("transcripts", list(state["rows"]), metadata={"source": "test"})


@lg.task
def total(rows: list) -> int:
    return sum(rows)


@lg.pipeline
def produce():
    return total(ingest())


@lg.pipeline
def consume_latest():
    return total(lg.Dataset.ref("transcripts"))


@lg.pipeline
def consume_first():
    return total(lg.Dataset.ref("transcripts", version=1))


@pytest.fixture(autouse=True)
def _reset():
    state.update(rows=[1, 2, 3], fail_once=False, calls=0)


def run(workspace, pipeline):
    return lg.run(pipeline, workspace=workspace, executor="inline")


def test_same_content_is_one_version_across_reruns_and_retries(workspace):
    state["fail_once"] = True
    first = run(workspace, produce)
    assert first.ok and state["calls"] == 2  # one retry
    run(workspace, produce)
    versions = workspace.metadata.list_versions("dataset", "transcripts")
    assert [v.version for v in versions] == [1]
    assert versions[0].metadata == {"source": "test"}
    assert versions[0].run_id == first.run_id and versions[0].node_id == "ingest"
    events = [
        e for e in workspace.metadata.events(first.run_id) if e.kind is EventKind.VERSION_CREATED
    ]
    assert [e.payload["created"] for e in events] == [True]
    state["rows"] = [4, 5]
    run(workspace, produce)
    assert [v.version for v in workspace.metadata.list_versions("dataset", "transcripts")] == [2, 1]


def test_the_output_passes_downstream_as_the_plain_value(workspace):
    result = run(workspace, produce)
    assert result.output() == 6 and result.output("ingest") == [1, 2, 3]


def test_refs_resolve_at_run_start_and_are_recorded(workspace):
    run(workspace, produce)
    state["rows"] = [10, 20]
    run(workspace, produce)
    latest = run(workspace, consume_latest)
    first = run(workspace, consume_first)
    assert latest.output() == 30 and first.output() == 6
    (resolved,) = workspace.metadata.run_versions(latest.run_id)
    assert (resolved.kind, resolved.name, resolved.requested, resolved.version) == (
        "dataset",
        "transcripts",
        None,
        2,
    )
    consumers = {
        e.run_id
        for e in workspace.metadata.lineage(resolved.ref.sha256)
        if e.direction == "consumed"
    }
    assert latest.run_id in consumers and first.run_id not in consumers


def test_a_missing_version_fails_before_the_run_exists(workspace):
    with pytest.raises(VersionNotFoundError, match="dataset 'transcripts' has no version yet"):
        run(workspace, consume_latest)
    assert workspace.metadata.list_runs() == []
    run(workspace, produce)
    with pytest.raises(VersionNotFoundError, match="no version 7"):
        lg.run(_pin(7), workspace=workspace, executor="inline")


def _pin(version: int) -> lg.Pipeline:
    @lg.pipeline(name="pinned")
    def pinned():
        return total(lg.Dataset.ref("transcripts", version=version))

    return pinned


def test_bad_names_and_refs_are_definition_errors():
    with pytest.raises(DefinitionError, match="name 'Bad Name' is invalid"):
        lg.Dataset("Bad Name", [])
    with pytest.raises(DefinitionError, match="positive int"):
        lg.Dataset.ref("x", version=0)
    with pytest.raises(DefinitionError, match="prompt text"):
        lg.Prompt("answer", 42)


def test_a_resumed_run_keeps_the_versions_it_started_with(workspace):
    run(workspace, produce)

    @lg.task
    def check(rows: list) -> int:
        if state.get("block", True):
            raise RuntimeError("blocked")
        return sum(rows)

    @lg.pipeline(name="careful")
    def careful():
        return check(lg.Dataset.ref("transcripts"))

    failed = lg.run(careful, workspace=workspace, executor="inline")
    assert failed.status is RunState.FAILED
    state["rows"] = [100]
    run(workspace, produce)  # a newer version lands meanwhile
    state["block"] = False
    resumed = lg.resume(failed.run_id, pipeline=careful, workspace=workspace, executor="inline")
    assert resumed.output() == 6  # still version 1, as resolved when the run was created
    state.pop("block")
