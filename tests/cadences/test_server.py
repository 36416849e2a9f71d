"""`lockgate server` as a real process: tokens, triggers, limits, crashes, drain and restart."""

from __future__ import annotations

import itertools
import json
import signal
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

import lockgate as lg
from lockgate.cli.main import cli
from lockgate.errors import ApiError
from lockgate.model.states import EventKind, RunState
from servers import ServerProcess

PIPELINES = """
import os
import time
from pathlib import Path
import lockgate as lg

if Path(__file__).with_name("crash-driver").exists() and os.environ.get("LOCKGATE_DRIVER"):
    os.abort()  # a hard crash of the process that drives the run

@lg.task
def greet(name: str) -> str:
    return f"hello {name}"

@lg.task
def nap(seconds: float, label: str) -> str:
    time.sleep(seconds)
    return label

@lg.pipeline
def hello(name: str = "world"):
    return greet(name)

@lg.pipeline(max_active_runs=1)
def serial(seconds: float = 0.4):
    return nap(seconds, "done")

@lg.pipeline
def slow(seconds: float = 3.0):
    return nap(seconds, greet("x"))

@lg.pipeline(schedule="0 2 * * *", timezone="Europe/Berlin", max_active_runs=1)
def daily(logical_date: str = "none"):
    return nap(0.3, logical_date)
"""


@pytest.fixture
def token(project) -> str:
    project.write(PIPELINES, "[server]\npoll_interval = 0.1\n")
    result = CliRunner().invoke(cli, ["token", "create", "ci"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.fixture
def server(project, token):
    running = []

    def start(*args: str) -> ServerProcess:
        process = ServerProcess(project.config, *args)
        running.append(process)
        return process.wait_ready()

    yield start
    for process in running:
        process.stop()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_state_changing_calls_need_a_valid_token(project, token, server):
    running = server()
    url = f"{running.url}/api/v1/pipelines/hello/runs"
    body = json.dumps({"params": {"name": "a"}}).encode()
    json_type = {"Content-Type": "application/json"}
    assert post(url, body, json_type)[0] == 401
    assert post(url, body, {**json_type, "Authorization": "Bearer lg_wrong"})[0] == 401
    assert post(url, body, {**json_type, "Authorization": f"Basic {token}"})[0] == 401
    # A malformed body without a token is still 401: nothing is parsed for anonymous callers.
    status, answer = post(url, b"{not json", json_type)
    assert status == 401 and "lockgate token create" in answer["detail"]
    assert running.health()["status"] == "ok"  # /healthz needs no token
    # Revoked tokens stop working at once.
    good = {**json_type, "Authorization": f"Bearer {token}"}
    assert post(url, body, good)[0] == 201
    assert CliRunner().invoke(cli, ["token", "revoke", "ci"]).exit_code == 0
    assert post(url, body, good)[0] == 401
    listed = json.loads(CliRunner().invoke(cli, ["token", "list", "--json"]).stdout)
    assert listed[0]["name"] == "ci" and listed[0]["revoked_at"] is not None
    assert token not in project.config.parent.joinpath(
        ".lockgate", "lockgate.db"
    ).read_bytes().decode("latin-1")  # only the hash is stored


def test_client_triggers_a_run_and_waits_for_it(token, server):
    running = server()
    client = lg.Client(running.url, token)
    run_id = client.trigger("hello", name="ci")
    finished = client.wait(run_id, timeout=60)
    run = finished["run"]
    assert run["status"] == "succeeded" and run["trigger"] == "api"
    assert run["params"] == {"name": "ci"}
    assert run["queue_time_s"] is not None and run["claimed_by"]
    assert [n["state"] for n in finished["nodes"]] == ["succeeded"]
    # An idempotency key returns the same run; a new key a new one.
    keyed = client.trigger("hello", key="pr-7-abc123", name="pr")
    assert client.trigger("hello", key="pr-7-abc123", name="pr") == keyed
    assert client.trigger("hello", key="pr-8", name="pr") != keyed
    with pytest.raises(ApiError) as missing:
        client.trigger("nope")
    assert missing.value.status == 404 and "known: daily, hello, serial, slow" in str(missing.value)
    with pytest.raises(ApiError) as bad:
        client.trigger("hello", colour="red")
    assert bad.value.status == 422 and "colour" in str(bad.value)
    with pytest.raises(ApiError, match="HTTP 401"):
        lg.Client(running.url, "lg_nope").trigger("hello")


def test_max_active_runs_queues_the_rest_and_starts_them_in_order(token, server):
    running = server("--max-concurrent-runs", "4")
    client = lg.Client(running.url, token)
    ids = [client.trigger("serial") for _ in range(3)]
    runs = [client.wait(run_id, timeout=60)["run"] for run_id in ids]
    assert [r["status"] for r in runs] == ["succeeded"] * 3
    spans = [(r["started_at"], r["finished_at"]) for r in runs]
    assert spans == sorted(spans)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # never two at once
    assert runs[2]["queue_time_s"] > runs[0]["queue_time_s"]


def test_a_crashing_driver_fails_its_run_but_not_the_server(project, token, server):
    running = server()
    client = lg.Client(running.url, token)
    flag = project.root / "crash-driver"
    flag.touch()
    crashed = client.wait(client.trigger("hello"), timeout=60)["run"]
    assert crashed["status"] == "failed"
    assert "driver process died (signal 6)" in crashed["error"]
    flag.unlink()
    assert running.health()["status"] == "ok"
    assert client.wait(client.trigger("hello"), timeout=60)["run"]["status"] == "succeeded"


def test_sigterm_lets_running_runs_finish(token, server, wait_for):
    from lockgate.service.compose import Workspace

    running = server("--drain-timeout", "30")
    client = lg.Client(running.url, token)
    run_id = client.trigger("slow", seconds=1.5)
    wait_for(lambda: client.run(run_id)["run"]["status"] == "running", what="run start")
    running.signal(signal.SIGTERM)
    assert running.wait() == 0
    workspace = Workspace()  # the server is gone: read the database directly
    assert workspace.metadata.get_run(run_id).status is RunState.SUCCEEDED
    workspace.close()


def node_states(client: lg.Client, run_id: str) -> dict[str, tuple[str, int]]:
    return {n["id"]: (n["state"], n["attempt_count"]) for n in client.run(run_id)["nodes"]}


@pytest.mark.parametrize("when", ["before the driver starts", "while a task runs"])
def test_a_drain_that_times_out_leaves_runs_resumable(token, server, wait_for, when):
    first = server("--drain-timeout", "0.1")
    client = lg.Client(first.url, token)
    run_id = client.trigger("slow", seconds=30)
    if when == "while a task runs":
        wait_for(lambda: node_states(client, run_id)["nap"][0] == "running", what="nap")
    else:
        wait_for(lambda: client.run(run_id)["run"]["status"] == "running", what="the claim")
    first.signal(signal.SIGTERM)
    assert first.wait() == 0
    assert f"left resumable: {run_id}" in first.output()
    assert _run(run_id).status is RunState.RUNNING  # not failed: resumable
    second = server()
    client = lg.Client(second.url, token)
    wait_for(
        lambda: (
            node_states(client, run_id)["nap"][0] == "running"
            and any(e.kind is EventKind.RUN_RESUMED for e in _events(run_id))
        ),
        what="the next server to resume the run",
    )


def _run(run_id: str):
    from lockgate.service.compose import Workspace

    workspace = Workspace()
    try:
        return workspace.metadata.get_run(run_id)
    finally:
        workspace.close()


def _events(run_id: str) -> list:
    from lockgate.service.compose import Workspace

    workspace = Workspace()
    try:
        return workspace.metadata.events(run_id)
    finally:
        workspace.close()


def test_a_server_killed_with_sigkill_has_its_runs_resumed_by_the_next(token, server, wait_for):
    from lockgate.service.compose import Workspace

    first = server()
    client = lg.Client(first.url, token)
    run_id = client.trigger("slow", seconds=4.0)

    def napping() -> bool:
        nodes = {n["id"]: n["state"] for n in client.run(run_id)["nodes"]}
        return nodes.get("nap") == "running"

    wait_for(napping, what="the slow node to start")
    first.signal(signal.SIGKILL)
    first.wait()
    second = server()
    client = lg.Client(second.url, token)
    run = client.wait(run_id, timeout=90)
    assert run["run"]["status"] == "succeeded", second.output()
    workspace = Workspace()
    events = workspace.metadata.events(run_id)
    resumed = [e for e in events if e.kind is EventKind.RUN_RESUMED]
    assert len(resumed) == 1 and resumed[0].payload["by"] == "recover"
    attempts = {n["id"]: n["attempt_count"] for n in run["nodes"]}
    assert attempts == {"greet": 1, "nap": 2}  # committed work is not redone
    workspace.close()


def test_a_public_bind_without_any_token_is_refused(project):
    project.write(PIPELINES)
    result = CliRunner().invoke(cli, ["server", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr
    assert "lockgate token create" in result.stderr


def test_a_run_whose_code_changed_before_it_started_fails_saying_so(project, token, server):
    running = server()
    client = lg.Client(running.url, token)
    source = project.root / "pipelines.py"
    # The server queues with the code it loaded; the driver finds different code.
    source.write_text(source.read_text().replace('f"hello {name}"', 'f"hi {name}"'))
    run = client.wait(client.trigger("hello"), timeout=60)["run"]
    assert run["status"] == "failed"
    assert "cannot load the run's pipeline" in run["error"]
    assert "the code changed since the run" in run["error"]


def test_runs_queued_while_no_server_ran_are_launched_in_order_within_limits(
    project, token, server
):
    backfilled = CliRunner().invoke(
        cli, ["backfill", "daily", "--start", "2026-11-01", "--end", "2026-11-03", "--json"]
    )
    assert backfilled.exit_code == 0, backfilled.output
    ticks = [r["run_id"] for r in json.loads(backfilled.stdout)["created"]]
    queued = CliRunner().invoke(cli, ["trigger", "hello", "-p", "name=cli", "--json"])
    assert queued.exit_code == 0, queued.output
    manual = json.loads(queued.stdout)["run_id"]
    running = server()
    client = lg.Client(running.url, token)
    runs = [client.wait(run_id, timeout=60)["run"] for run_id in [*ticks, manual]]
    assert [r["status"] for r in runs] == ["succeeded"] * 4
    assert runs[3]["trigger"] == "cli" and runs[3]["params"] == {"name": "cli"}
    daily = runs[:3]
    assert [r["params"]["logical_date"][:10] for r in daily] == [
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
    ]
    for earlier, later in itertools.pairwise(daily):  # max_active_runs=1: one after another
        assert later["started_at"] >= earlier["finished_at"]
    shown = CliRunner().invoke(cli, ["show", daily[0]["run_id"]])
    assert "logical date" in shown.stdout and "queued" in shown.stdout
    assert "schedule:2026-11-01T01:00:00Z" in shown.stdout


def test_many_concurrent_triggers_are_all_recorded_once(token, server):
    from concurrent.futures import ThreadPoolExecutor

    running = server("--max-concurrent-runs", "1")
    client = lg.Client(running.url, token)
    with ThreadPoolExecutor(40) as pool:
        ids = list(pool.map(lambda i: client.trigger("hello", key=f"k{i % 30}"), range(60)))
    assert len(set(ids)) == 30  # each key once, however the requests interleaved
    assert all(ids[i] == ids[i + 30] for i in range(30))
    assert running.health()["status"] == "ok"
