"""The nightly_eval example, run as a user runs it: `lockgate run nightly_eval` in a copy of it.

A good night passes the groundedness gate; a night where the bot makes things
up (`-p hallucination_rate=0.3`) fails it, skips the all-clear and pages a
real webhook receiver on 127.0.0.1 through the example's own `[[alerts]]`
rule. Both nights leave a transcripts version and a per-cohort scorecard.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from webhook_receiver import WebhookReceiver

from lockgate.cli.main import cli
from lockgate.demo.corpus import AREAS, LANGUAGES
from lockgate.model.states import RunState, TaskState
from lockgate.service import record as record_service
from lockgate.service.compose import Workspace
from lockgate.service.loader import load_module
from lockgate.service.project import parse

EXAMPLE = Path(__file__).parents[2] / "examples" / "nightly_eval"
METRICS = {"groundedness", "context_relevance", "task_completion"}


@pytest.fixture
def project(
    example_copy: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver
) -> Path:
    """A copy of the example as the working directory, its alerts sent to `receiver`."""
    root = example_copy("nightly_eval")
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{receiver.url}/support-bot")
    return root


def run(*params: str) -> tuple[int, str]:
    """`lockgate run nightly_eval -p ...` here; its exit code and run id."""
    args = ["run", "nightly_eval", "--executor", "inline", "--json"]
    for param in params:
        args += ["-p", param]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])["run_id"]


def scorecard(workspace: Workspace, version: int) -> list[dict[str, Any]]:
    (found,) = [
        v
        for v in workspace.metadata.list_versions("dataset", "transcript-scores")
        if v.version == version
    ]
    rows: list[dict[str, Any]] = workspace.artifacts.get(found.ref)
    return rows


def test_a_good_night_passes_the_gate_and_a_bad_one_pages(
    project: Path, receiver: WebhookReceiver
) -> None:
    code, good = run()
    assert code == 0
    workspace = Workspace(project=parse(project / "lockgate.toml"))
    try:
        assert workspace.settings.home == project / ".lockgate"
        document = record_service.build(workspace, good)
        assert document["run"]["status"] == "succeeded"
        assert {n["node"]: n["state"] for n in document["nodes"]}["report"] == "succeeded"
        (gate,) = document["gates"]
        (check,) = gate["checks"]
        assert gate["node"] == "groundedness_gate" and gate["passed"]
        assert check["metric"] == "groundedness" and check["value"] >= 0.85
        # Scored overall and per cohort of both columns, with all three evaluators.
        by_area = document["scores"]["evaluate_product_area"]
        by_language = document["scores"]["evaluate_language"]
        assert set(by_area["metrics"]) == METRICS and by_area["n"] == 120
        assert set(by_area["cohorts"]) == set(AREAS)
        assert set(by_language["cohorts"]) == set(LANGUAGES)
        assert document["alerts"] == [] and receiver.requests == []
        assert document["verification"]["ok"]

        (transcripts,) = workspace.metadata.list_versions("dataset", "transcripts")
        assert transcripts.run_id == good
        assert transcripts.metadata == {"day": "2026-11-24", "rows": 120}
        rows = scorecard(workspace, 1)
        assert {(r["dimension"], r["cohort"]) for r in rows} == {("all", "all")} | {
            ("product_area", area) for area in AREAS
        } | {("language", language) for language in LANGUAGES}
        assert all(set(r) >= METRICS and r["day"] == "2026-11-24" for r in rows)
        assert sum(r["n"] for r in rows if r["dimension"] == "product_area") == 120

        # The bot starts making things up: the gate fails and somebody is paged.
        code, bad = run("day=2026-11-25", "hallucination_rate=0.3")
        assert code == 3  # the CLI's exit code for gate_failed
        document = record_service.build(workspace, bad)
        assert document["run"]["status"] == RunState.GATE_FAILED.value
        (gate,) = document["gates"]
        (check,) = gate["checks"]
        assert not gate["passed"] and check["value"] < 0.85
        assert "groundedness" in check["reason"] and ">= 0.85" in check["reason"]
        nodes = {n["node"]: n for n in document["nodes"]}
        # The all-clear never went out: skipped without an attempt.
        assert nodes["report"]["state"] == TaskState.SKIPPED.value
        assert nodes["report"]["attempts"] == []
        assert nodes["scorecard"]["state"] == "succeeded"  # the bad night's numbers are kept

        (alert,) = receiver.bodies("/support-bot")
        assert alert["event"] == "gate_failed" and alert["rule"] == "support-bot-oncall"
        assert alert["pipeline"] == "nightly_eval" and alert["run_id"] == bad
        (failed,) = [c for c in alert["details"]["checks"] if not c["passed"]]
        assert failed["metric"] == "groundedness" and failed["value"] == check["value"]
        (delivery,) = document["alerts"]
        assert (delivery["event"], delivery["status"]) == ("gate_failed", "sent")

        newest = workspace.metadata.list_versions("dataset", "transcripts")[0]
        assert (newest.version, newest.run_id) == (2, bad)
        assert newest.metadata["day"] == "2026-11-25"
        assert {r["cohort"] for r in scorecard(workspace, 2)} >= set(AREAS) | set(LANGUAGES)
    finally:
        workspace.close()


def test_it_is_scheduled_nightly_and_a_scheduled_run_ingests_the_day_before() -> None:
    module = load_module(str(EXAMPLE / "pipelines.py"))
    schedule = module.nightly_eval.options.schedule
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", "UTC")
    assert module.pick_day("2026-11-24", None) == "2026-11-24"  # by hand: the day asked for
    assert module.pick_day("2026-11-24", dt.date(2026, 12, 1)) == "2026-11-30"
