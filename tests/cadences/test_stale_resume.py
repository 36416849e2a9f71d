"""A resume keeps a run's pinned inputs, so it must not consume one that is now stale."""

from __future__ import annotations

import time

import pytest

import lockgate as lg
from lockgate.errors import RunStateError
from lockgate.model.states import RunState
from lockgate.service.lifecycle import resume_run


@lg.task
def produce(n: int) -> lg.Dataset:
    return lg.Dataset("events", list(range(n)))


@lg.pipeline
def ingest(n: int = 3):
    return produce(n)


@lg.task
def total(rows: list) -> int:
    return sum(rows)


@lg.pipeline(max_input_age=0.5)
def strict():
    return total(lg.Dataset.ref("events"))


def test_resuming_a_run_that_failed_for_a_stale_input_is_refused(workspace):
    assert lg.run(ingest, executor="inline", workspace=workspace).ok
    time.sleep(0.7)
    failed = lg.run(strict, executor="inline", workspace=workspace)
    assert failed.status is RunState.FAILED
    assert lg.run(ingest, {"n": 4}, executor="inline", workspace=workspace).ok  # fresh @2
    with pytest.raises(RunStateError) as refused:
        resume_run(workspace, failed.run_id, pipeline=strict, executor="inline")
    message = str(refused.value)
    assert "dataset:events@1 (" in message and "max_input_age" in message
    assert "lockgate run strict" in message
    assert workspace.metadata.get_run(failed.run_id).status is RunState.FAILED
    assert workspace.metadata.attempts(failed.run_id) == []  # still nothing ran
    fresh = lg.run(strict, executor="inline", workspace=workspace)
    assert fresh.ok and fresh.output() == 6  # a new run takes the fresh version


def test_the_cli_does_not_suggest_resuming_a_stale_input_failure(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from lockgate.cli.main import cli

    monkeypatch.setenv("LOCKGATE_HOME", str(tmp_path / "home"))
    source = tmp_path / "flows.py"
    source.write_text(
        "import lockgate as lg\n\n"
        "@lg.task\ndef produce(n: int) -> lg.Dataset:\n"
        "    return lg.Dataset('events', list(range(n)))\n\n"
        "@lg.pipeline\ndef ingest(n: int = 3):\n    return produce(n)\n\n"
        "@lg.task\ndef total(rows: list) -> int:\n    return sum(rows)\n\n"
        "@lg.pipeline(max_input_age=0.5)\ndef strict():\n"
        "    return total(lg.Dataset.ref('events'))\n"
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["run", f"{source}:ingest", "--executor", "inline"]).exit_code == 0
    time.sleep(0.7)
    stale = runner.invoke(cli, ["run", f"{source}:strict", "--executor", "inline"])
    assert stale.exit_code == 1
    assert "stale input: dataset:events@1" in stale.output
    assert "after a fresh version lands: run the pipeline again" in stale.output
    assert "lockgate resume" not in stale.output
