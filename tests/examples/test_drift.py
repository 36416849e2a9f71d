"""The drift example, run as a user runs it: `lockgate run` in a copy of the example.

The ingest "last ran three days ago": while it runs, `time.time` answers three
days back (time-machine's travel, by hand: lockgate reads wall time through
`time.time` only, and the run is inline, in this process), so its run, its
attempts and the transcripts version it creates are stamped exactly as if
they had been written then. Then `drift_train` runs in the present: it must
refuse the stale version before any task runs, name it and the fix, and page a
real webhook receiver on 127.0.0.1 through the example's `[[alerts]]` rule.
A fresh ingest makes it train again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from webhook_receiver import WebhookReceiver

from lockgate.cli.main import cli
from lockgate.model.states import RunState, TaskState
from lockgate.service import record as record_service
from lockgate.service.compose import Workspace
from lockgate.service.project import parse

THREE_DAYS = 3 * 86400


@pytest.fixture
def project(
    example_copy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver
) -> Path:
    """A copy of the example as the working directory, its alerts sent to `receiver`."""
    root = example_copy("drift")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{receiver.url}/data-oncall")
    return root


def run(pipeline: str, *params: str) -> tuple[int, dict]:
    """`lockgate run PIPELINE -p ...` here; its exit code and the --json summary."""
    args = ["run", pipeline, "--executor", "inline", "--json"]
    for param in params:
        args += ["-p", param]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    summary: dict = json.loads(result.stdout.strip().splitlines()[-1])
    return result.exit_code, summary


def test_a_stale_transcripts_version_is_refused_and_pages_and_a_fresh_one_trains(
    project: Path, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time
    with monkeypatch.context() as past:
        past.setattr(time, "time", lambda: now() - THREE_DAYS)
        code, _ = run("drift_ingest", "day=2026-11-21")
    assert code == 0

    code, stale = run("drift_train")
    assert code == 1 and stale["status"] == RunState.FAILED.value
    error = stale["error"]
    assert error.startswith("stale input: dataset:transcripts@1 is 3d 0h old")
    assert "(max_input_age 1d 12h)" in error and "produce a fresh version first" in error

    workspace = Workspace(project=parse(project / "lockgate.toml"))
    try:
        assert workspace.settings.home == project / ".lockgate"
        # Failed fast: every node skipped, not one attempt, no model trained on old data.
        assert workspace.metadata.attempts(stale["run_id"]) == []
        document = record_service.build(workspace, stale["run_id"])
        assert [i["ref"] for i in document["inputs"]] == ["dataset:transcripts@1"]
        assert [(n["node"], n["state"]) for n in document["nodes"]] == [
            ("train_router", TaskState.SKIPPED.value)
        ]
        assert workspace.metadata.list_versions("model", "support-router") == []
        (page,) = receiver.bodies("/data-oncall")
        assert (page["event"], page["rule"], page["severity"]) == (
            "stale_input",
            "data-oncall",
            "critical",
        )
        assert page["pipeline"] == "drift_train" and page["run_id"] == stale["run_id"]
        assert "dataset:transcripts@1 is 3d 0h old" in page["details"]["error"]
        (delivery,) = document["alerts"]
        assert (delivery["event"], delivery["status"]) == ("stale_input", "sent")

        # Resuming cannot route around the guard: it would keep the stale version.
        resumed = CliRunner().invoke(cli, ["resume", stale["run_id"], "--executor", "inline"])
        assert resumed.exit_code != 0
        assert "would run on stale data" in resumed.output
        assert "lockgate run drift_train" in resumed.output
        assert workspace.metadata.attempts(stale["run_id"]) == []

        # The fix: land a fresh day; the same pipeline trains on it, and nobody is paged.
        assert run("drift_ingest", "day=2026-11-24")[0] == 0
        code, fresh = run("drift_train")
        assert code == 0, fresh["error"]
        document = record_service.build(workspace, fresh["run_id"])
        (consumed,) = document["inputs"]
        assert (consumed["ref"], consumed["requested"]) == ("dataset:transcripts@2", "latest")
        (router,) = workspace.metadata.list_versions("model", "support-router")
        assert router.run_id == fresh["run_id"]
        assert router.metadata["days"] == ["2026-11-24"]
        assert router.metadata["holdout_accuracy"] > 0.8
        assert len(receiver.requests) == 1 and document["alerts"] == []
    finally:
        workspace.close()
