"""Cancellation (lockgate cancel, Ctrl-C) and captured task logs, through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

PIPELINE = """
import logging
import os
import pathlib
import subprocess
import sys
import time

import lockgate as lg

MARKS = pathlib.Path(os.environ["MARKS"])


@lg.task
def first() -> int:
    return 1


@lg.task
def slow(x: int) -> int:
    (MARKS / "slow.pid").write_text(str(os.getpid()))
    time.sleep(60)
    return x


@lg.pipeline
def long():
    return slow(first())


@lg.task
def stubborn(x: int) -> int:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (MARKS / "stubborn.pid").write_text(str(os.getpid()))
    time.sleep(60)
    return x


@lg.pipeline
def deaf():
    return stubborn(first())


@lg.task(retries=1, retry_delay=0)
def chatty() -> str:
    ctx = lg.current()
    print(f"stdout line from attempt {ctx.attempt}")
    print("stderr line", file=sys.stderr)
    ctx.logger.info("log record from %s", ctx.node_id)
    subprocess.run(["echo", "from a child process"], check=True)
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@lg.task
def quiet() -> int:
    return 0


@lg.pipeline
def talk():
    return [chatty(), quiet()]


@lg.task
def ticker() -> int:
    for i in range(3):
        print(f"tick {i}", flush=True)
        time.sleep(0.5)
    return 3


@lg.pipeline
def ticks():
    return ticker()
"""

LOCKGATE = str(Path(sys.executable).with_name("lockgate"))


@pytest.fixture
def project(tmp_path: Path) -> dict:
    (tmp_path / "p.py").write_text(PIPELINE)
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**os.environ, "LOCKGATE_HOME": str(tmp_path / "home"), "MARKS": str(marks)}
    for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_FAILPOINTS"):
        env.pop(name, None)
    return {"dir": tmp_path, "env": env, "marks": marks}


def lockgate(project: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOCKGATE, *args],
        cwd=project["dir"],
        env=project["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def start(project: dict, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [LOCKGATE, *args],
        cwd=project["dir"],
        env=project["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid):
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def details(project: dict, run_id: str) -> dict:
    return json.loads(lockgate(project, "show", run_id, "--json").stdout)


def test_cancel_stops_the_running_task_and_keeps_committed_work(project):
    running = start(project, "run", "p.py:long", "--json")
    wait_for(project["marks"] / "slow.pid")
    task_pid = int((project["marks"] / "slow.pid").read_text())
    (run,) = json.loads(lockgate(project, "runs", "--json").stdout)
    cancelled = lockgate(project, "cancel", run["run_id"])
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"run {run['run_id']} cancelled" in cancelled.stdout
    out, _ = running.communicate(timeout=30)
    assert running.returncode == 1
    assert json.loads(out.strip().splitlines()[-1])["status"] == "cancelled"
    assert wait_gone(task_pid), "the cancelled task's process is still alive"
    nodes = {n["id"]: n for n in details(project, run["run_id"])["nodes"]}
    assert nodes["first"]["state"] == "succeeded"
    assert nodes["slow"]["state"] == "cancelled"
    assert nodes["slow"]["attempts"][0]["state"] == "cancelled"
    again = lockgate(project, "cancel", run["run_id"])
    assert again.returncode == 2 and "already ended" in again.stderr


def test_ctrl_c_cancels_the_run_and_exits_130(project):
    running = start(project, "run", "p.py:long")
    wait_for(project["marks"] / "slow.pid")
    task_pid = int((project["marks"] / "slow.pid").read_text())
    running.send_signal(signal.SIGINT)
    _, err = running.communicate(timeout=30)
    assert running.returncode == 130
    assert "interrupted" in err
    assert wait_gone(task_pid)
    (run,) = json.loads(lockgate(project, "runs", "--json").stdout)
    assert run["status"] == "cancelled"
    nodes = {n["id"]: n["state"] for n in details(project, run["run_id"])["nodes"]}
    assert nodes == {"first": "succeeded", "slow": "cancelled"}


def test_a_second_ctrl_c_stops_at_once_and_leaves_the_run_for_recovery(project):
    project["env"]["LOCKGATE_HEARTBEAT_INTERVAL"] = "0.2"
    project["env"]["LOCKGATE_HEARTBEAT_TIMEOUT"] = "1"
    running = start(project, "run", "p.py:deaf")
    wait_for(project["marks"] / "stubborn.pid")
    task_pid = int((project["marks"] / "stubborn.pid").read_text())
    running.send_signal(signal.SIGINT)  # cancels; the task ignores SIGTERM, so this waits
    time.sleep(0.3)
    running.send_signal(signal.SIGINT)  # stop now
    running.communicate(timeout=30)
    assert running.returncode == 130
    assert wait_gone(task_pid)
    (run,) = json.loads(lockgate(project, "runs", "--json").stdout)
    # Still "running": the second Ctrl-C abandoned the cancellation instead of
    # waiting out the SIGTERM grace period; the run is left for recovery.
    assert run["status"] == "running"
    nodes = {n["id"]: n["state"] for n in details(project, run["run_id"])["nodes"]}
    assert nodes["first"] == "succeeded"
    time.sleep(1.2)  # no coordinator beats for it any more: `lockgate recover` would take it
    (stale,) = json.loads(lockgate(project, "runs", "--json").stdout)
    assert stale["stale"] is True


def test_logs_capture_stdout_stderr_logging_and_child_processes_per_attempt(project):
    result = lockgate(project, "run", "p.py:talk", "--json")
    run_id = json.loads(result.stdout.strip().splitlines()[-1])["run_id"]
    both = lockgate(project, "logs", run_id, "chatty")
    assert both.returncode == 0
    for attempt in (1, 2):
        assert f"== chatty (attempt {attempt}) ==" in both.stderr
        assert f"stdout line from attempt {attempt}" in both.stdout
    assert both.stdout.count("stderr line") == 2
    assert both.stdout.count("log record from chatty") == 2
    assert both.stdout.count("from a child process") == 2
    second = lockgate(project, "logs", run_id, "chatty", "--attempt", "2")
    assert "from attempt 2" in second.stdout and "from attempt 1" not in second.stdout
    everything = lockgate(project, "logs", run_id)
    assert "== quiet (attempt 1) == (no output)" in everything.stderr
    missing = lockgate(project, "logs", run_id, "chatty", "--attempt", "5")
    assert missing.returncode == 2 and "no attempt 5" in missing.stderr


def test_logs_follow_streams_until_the_run_ends(project):
    running = start(project, "run", "p.py:ticks", "--json")
    deadline = time.monotonic() + 30
    runs: list = []
    while not runs and time.monotonic() < deadline:
        listed = lockgate(project, "runs", "--json")
        runs = json.loads(listed.stdout) if listed.returncode == 0 else []
        time.sleep(0.05)
    follower = start(project, "logs", runs[0]["run_id"], "--follow")
    out, _ = follower.communicate(timeout=60)
    running.communicate(timeout=60)
    assert follower.returncode == 0
    assert [line for line in out.splitlines() if line.startswith("tick")] == [
        "tick 0",
        "tick 1",
        "tick 2",
    ]


def test_inline_executor_captures_python_output(project):
    result = lockgate(project, "run", "p.py:talk", "--executor", "inline", "--json")
    run_id = json.loads(result.stdout.strip().splitlines()[-1])["run_id"]
    text = lockgate(project, "logs", run_id, "chatty", "--attempt", "1").stdout
    assert "stdout line from attempt 1" in text
    assert "stderr line" in text
    assert "log record from chatty" in text
