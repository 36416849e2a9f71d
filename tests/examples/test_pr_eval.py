"""The pr_eval example end to end: a real `lockgate server`, the CI script, the verdict.

The example is copied into a temp dir; a `run`-scope token is made with the
CLI; a `lockgate server` process serves the copy on a free loopback port; and
`examples/pr_eval/ci_call.sh` (curl + jq, exactly what a CI job runs) triggers
the suite with a Git SHA, polls the run and exits with the verdict.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli
from servers import ServerProcess

EXAMPLE = Path(__file__).parents[2] / "examples" / "pr_eval"


@pytest.fixture(autouse=True)
def _curl_and_jq() -> None:
    """ci_call.sh needs curl and jq: skip without them locally, fail under CI=true."""
    missing = [tool for tool in ("curl", "jq") if shutil.which(tool) is None]
    if missing:
        message = f"examples/pr_eval/ci_call.sh needs {' and '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: scripts/test-services.sh installs them)")
        pytest.skip(message + " (apt-get install -y curl jq)")


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServerProcess, str]]:
    """The example's server on a free loopback port, and a `run` token for it."""
    storage = ("LOCKGATE_HOME", "LOCKGATE_DB_URL", "LOCKGATE_ARTIFACT_ROOT", "LOCKGATE_LOGS_ROOT")
    for name in storage:
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "pr_eval"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".lockgate", "__pycache__"))
    config = project / "lockgate.toml"
    made = CliRunner().invoke(
        cli, ["token", "create", "ci", "--scope", "run"], env={"LOCKGATE_CONFIG": str(config)}
    )
    assert made.exit_code == 0, made.output
    # The word-overlap evaluators: loading MiniLM in each run's worker would cost this
    # 2-CPU machine more than the rest of the test; the verdict path is the same.
    process = ServerProcess(config, env={"LOCKGATE_EVALS_EMBEDDINGS": "lexical"})
    try:
        yield process.wait_ready(), made.stdout.strip()
    finally:
        process.stop()


def ci_call(
    server: ServerProcess, token: str, sha: str, pr: int, params: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOCKGATE_URL": server.url, "LOCKGATE_TOKEN": token}
    env["PR_EVAL_TIMEOUT"] = "90"
    env["PR_EVAL_PARAMS"] = params
    return subprocess.run(
        [str(EXAMPLE / "ci_call.sh"), sha, str(pr)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_of(server: ServerProcess, token: str, output: str) -> dict:
    """The run the script reported (`... run r-...`), as the API shows it."""
    run_id = output.split(": run ", 1)[1].split()[0]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        found = client.get(f"/api/v1/runs/{run_id}")
        assert found.status_code == 200, found.text
        record = client.get(f"/api/v1/runs/{run_id}/record").json()
    return {**found.json(), "record": record}


def test_a_passing_suite_exits_0_and_a_regression_exits_1(
    server: tuple[ServerProcess, str],
) -> None:
    process, token = server

    passed = ci_call(process, token, "4f2a9c1", 7)
    assert passed.returncode == 0, passed.stdout + passed.stderr + process.output()
    assert "verdict: PASS" in passed.stdout
    assert "pass  groundedness 1 >= 0.85" in passed.stdout
    run = run_of(process, token, passed.stdout)
    assert run["run"]["status"] == "succeeded"
    assert run["run"]["params"]["git_sha"] == "4f2a9c1" and run["run"]["params"]["pr"] == 7
    assert run["run"]["trigger"] == "api" and run["run"]["trigger_key"] == "api:pr-7-4f2a9c1"
    (gate,) = run["record"]["gates"]
    assert gate["passed"]
    assert {c["metric"] for c in gate["checks"]} == {
        "groundedness",
        "task_completion",
        "context_relevance",
    }

    # The CI step retried for the same PR and SHA gets the same run, not a second one.
    again = ci_call(process, token, "4f2a9c1", 7)
    assert again.returncode == 0
    assert run_of(process, token, again.stdout)["run"]["run_id"] == run["run"]["run_id"]

    failed = ci_call(process, token, "9e1b7d0", 8, '{"wrong_answer_rate": 0.5}')
    assert failed.returncode == 1, failed.stdout + failed.stderr + process.output()
    assert "verdict: FAIL" in failed.stdout and "groundedness" in failed.stdout
    assert "FAIL  groundedness" in failed.stdout
    run = run_of(process, token, failed.stdout)
    assert run["run"]["status"] == "gate_failed"
    assert run["run"]["params"] == {"git_sha": "9e1b7d0", "pr": 8, "wrong_answer_rate": 0.5}
    (gate,) = run["record"]["gates"]
    assert not gate["passed"]
    failing = {c["metric"]: c["value"] for c in gate["checks"] if not c["passed"]}
    assert failing["groundedness"] < 0.85 and failing["task_completion"] < 0.85
    verdict = {n["id"]: n["state"] for n in run["nodes"]}["verdict"]
    assert verdict == "skipped"


def test_a_bad_token_exits_2_without_a_run(server: tuple[ServerProcess, str]) -> None:
    process, _ = server
    refused = ci_call(process, "lg_not-a-token", "4f2a9c1", 7)
    assert refused.returncode == 2
    assert "HTTP 401" in refused.stderr
