"""Secret parameters end to end: a planted secret reaches its task and no output holds it.

A pipeline whose `lg.Secret` parameter is given a random value runs on the
process executor with OpenLineage writing to a file; its tasks print the
secret's repr and its revealed value (to the log, through logging and from a
child process), one fails once with the value in its error and is retried,
and one fails until a file is removed, so the run is resumed. Then every
output is searched for the value's bytes: every file under LOCKGATE_HOME (the
SQLite database and its WAL, artifacts, logs), the lineage NDJSON, and what
`lockgate run/resume/show/runs/record/logs` print.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import lockgate as lg
from lockgate.cli.main import cli
from lockgate.errors import ParameterError, SecretUnavailableError
from lockgate.model.states import Trigger
from lockgate.service.enqueue import enqueue
from lockgate.service.lifecycle import queue_resume

PIPELINES = """
import hashlib
import logging
import signal
import subprocess
import time
from pathlib import Path

import lockgate as lg

HERE = Path(__file__).parent
log = logging.getLogger("lockgate.task")


@lg.task
def use(api_key: lg.Secret) -> int:
    value = api_key.reveal()
    print(f"repr={api_key!r} str={api_key}")
    print("revealed:", value)
    log.warning("logged %s", value)
    subprocess.run(["echo", "child " + value], check=True)
    (HERE / "received.sha256").write_text(hashlib.sha256(value.encode()).hexdigest())
    return len(value)


@lg.task(retries=1, retry_delay=0)
def flaky(api_key: lg.Secret, size: int) -> int:
    marker = HERE / "flaky.tried"
    if not marker.exists():
        marker.write_text("x")
        raise RuntimeError(f"upstream refused key {api_key.reveal()}")
    return size


@lg.task(cache=True)
def guarded(api_key: lg.Secret, size: int) -> int:
    api_key.reveal()
    if (HERE / "broken").exists():
        raise ValueError(f"still broken for {api_key.reveal()}")
    return size + 1


@lg.pipeline
def nightly(api_key: lg.Secret, size: int = 3):
    return [use(api_key), flaky(api_key, size), guarded(api_key, size)]


@lg.task(timeout=1)
def hangs(api_key: lg.Secret) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # so the worker dies by SIGKILL
    print("before the hang:", api_key.reveal(), flush=True)
    time.sleep(60)


@lg.pipeline
def stuck(api_key: lg.Secret):
    return hangs(api_key)
"""


@pytest.fixture
def project(tmp_path: Path, home_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """secret_pipes.py and a lockgate.toml sending OpenLineage events to lineage.ndjson."""
    (tmp_path / "secret_pipes.py").write_text(PIPELINES)
    config = tmp_path / "lockgate.toml"
    config.write_text('[openlineage]\ntransport = "file"\npath = "lineage.ndjson"\n')
    monkeypatch.setenv("LOCKGATE_CONFIG", str(config))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def printed(result: Result) -> str:
    return result.output + (result.stderr if result.stderr_bytes is not None else "")


def only_run(project: Path) -> str:
    listed = json.loads(invoke("runs", "--json").output)
    assert len(listed) == 1
    return str(listed[0]["run_id"])


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [
        str(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and needle in path.read_bytes()
    ]


def test_a_literal_secret_reaches_its_task_and_no_output_holds_it(project, home_env):
    secret = "lg-" + secrets.token_hex(16)
    (project / "broken").write_text("")

    first = invoke("run", "secret_pipes.py:nightly", "-p", f"api_key={secret}")
    assert first.exit_code == 1, printed(first)
    received = (project / "received.sha256").read_text()
    assert received == hashlib.sha256(secret.encode()).hexdigest()
    run_id = only_run(project)

    # Resume: the value was never stored, so it must be given again.
    refused = invoke("resume", run_id)
    assert refused.exit_code == 2
    assert f"lockgate resume {run_id} -p api_key=VALUE" in printed(refused)
    (project / "broken").unlink()
    resumed = invoke("resume", run_id, "-p", f"api_key={secret}")
    assert resumed.exit_code == 0, printed(resumed)

    outputs = {
        "run": printed(first),
        "resume refused": printed(refused),
        "resume": printed(resumed),
        "show": printed(invoke("show", run_id)),
        "show --json": printed(invoke("show", run_id, "--json")),
        "runs --json": printed(invoke("runs", "--json")),
        "record --json": printed(invoke("record", run_id, "--json")),
        "record --md": printed(invoke("record", run_id, "--md")),
        "logs": printed(invoke("logs", run_id)),
    }
    leaks = [name for name, text in outputs.items() if secret in text]
    leaks += files_holding(home_env, secret.encode())
    lineage = project / "lineage.ndjson"
    assert lineage.read_text().count('"eventType"') >= 8
    leaks += files_holding(project, secret.encode())  # the lineage file, the project
    assert leaks == []

    # What is there instead.
    params = json.loads(outputs["runs --json"])[0]["params"]
    assert params == {"api_key": "<secret>", "size": 3}
    assert "repr=Secret('<redacted>') str=<redacted>" in outputs["logs"]
    masked = "*" * len(secret)
    for line in (f"revealed: {masked}", f"logged {masked}", f"child {masked}"):
        assert line in outputs["logs"]
    details = json.loads(outputs["show --json"])
    errors = [
        attempt["error"]
        for node in details["nodes"]
        for attempt in node["attempts"]
        if attempt.get("error")
    ]
    assert any("upstream refused key <redacted>" in str(error) for error in errors), errors
    assert any("still broken for <redacted>" in str(error) for error in errors), errors


def test_output_of_an_attempt_killed_by_its_timeout_is_masked_too(project, home_env):
    # The task ignores SIGTERM, so its worker is killed before it can mask
    # anything: the pool masks the dead worker's attempt instead.
    secret = "lg-" + secrets.token_hex(16)
    done = invoke("run", "secret_pipes.py:stuck", "-p", f"api_key={secret}")
    assert done.exit_code == 1, printed(done)
    logs = printed(invoke("logs", only_run(project)))
    assert f"before the hang: {'*' * len(secret)}" in logs
    assert files_holding(home_env, secret.encode()) == []


def test_an_env_reference_is_stored_as_is_and_read_in_the_worker(project, home_env, monkeypatch):
    secret = "lg-" + secrets.token_hex(16)
    monkeypatch.setenv("LG_TEST_API_KEY", secret)
    done = invoke("run", "secret_pipes.py:nightly", "-p", "api_key=env:LG_TEST_API_KEY")
    assert done.exit_code == 0, printed(done)
    assert (project / "received.sha256").read_text() == hashlib.sha256(secret.encode()).hexdigest()
    listed = json.loads(invoke("runs", "--json").output)
    assert listed[0]["params"] == {"api_key": "env:LG_TEST_API_KEY", "size": 3}
    assert files_holding(home_env, secret.encode()) == []


def test_an_unset_variable_fails_the_attempt_naming_parameter_and_variable(project, home_env):
    done = invoke("run", "secret_pipes.py:nightly", "-p", "api_key=env:LG_TEST_NOT_SET")
    assert done.exit_code == 1
    details = json.loads(invoke("show", only_run(project), "--json").output)
    flaky = next(node for node in details["nodes"] if node["id"] == "flaky")
    assert len(flaky["attempts"]) == 1  # not retried: the environment will not change
    error = json.dumps(flaky["attempts"][0]["error"])
    assert "LG_TEST_NOT_SET" in error and "secret parameter 'api_key'" in error


@lg.task
def echo_length(api_key: lg.Secret) -> int:
    return len(api_key.reveal())


@lg.task
def leak(api_key: lg.Secret) -> lg.Secret:
    return api_key


@lg.pipeline
def keyed(api_key: lg.Secret):
    return echo_length(api_key)


@lg.pipeline
def leaky(api_key: lg.Secret):
    return leak(api_key)


def test_a_secret_must_be_a_string_and_the_message_does_not_quote_it(workspace):
    with pytest.raises(ParameterError, match="'api_key' of pipeline 'keyed' takes a string") as e:
        lg.run(keyed, {"api_key": 987654321}, workspace=workspace, executor="inline")
    assert "987654321" not in str(e.value)


def test_a_task_may_not_return_a_secret(workspace):
    result = lg.run(leaky, {"api_key": "s3cr3t-value"}, workspace=workspace, executor="inline")
    assert not result.ok
    assert "returned a lg.Secret" in (result.record.error or "")
    assert result.record.params == {"api_key": "<secret>"}


def test_python_resume_needs_the_literal_again(workspace, tmp_path):
    secret = "lg-" + secrets.token_hex(8)
    result = lg.run(keyed, {"api_key": secret}, workspace=workspace, executor="inline")
    assert result.ok and result.output() == len(secret)
    workspace.metadata.set_run_state(result.run_id, lg.RunState.FAILED, 0.0, error="test")
    with pytest.raises(SecretUnavailableError, match=r"params=\{'api_key': \.\.\.\}"):
        lg.resume(result.run_id, pipeline=keyed, workspace=workspace, executor="inline")
    with pytest.raises(ParameterError, match="only secret parameters can be given again"):
        lg.resume(result.run_id, pipeline=keyed, workspace=workspace, params={"nope": 1})
    again = lg.resume(
        result.run_id,
        pipeline=keyed,
        workspace=workspace,
        executor="inline",
        params={"api_key": secret},
    )
    assert again.ok


def test_runs_a_server_launches_take_env_references_only(workspace, monkeypatch):
    with pytest.raises(ParameterError, match="api_key=env:API_KEY"):
        enqueue(workspace, keyed, {"api_key": "literal-value"}, trigger=Trigger.API)
    queued = enqueue(
        workspace, keyed, {"api_key": "env:LG_KEY"}, trigger=Trigger.API, json_params=True
    )
    assert workspace.metadata.get_run(queued.run_id).params == {"api_key": "env:LG_KEY"}
    # Nor can a server resume a run started with a literal.
    done = lg.run(keyed, {"api_key": "literal-value"}, workspace=workspace, executor="inline")
    workspace.metadata.set_run_state(done.run_id, lg.RunState.FAILED, 0.0, error="test")
    with pytest.raises(SecretUnavailableError, match=f"lockgate resume {done.run_id}"):
        queue_resume(workspace, done.run_id, by=Trigger.API)
