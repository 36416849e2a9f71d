"""Lineage back to dataset versions and the Git SHA, and the tamper-evident reliability record."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from lockgate.service import lineage
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings

PIPELINE = """
import lockgate as lg


@lg.task
def ingest() -> lg.Dataset:
    return lg.Dataset("transcripts", [{"x": i, "y": i % 2} for i in range(20)])


@lg.task
def train(rows: list) -> dict:
    return {"w": sum(r["x"] for r in rows)}


@lg.task
def score(model: dict) -> dict:
    return {"accuracy": 0.97}


@lg.pipeline
def nightly():
    model = train(ingest())
    checked = lg.gate(score(model), {"accuracy": ">= 0.9"})
    return lg.register(model, name="support-bot", scores=checked)


@lg.pipeline
def retrain():
    model = train(lg.Dataset.ref("transcripts"))
    return lg.register(model, name="support-bot", scores=lg.gate(score(model), {"accuracy": 0.9}))


@lg.task
def handmade() -> dict:
    return {"w": -1}


@lg.pipeline
def orphan():
    return lg.register(handmade(), name="support-bot")
"""

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


@pytest.fixture
def repo(tmp_path: Path) -> dict:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "ml.py").write_text(PIPELINE)
    git = ["git", "-C", str(root), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "ml.py"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "pipelines"], check=True)
    sha = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = {**os.environ, "LOCKGATE_HOME": str(tmp_path / "home")}
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_FAILPOINTS"):
        env.pop(name, None)
    return {"root": root, "sha": sha, "env": env, "home": tmp_path / "home"}


def lockgate(repo: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOCKGATE, *args],
        cwd=repo["root"],
        env=repo["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def run(repo: dict, pipeline: str) -> str:
    result = lockgate(repo, "run", f"ml.py:{pipeline}", "--executor", "inline", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])["run_id"]


def workspace(repo: dict) -> Workspace:
    return Workspace(Settings.from_env({}, home=repo["home"]))


def test_model_lineage_reaches_its_dataset_version_and_git_sha(repo):
    run_id = run(repo, "nightly")
    shown = lockgate(repo, "lineage", "model:support-bot@1", "--json")
    assert shown.returncode == 0, shown.stderr
    graph = json.loads(shown.stdout)
    assert graph["dataset_versions"] == ["dataset:transcripts@1"]
    assert graph["git_shas"] == [repo["sha"]]
    nodes = {t["node"] for t in graph["task_runs"]}
    assert nodes == {"ingest", "train"}  # register and gate pass the model on; they made nothing
    assert all(t["run_id"] == run_id for t in graph["task_runs"])
    tree = lockgate(repo, "lineage", "model:support-bot")
    assert "dataset:transcripts@1" in tree.stdout and repo["sha"][:10] in tree.stdout


def test_downstream_lineage_finds_what_a_dataset_fed(repo):
    run(repo, "nightly")
    second = run(repo, "retrain")
    graph = json.loads(
        lockgate(repo, "lineage", "dataset:transcripts@1", "--downstream", "--json").stdout
    )
    fed = {(t["run_id"], t["node"]) for t in graph["task_runs"]}
    assert (second, "train") in fed
    assert "model:support-bot@1" in {v for a in graph["artifacts"] for v in a["versions"]}


def test_lineage_completeness_flags_models_without_data_or_code_version(repo):
    run(repo, "nightly")
    ws = workspace(repo)
    assert lineage.lineage_completeness(ws)["ratio"] == 1.0
    run(repo, "orphan")
    report = lineage.lineage_completeness(ws)
    assert (report["complete"], report["total"]) == (1, 2)
    assert report["incomplete"] == [
        {"model": "model:support-bot@2", "missing": ["no dataset version upstream"]}
    ]
    ws.close()


def test_the_record_holds_the_whole_story(repo):
    run(repo, "nightly")
    second = run(repo, "retrain")
    document = json.loads(lockgate(repo, "record", second, "--json").stdout)
    assert document["schema"] == "lockgate.record/1"
    assert document["code"]["git_sha"] == repo["sha"] and document["code"]["git_dirty"] is False
    assert [i["ref"] for i in document["inputs"]] == ["dataset:transcripts@1"]
    assert document["gates"][0]["passed"] is True
    assert document["gates"][0]["checks"][0]["value"] == 0.97
    registered = [r for r in document["registry"] if r["event"] == "model_registered"]
    assert registered[0]["version"] == 1 and registered[0]["created"] is False
    assert {a["node"] for a in document["artifacts"]} >= {"train", "score", "gate", "register"}
    assert document["trace"][0]["kind"] == "run_created"
    assert document["trace"][-1]["kind"] == "run_succeeded"
    assert document["verification"] == {
        "ok": True,
        "events": len(document["trace"]),
        "problems": [],
    }
    target = repo["root"] / "records" / f"{second}.md"
    written = lockgate(repo, "record", second, "-o", str(target))
    assert written.returncode == 0 and str(target) in written.stdout
    markdown = target.read_text()
    assert markdown.startswith(f"# Reliability record: {second}")
    assert "dataset:transcripts@1" in markdown and "trace verified**: yes" in markdown


def test_verify_catches_an_edited_or_deleted_event(repo):
    run_id = run(repo, "nightly")
    ok = lockgate(repo, "record", run_id, "--verify")
    assert ok.returncode == 0 and "intact" in ok.stdout
    db = sqlite3.connect(repo["home"] / "lockgate.db")
    with db:
        db.execute(
            'UPDATE events SET payload = \'{"error": "nothing to see"}\' '
            "WHERE id = (SELECT min(id) FROM events WHERE kind = 'task_succeeded')"
        )
    edited = lockgate(repo, "record", run_id, "--verify")
    assert edited.returncode == 1 and "TAMPERED" in edited.stdout
    assert "does not match its hash" in edited.stdout
    with db:
        db.execute("UPDATE events SET payload = '{}' WHERE kind = 'task_succeeded'")
    second = run(repo, "nightly")
    with db:
        db.execute(
            "DELETE FROM events WHERE id = (SELECT max(id) FROM events WHERE run_id = ?)", (second,)
        )
    truncated = json.loads(lockgate(repo, "record", second, "--verify", "--json").stdout)
    assert truncated["ok"] is False
    assert any("were removed or added" in p for p in truncated["problems"])
    db.close()
