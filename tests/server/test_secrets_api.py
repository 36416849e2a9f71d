"""Secret parameters through the server: refused as literals, and absent from every response.

A run whose `lg.Secret` parameter was a random literal is read back through
the REST API and the web UI pages; none of them holds the value. Runs the
server queues (and so launches from the database) take `env:VAR` only.
"""

from __future__ import annotations

import secrets

from lockgate.service.catalog import load_catalog

SECRET_PIPELINE = '''


@lg.task
def use_key(api_key: lg.Secret) -> int:
    print("using", api_key, api_key.reveal())
    return len(api_key.reveal())


@lg.pipeline
def keyed(api_key: lg.Secret, size: int = 2):
    """Uses a secret."""
    return use_key(api_key)
'''


def test_api_and_ui_never_show_a_secret_and_queued_runs_take_env_references(make_api):
    api = make_api(server="open_reads = true\n")
    with (api.root / "pipelines.py").open("a") as handle:
        handle.write(SECRET_PIPELINE)
    api.state.catalog = api.catalog = load_catalog(api.workspace.project)
    secret = "lg-" + secrets.token_hex(16)

    refused = api.post("/api/v1/pipelines/keyed/runs", {"params": {"api_key": secret}})
    assert refused.status_code == 422, refused.text
    assert secret not in refused.text and "env:" in refused.text
    queued = api.post("/api/v1/pipelines/keyed/runs", {"params": {"api_key": "env:LG_API_KEY"}})
    assert queued.status_code == 201, queued.text
    assert api.get(f"/api/v1/runs/{queued.json()['run_id']}").json()["run"]["params"] == {
        "api_key": "env:LG_API_KEY",
        "size": 2,
    }

    result = api.run("keyed", api_key=secret)
    assert result.ok and result.output() == len(secret)
    run = result.run_id
    paths = [
        "/api/v1/runs",
        f"/api/v1/runs/{run}",
        f"/api/v1/runs/{run}/tasks",
        f"/api/v1/runs/{run}/tasks/use_key/attempts",
        f"/api/v1/runs/{run}/logs",
        f"/api/v1/runs/{run}/record",
        "/api/v1/pipelines/keyed",
        "/",
        f"/runs/{run}",
        f"/runs/{run}/nodes/use_key",
        f"/runs/{run}/record",
        "/pipelines/keyed",
    ]
    seen = {}
    for path in paths:
        response = api.get(path)
        seen[path] = response.status_code
        assert secret not in response.text, path
    assert set(seen.values()) == {200}, seen
    logs = api.get(f"/api/v1/runs/{run}/logs").text
    assert "using <redacted> " + "*" * len(secret) in logs, logs
