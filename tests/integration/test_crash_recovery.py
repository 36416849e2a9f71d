"""Crash recovery: kill -9 the coordinator at exact points, then `lockgate recover`.

Execution is at-least-once; commits are exactly-once. After any kill and a
recovery, every node has exactly one committed result, each artifact exists
once, lineage has no duplicate edges and attempt numbers have no gaps.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

PIPELINE = """
import os
import pathlib

import lockgate as lg

MARKS = pathlib.Path(os.environ["CRASH_MARKS"])


def mark(name):
    with open(MARKS / name, "a") as handle:
        handle.write("x")


@lg.task
def a() -> list:
    mark("a")
    return list(range(5000))  # about 24 KB of JSON: stored as a blob


@lg.task
def b(values: list) -> list:
    mark("b")
    if os.environ.get("CRASH_MID") == "b" and not (MARKS / "b.crashed").exists():
        (MARKS / "b.crashed").touch()
        os.kill(os.getpid(), 9)
    return [v + 1 for v in values]


@lg.task
def c(values: list) -> int:
    mark("c")
    return sum(values)


@lg.pipeline
def chain():
    return c(b(a()))
"""

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


@pytest.fixture
def project(tmp_path: Path) -> dict:
    (tmp_path / "chain.py").write_text(PIPELINE)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {
        **os.environ,
        "LOCKGATE_HOME": str(tmp_path / "home"),
        "LOCKGATE_HEARTBEAT_INTERVAL": "0.2",
        "LOCKGATE_HEARTBEAT_TIMEOUT": "1",
        "CRASH_MARKS": str(marks),
        "LOCKGATE_TEST_TAG": uuid.uuid4().hex,
    }
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_FAILPOINTS"):
        env.pop(name, None)
    return {"dir": tmp_path, "env": env, "marks": marks}


def lockgate(project: dict, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**project["env"], **extra_env}
    return subprocess.run(
        [LOCKGATE, *args], cwd=project["dir"], env=env, capture_output=True, text=True, timeout=120
    )


def count(project: dict, name: str) -> int:
    path = project["marks"] / name
    return len(path.read_text()) if path.exists() else 0


def check_invariants(project: dict, run_id: str) -> None:
    db = sqlite3.connect(project["dir"] / "home" / "lockgate.db")
    runs = db.execute("SELECT status FROM runs").fetchall()
    assert runs == [("succeeded",)]
    task_runs = db.execute(
        "SELECT id, node_id, state, output_sha256 FROM task_runs WHERE run_id = ?", (run_id,)
    ).fetchall()
    assert sorted(t[1] for t in task_runs) == ["a", "b", "c"]
    for tr_id, node, state, output in task_runs:
        assert state == "succeeded" and output is not None, node
        numbers = [
            n
            for (n,) in db.execute(
                "SELECT number FROM attempts WHERE task_run_id = ? ORDER BY number", (tr_id,)
            )
        ]
        assert numbers == list(range(1, len(numbers) + 1)), (node, numbers)
        succeeded = db.execute(
            "SELECT count(*) FROM attempts WHERE task_run_id = ? AND state = 'succeeded'", (tr_id,)
        ).fetchone()[0]
        assert succeeded == 1, node
        produced = db.execute(
            "SELECT count(*) FROM lineage_edges WHERE task_run_id = ? AND direction = 'produced'",
            (tr_id,),
        ).fetchone()[0]
        assert produced == 1, node
        done_events = db.execute(
            "SELECT count(*) FROM events WHERE task_run_id = ? AND kind = 'task_succeeded'",
            (tr_id,),
        ).fetchone()[0]
        assert done_events == 1, node
    duplicates = db.execute(
        "SELECT count(*) FROM (SELECT task_run_id, sha256, direction, count(*) AS n "
        "FROM lineage_edges GROUP BY 1, 2, 3 HAVING n > 1)"
    ).fetchone()[0]
    assert duplicates == 0
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    by = [
        json.loads(p)["by"]
        for (p,) in db.execute("SELECT payload FROM events WHERE kind = 'run_resumed'")
    ]
    assert by == ["recover"]
    blobs = [
        p
        for p in (project["dir"] / "home" / "artifacts").rglob("*")
        if p.is_file() and not p.name.startswith(".tmp-")
    ]
    names = [p.name for p in blobs]
    assert len(names) == len(set(names))
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


CRASHES = [
    pytest.param({"LOCKGATE_FAILPOINTS": "task.before_start@b:kill"}, 0, id="before-task-starts"),
    pytest.param({"CRASH_MID": "b"}, 1, id="mid-task"),
    pytest.param(
        {"LOCKGATE_FAILPOINTS": "artifact.after_rename_before_db@b:kill"},
        1,
        id="between-artifact-write-and-commit",
    ),
    pytest.param(
        {"LOCKGATE_FAILPOINTS": "task.after_return_before_commit@b:kill"},
        1,
        id="after-return-before-commit",
    ),
    pytest.param(
        {"LOCKGATE_FAILPOINTS": "db.after_commit_before_ack:kill:0.3", "LOCKGATE_CHAOS_SEED": "7"},
        None,
        id="after-a-random-commit",
    ),
]


@pytest.mark.parametrize(("crash", "b_before_recovery"), CRASHES)
def test_killed_coordinator_is_recovered_with_exactly_once_commits(
    project, crash, b_before_recovery
):
    killed = lockgate(project, "run", "chain.py:chain", "--executor", "inline", "--json", **crash)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if b_before_recovery is not None:
        assert count(project, "a") == 1
        assert count(project, "b") == b_before_recovery
    time.sleep(1.3)  # let the heartbeat go stale
    runs = json.loads(lockgate(project, "runs", "--json").stdout)
    assert len(runs) == 1 and runs[0]["stale"] is True
    assert runs[0]["status"] in ("running", "queued")
    shown = lockgate(project, "runs")
    assert "stale" in shown.stdout and "lockgate recover" in shown.stdout

    recovered = lockgate(project, "recover", "--json", "--executor", "inline")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    (outcome,) = json.loads(recovered.stdout)
    assert outcome["status"] == "succeeded"
    check_invariants(project, outcome["run_id"])
    if b_before_recovery is not None:
        assert count(project, "a") == 1  # committed before the crash: never executed again
    assert count(project, "c") == 1
    assert lockgate(project, "recover", "--json").stdout.strip() == "[]"


def test_killed_coordinator_takes_its_worker_processes_with_it(project):
    killed = lockgate(
        project,
        "run",
        "chain.py:chain",
        "--executor",
        "process",
        "--workers",
        "2",
        LOCKGATE_FAILPOINTS="task.after_return_before_commit@b:kill",
    )
    assert killed.returncode == -signal.SIGKILL
    tag = project["env"]["LOCKGATE_TEST_TAG"]

    def tagged() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            try:
                if process.environ().get("LOCKGATE_TEST_TAG") == tag:
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    deadline = time.monotonic() + 10
    while tagged() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tagged() == []
    time.sleep(1.0)
    recovered = lockgate(project, "recover", "--json")
    assert json.loads(recovered.stdout)[0]["status"] == "succeeded"
    check_invariants(project, json.loads(recovered.stdout)[0]["run_id"])
    assert count(project, "a") == 1 and count(project, "c") == 1
