"""The API through a real `lockgate server` process: follow logs live, resume via the queue."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli
from server.conftest import write_project
from servers import ServerProcess


@pytest.fixture
def live(tmp_path: Path, clean_env: None) -> Iterator[tuple[ServerProcess, dict[str, str], Path]]:
    """A running server on a loopback port, a run-scope token's header, the project dir."""
    config = write_project(tmp_path / "proj", "poll_interval = 0.1\n")
    made = CliRunner().invoke(
        cli, ["token", "create", "live"], env={"LOCKGATE_CONFIG": str(config)}
    )
    assert made.exit_code == 0, made.output
    server = ServerProcess(config)
    try:
        server.wait_ready()
        yield server, {"Authorization": f"Bearer {made.stdout.strip()}"}, config.parent
    finally:
        server.stop()


def wait_status(client: httpx.Client, run_id: str, wanted: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/runs/{run_id}").json()["run"]["status"]
        if status == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {status}, not {wanted}, after {timeout} s")


def test_follow_receives_lines_printed_while_following(live):
    server, auth, root = live
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
        run_id = client.post("/api/v1/pipelines/waiter/runs", json={}).json()["run_id"]
        events: list[tuple[str, dict]] = []
        with client.stream("GET", f"/api/v1/runs/{run_id}/logs/stream") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line.removeprefix("data: "))))
                    text = "".join(e["text"] for k, e in events if k == "log")
                    if "first line" in text and not (root / "go").exists():
                        # Only now is the second line printed: it reaches this open stream.
                        assert "second line" not in text
                        (root / "go").touch()
                    if kind == "end":
                        break
        logs = [e for k, e in events if k == "log"]
        assert "".join(e["text"] for e in logs) == "first line\nsecond line\n"
        assert {(e["node"], e["attempt"]) for e in logs} == {("wait_for_go", 1)}
        assert events[-1] == ("end", {"status": "succeeded"})


def test_resume_queues_the_run_and_the_server_finishes_it(live):
    server, auth, root = live
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
        run_id = client.post("/api/v1/pipelines/fragile/runs", json={}).json()["run_id"]
        wait_status(client, run_id, "failed")
        (root / "fixed").touch()
        resumed = client.post(f"/api/v1/runs/{run_id}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] == "queued"
        wait_status(client, run_id, "succeeded")
        nodes = {n["id"]: n for n in client.get(f"/api/v1/runs/{run_id}").json()["nodes"]}
        # prepare committed before the failure: not executed again.
        assert nodes["prepare"]["attempt_count"] == 1
        assert [a["state"] for a in nodes["fragile_step"]["attempts"]] == [
            "failed",
            "failed",
            "succeeded",
        ]
        metrics = client.get("/metrics")
        assert 'lockgate_runs{pipeline="fragile",status="succeeded"} 1.0' in metrics.text
        assert "lockgate_up 1.0" in metrics.text
