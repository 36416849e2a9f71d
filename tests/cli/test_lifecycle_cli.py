"""The lifecycle commands: versions, promote/rollback, approvals, exit codes 3 and 4."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PIPELINES = """
import os
import lockgate as lg


@lg.task
def ingest() -> lg.Dataset:
    return lg.Dataset("tickets", [{"q": "reset password", "y": 1}, {"q": "refund", "y": 0}])


@lg.task
def train(rows: list) -> dict:
    return {"bias": float(os.environ.get("BIAS", "0.5")), "n": len(rows)}


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": model["bias"]}


@lg.pipeline
def ship():
    model = train(ingest())
    checked = lg.gate(score(model), {"accuracy": ">= 0.9"})
    return lg.register(model, name="ranker", scores=checked)


@lg.pipeline
def ungated():
    model = train(ingest())
    return lg.register(model, name="ranker", scores=score(model))


@lg.pipeline
def reviewed():
    model = train(ingest())
    registered = lg.register(model, name="ranker", scores=lg.gate(score(model), {"accuracy": 0.9}))
    ok = lg.approval("ship the ranker", approvers=["alice"], after=[registered])
    return lg.promote(registered, name="ranker", alias="production").after(ok)
"""

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


@pytest.fixture
def project(tmp_path: Path, home_env: Path) -> Path:
    (tmp_path / "pipelines.py").write_text(PIPELINES)
    return tmp_path


def lockgate(project: Path, *args: str, bias: str = "0.95") -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "BIAS": bias}
    return subprocess.run(
        [LOCKGATE, *args], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def last_json(text: str):
    return json.loads(text.strip().splitlines()[-1])


def test_gate_failure_exits_3_and_registers_nothing(project):
    failed = lockgate(project, "run", "pipelines.py:ship", "--executor", "inline", bias="0.5")
    assert failed.returncode == 3
    assert "gate_failed" in failed.stdout and "accuracy 0.5 fails >= 0.9" in failed.stdout
    assert json.loads(lockgate(project, "models", "list", "--json").stdout) == []
    assert "no model versions yet" in lockgate(project, "models", "list").stdout


def test_versions_promotion_and_rollback_from_the_shell(project):
    assert lockgate(project, "run", "pipelines.py:ship", "--executor", "inline").returncode == 0
    assert (
        lockgate(
            project, "run", "pipelines.py:ungated", "--executor", "inline", bias="0.97"
        ).returncode
        == 0
    )
    datasets = json.loads(lockgate(project, "datasets", "list", "--json").stdout)
    assert [d["ref"] for d in datasets] == ["dataset:tickets@1"]
    versions = json.loads(lockgate(project, "models", "list", "ranker", "--json").stdout)
    assert [(v["version"], v["gated"]) for v in versions] == [(2, False), (1, True)]

    assert (
        lockgate(project, "models", "promote", "ranker", "1", "--alias", "production").returncode
        == 0
    )
    refused = lockgate(project, "models", "promote", "ranker", "2", "--alias", "production")
    assert refused.returncode == 2 and "has no passing gate" in refused.stderr
    no_reason = lockgate(
        project, "models", "promote", "ranker", "2", "--alias", "production", "--force"
    )
    assert no_reason.returncode == 2 and "--force needs --reason" in no_reason.stderr
    forced = lockgate(
        project,
        "models",
        "promote",
        "ranker",
        "2",
        "--alias",
        "production",
        "--force",
        "--reason",
        "incident 42",
    )
    assert forced.returncode == 0 and "version 1 -> version 2" in forced.stdout
    back = lockgate(project, "models", "rollback", "ranker", "--alias", "production")
    assert back.returncode == 0 and "version 2 -> version 1 (rolled back)" in back.stdout
    shown = json.loads(lockgate(project, "models", "show", "ranker@1", "--json").stdout)
    assert shown["aliases"] == ["production"]
    assert [(e["action"], e["version"], e["forced"]) for e in shown["alias_log"]] == [
        ("promote", 1, False),
        ("promote", 2, True),
        ("rollback", 1, False),
    ]
    assert shown["alias_log"][1]["reason"] == "incident 42"
    missing = lockgate(project, "models", "show", "ranker@9")
    assert missing.returncode == 2 and "has no version 9" in missing.stderr


def test_a_waiting_run_exits_4_and_a_later_approve_finishes_it(project):
    waiting = lockgate(project, "run", "pipelines.py:reviewed", "--executor", "inline", "--json")
    assert waiting.returncode == 4
    run = last_json(waiting.stdout)
    assert run["status"] == "waiting"
    shown = json.loads(lockgate(project, "show", "latest", "--json").stdout)
    assert {n["id"]: n["state"] for n in shown["nodes"]}["approval"] == "waiting"
    wrong = lockgate(project, "approve", run["run_id"], "approval", "--as", "mallory")
    assert wrong.returncode == 2 and "approvers are alice" in wrong.stderr
    approved = lockgate(
        project,
        "approve",
        run["run_id"],
        "approval",
        "--as",
        "alice",
        "--reason",
        "looks good",
        "--executor",
        "inline",
    )
    assert approved.returncode == 0, approved.stderr
    assert f"run {run['run_id']} succeeded" in approved.stdout
    production = json.loads(lockgate(project, "models", "show", "ranker", "--json").stdout)
    assert production["aliases"] == ["production"]
    record = json.loads(lockgate(project, "record", run["run_id"], "--json").stdout)
    assert record["approvals"][0]["by"] == "alice"
    assert record["approvals"][0]["reason"] == "looks good"
