"""Scenario 3: `lockgate server` killed with SIGKILL while runs queue and run.

A server with two run slots gets five triggered runs (two running, three
queued) and is killed at a random moment after the first task starts. A new
server on the same installation takes over: it resumes the orphaned runs,
launches the queued ones, and every run finishes once, with every node
committed exactly once and no committed node executed again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from checker import check_run

import lockgate as lg
from lockgate.service.config import Settings
from servers import ServerProcess

PIPELINES = """
import os
import pathlib
import time

import lockgate as lg

MARKS = pathlib.Path(os.environ["CHAOS_MARKS"])


def mark() -> None:
    ctx = lg.current()
    with open(MARKS / f"{ctx.run_id}.{ctx.node_id}", "a") as handle:
        handle.write("x")


@lg.task
def fetch(i: int) -> list:
    mark()
    return list(range(i, i + 3000))


@lg.task
def crunch(rows: list, seconds: float) -> int:
    mark()
    time.sleep(seconds)
    return sum(rows)


@lg.task
def publish(total: int) -> dict:
    mark()
    return {"total": total}


@lg.pipeline
def nightly(i: int = 0, seconds: float = 1.0):
    return publish(crunch(fetch(i), seconds))
"""

CONFIG = """
[project]
pipelines = ["pipelines.py"]

[server]
poll_interval = 0.1
max_concurrent_runs = 2
"""


@pytest.mark.scenario("3. server SIGKILL with runs queued and running")
@pytest.mark.timeout(1800)
def test_a_new_server_finishes_what_a_killed_one_left(chaos, tmp_path: Path):
    rng = chaos.rng()
    for index in range(chaos.size(short=1, full=5)):
        root = tmp_path / f"site-{index}"
        marks = root / "marks"
        marks.mkdir(parents=True)
        (root / "pipelines.py").write_text(PIPELINES)
        (root / "lockgate.toml").write_text(CONFIG)
        env = {
            "LOCKGATE_HOME": str(root / "home"),
            "LOCKGATE_CONFIG": str(root / "lockgate.toml"),
            "CHAOS_MARKS": str(marks),
        }
        full_env = {**os.environ, **env}
        for name in ("LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_FAILPOINTS"):
            full_env.pop(name, None)
        token = subprocess.run(
            [sys.executable, "-m", "lockgate", "token", "create", "chaos"],
            env=full_env,
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        first = ServerProcess(root / "lockgate.toml", env=env).wait_ready()
        second = None
        try:
            client = lg.Client(first.url, token)
            run_ids = [client.trigger("nightly", i=k, seconds=1.0) for k in range(5)]
            deadline = time.monotonic() + 60
            while not any(marks.glob("*.crunch")) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 2.0))
            first.signal(signal.SIGKILL)
            first.wait()
            before = {path.name: len(path.read_text()) for path in marks.iterdir()}
            second = ServerProcess(root / "lockgate.toml", env=env).wait_ready()
            client = lg.Client(second.url, token)
            problems: list[str] = []
            for run_id in run_ids:
                status = client.wait(run_id, timeout=120)["run"]["status"]
                if status != "succeeded":
                    problems.append(f"{run_id} ended {status}:\n{second.output()[-2000:]}")
        finally:
            first.stop()
            if second is not None:
                second.stop()
        settings = Settings.from_env(full_env)
        duplicates = verified = 0
        for run_id in run_ids:
            verdict = check_run(settings, run_id)
            problems += [f"{run_id}: {p}" for p in verdict.problems]
            duplicates += verdict.duplicates
            verified += verdict.verified
        for path in marks.iterdir():
            run_id, node = path.name.split(".", 1)
            # fetch commits before crunch starts: a committed node never runs again.
            if node == "fetch" and len(path.read_text()) != 1:
                problems.append(f"{run_id}: fetch ran {len(path.read_text())} times")
            if node == "publish" and before.get(path.name, 0) + 1 < len(path.read_text()):
                problems.append(f"{run_id}: publish ran again after the takeover")
        chaos.record(problems, duplicates=duplicates, verified=verified)
    assert chaos.iterations == chaos.size(short=1, full=5)
    assert chaos.failures == 0, chaos.summary()
