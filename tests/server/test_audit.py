"""The audit log: one row per state-changing request (refusals included) and token change.

The endpoints are enumerated from the app's own routes, so an endpoint added
later is covered without touching these tests.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict

import pytest
from click.testing import CliRunner
from fastapi import routing

from lockgate.cli.main import cli
from lockgate.errors import MetadataBusyError
from lockgate.model.states import EventKind
from lockgate.server import auth
from lockgate.server.audit import AUDITED
from lockgate.service import tokens

ORIGIN = {"Origin": "http://127.0.0.1"}


@pytest.fixture(autouse=True)
def no_failure_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests make many refused requests in a second: lift the rate limit."""
    monkeypatch.setattr(auth, "MAX_FAILURES", 10_000)


def app_routes(app) -> list:
    """Every route of `app`, those of included routers too (nested since FastAPI 0.165)."""
    contexts = getattr(routing, "iter_route_contexts", None)
    return list(contexts(app.routes)) if contexts else list(app.routes)


def writes(api, *, ui: bool) -> list[tuple[str, str]]:
    """(method, path) of every state-changing route of the app, path parameters filled in."""
    found = []
    for route in app_routes(api.client.app):
        methods = getattr(route, "methods", None) or set()
        if route.path is None or route.path.startswith("/api/") == ui:
            continue
        path = re.sub(
            r"\{(\w+)(:\w+)?\}", lambda m: "1" if m.group(1) == "version" else "x", route.path
        )
        found += [(method, path) for method in sorted(methods & AUDITED)]
    return found


def rows(api) -> list:
    return api.workspace.metadata.audit_entries(limit=1000)


def new_rows(api, before: int) -> list:
    found = rows(api)
    return found[: len(found) - before]


def test_every_state_changing_api_endpoint_writes_exactly_one_row_naming_the_token(api):
    endpoints = writes(api, ui=False)
    assert ("POST", "/api/v1/pipelines/x/runs") in endpoints
    assert ("POST", "/api/v1/runs/x/cancel") in endpoints
    assert ("POST", "/api/v1/routes/x/shift") in endpoints
    for method, path in endpoints:
        before = len(rows(api))
        answer = api.client.request(method, path, json={}, headers=api.headers("admin"))
        [row] = new_rows(api, before)
        assert (row.channel, row.method, row.action) == ("api", method, path)
        assert (row.token, row.actor, row.scope) == ("t-admin", "api:t-admin", "admin")
        assert row.status == answer.status_code and row.client == "testclient"
        assert row.outcome == ("ok" if answer.status_code < 400 else "failed"), answer.text
        assert row.target and "x" in row.target, row


def test_every_state_changing_api_endpoint_refuses_and_records_bad_callers(api):
    for method, path in writes(api, ui=False):
        cases = [
            ({}, 401, None),
            ({"Authorization": "Bearer lg_wrong"}, 401, None),
            ({"Authorization": "Token nonsense"}, 401, None),
            (api.headers("read"), 403, "t-read"),
        ]
        for headers, status, token in cases:
            before = len(rows(api))
            answer = api.client.request(method, path, json={}, headers=headers)
            assert answer.status_code == status, (method, path, headers)
            [row] = new_rows(api, before)
            assert (row.method, row.action, row.status) == (method, path, status)
            assert (row.outcome, row.token) == ("refused", token)
            assert row.actor == (f"api:{token}" if token else None)


def test_reads_write_no_rows_and_bad_hosts_are_not_recorded(api):
    api.get("/api/v1/runs")
    api.client.get("/api/v1/runs")
    api.client.post("/api/v1/pipelines/nightly/runs", json={}, headers={"Host": "evil.example"})
    assert rows(api) == []


def test_runs_triggered_cancelled_and_resumed_through_the_api_name_the_token(api):
    answer = api.post("/api/v1/pipelines/nightly/runs", {"params": {"size": 2}})
    run_id = answer.json()["run_id"]
    [row] = rows(api)
    assert row.target == f"pipeline:nightly run:{run_id}" and row.actor == "api:t-run"
    created = api.workspace.metadata.events(run_id)[0]
    assert created.kind is EventKind.RUN_CREATED and created.payload["actor"] == "api:t-run"
    assert api.post(f"/api/v1/runs/{run_id}/cancel", scope="admin").status_code == 200
    cancel = [
        e for e in api.workspace.metadata.events(run_id) if e.kind is EventKind.RUN_CANCEL_REQUESTED
    ]
    assert [e.payload["by"] for e in cancel] == ["api:t-admin"]
    failed = api.run("fragile").run_id
    assert api.post(f"/api/v1/runs/{failed}/resume").status_code == 200
    resumed = [e for e in api.workspace.metadata.events(failed) if e.kind is EventKind.RUN_RESUMED]
    assert [e.payload["by"] for e in resumed] == ["api:t-run"]
    assert [r.target for r in rows(api)[:2]] == [f"run:{failed}", f"run:{run_id}"]


def test_the_audit_endpoint_needs_admin_and_filters_by_token(api):
    api.post("/api/v1/pipelines/nightly/runs", {})
    api.post("/api/v1/runs/r-nope/cancel", scope="admin")
    assert api.get("/api/v1/audit", scope="read").status_code == 403
    assert api.get("/api/v1/audit", scope="run").status_code == 403
    assert api.client.get("/api/v1/audit").status_code == 401
    listed = api.get("/api/v1/audit", scope="admin").json()
    assert [(r["actor"], r["outcome"]) for r in listed][-2:] == [
        ("api:t-admin", "failed"),
        ("api:t-run", "ok"),
    ]
    only = api.get("/api/v1/audit", scope="admin", params={"token": "t-run", "limit": 5}).json()
    assert [r["token"] for r in only] == ["t-run"] and only[0]["status"] == 201
    # Reading the log (GET, refused or not) writes no rows.
    assert all(r["method"] == "POST" for r in listed)


def test_no_row_carries_anything_of_a_token_itself(api):
    api.post("/api/v1/pipelines/nightly/runs", {})
    api.client.post("/api/v1/pipelines/nightly/runs", json={}, headers=api.headers("read"))
    secret = "lg_" + "s" * 43
    api.client.post("/api/v1/runs/x/cancel", headers={"Authorization": f"Bearer {secret}"})
    dumped = json.dumps([asdict(r) for r in rows(api)])
    for value in [*api.tokens.values(), secret]:
        assert value not in dumped and value[3:20] not in dumped
        assert tokens.hash_token(value) not in dumped


def test_an_audit_write_that_fails_costs_neither_the_action_nor_its_answer(
    api, monkeypatch, caplog
):
    store = api.workspace.metadata
    real = store.record_audit
    calls = []

    def busy_twice(entry):
        calls.append(entry)
        if len(calls) <= 2:
            raise MetadataBusyError("database is locked")
        return real(entry)

    monkeypatch.setattr(store, "record_audit", busy_twice)
    answer = api.post("/api/v1/pipelines/nightly/runs", {})
    assert answer.status_code == 201 and len(calls) == 3
    assert len({c.request_id for c in calls}) == 1 and len(rows(api)) == 1

    def down(entry):
        raise MetadataBusyError("database is locked")

    monkeypatch.setattr(store, "record_audit", down)
    with caplog.at_level(logging.ERROR, logger="lockgate.server.audit"):
        answer = api.post("/api/v1/pipelines/nightly/runs", {"key": "k1"})
    assert answer.status_code == 201
    assert store.get_run(answer.json()["run_id"]).pipeline == "nightly"
    assert "audit: could not record POST /api/v1/pipelines/nightly/runs by api:t-run" in caplog.text


def ui_login(api, token: str) -> str:
    """Log the test client in to the UI with `token`; the session's CSRF token."""
    page = api.client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = api.client.post(
        "/login",
        data={"csrf": csrf, "token": token, "next": "/"},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = api.client.get("/pipelines/nightly")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def test_every_ui_action_writes_one_row_naming_the_token(api):
    endpoints = writes(api, ui=True)
    assert {p for _, p in endpoints} >= {"/login", "/logout", "/runs/x/cancel"}
    for method, path in endpoints:
        csrf = ui_login(api, api.tokens["run"])
        before = len(rows(api))
        data = {"csrf": csrf, "token": api.tokens["run"]}
        answer = api.client.request(method, path, data=data, headers=ORIGIN, follow_redirects=False)
        [row] = new_rows(api, before)
        assert (row.channel, row.method, row.action) == ("ui", method, path)
        assert (row.token, row.actor, row.status) == ("t-run", "ui:t-run", answer.status_code)
        api.client.cookies.clear()


def test_ui_runs_name_the_token_and_refusals_are_recorded(api):
    csrf = ui_login(api, api.tokens["run"])
    [login] = rows(api)
    assert (login.action, login.actor, login.outcome) == ("/login", "ui:t-run", "ok")
    answer = api.client.post(
        "/pipelines/nightly/trigger", data={"csrf": csrf}, headers=ORIGIN, follow_redirects=False
    )
    run_id = answer.headers["location"].rsplit("/", 1)[1]
    created = api.workspace.metadata.events(run_id)[0]
    assert created.payload["actor"] == "ui:t-run"
    assert rows(api)[0].target == f"pipeline:nightly run:{run_id}"
    api.client.post(
        f"/runs/{run_id}/cancel", data={"csrf": csrf}, headers=ORIGIN, follow_redirects=False
    )
    by = [e.payload.get("by") for e in api.workspace.metadata.events(run_id)]
    assert "ui:t-run" in by
    # Refused: a bad CSRF token, a cross-origin post, no login, a bad token at login.
    api.client.post(
        f"/runs/{run_id}/resume", data={"csrf": "nope"}, headers=ORIGIN, follow_redirects=False
    )
    api.client.post(
        f"/runs/{run_id}/resume",
        data={"csrf": csrf},
        headers={"Origin": "http://evil.example"},
        follow_redirects=False,
    )
    api.client.cookies.clear()
    page = api.client.get("/login")  # an anonymous session: a CSRF token, no login
    anonymous = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    api.client.post(
        f"/runs/{run_id}/resume", data={"csrf": anonymous}, headers=ORIGIN, follow_redirects=False
    )
    bad = api.client.post(
        "/login",
        data={"csrf": anonymous, "token": "lg_nope"},
        headers=ORIGIN,
        follow_redirects=False,
    )
    assert bad.status_code == 401
    refused = rows(api)[:4]
    assert [(r.outcome, r.status) for r in refused] == [
        ("refused", 401),
        ("refused", 303),
        ("refused", 403),
        ("refused", 403),
    ]
    assert [r.token for r in refused] == [None, None, "t-run", "t-run"]
    assert [r.action for r in refused] == ["/login"] + [f"/runs/{run_id}/resume"] * 3


def test_anonymous_refusals_from_one_client_are_recorded_at_a_bounded_rate(api, monkeypatch):
    monkeypatch.setattr(auth, "MAX_FAILURES", 10)
    for _ in range(30):
        api.client.post("/logout", data={}, headers={"Origin": "http://evil.example"})
    assert len(rows(api)) == 10


def test_token_create_and_revoke_from_the_cli_are_audited(api):
    runner = CliRunner()
    created = runner.invoke(cli, ["token", "create", "deployer", "--scope", "admin"])
    assert created.exit_code == 0, created.output
    assert runner.invoke(cli, ["token", "revoke", "deployer"]).exit_code == 0
    revoke, create = rows(api)[:2]
    assert (create.channel, create.action, create.target) == (
        "cli",
        "token create --scope admin",
        "token:deployer",
    )
    assert revoke.action == "token revoke" and create.actor.startswith("cli:")
    api.post("/api/v1/pipelines/nightly/runs", {})
    shown = runner.invoke(cli, ["audit", "--json", "--limit", "2"])
    listed = json.loads(shown.output)
    assert [r["action"] for r in listed] == ["/api/v1/pipelines/nightly/runs", "token revoke"]
    mine = json.loads(runner.invoke(cli, ["audit", "--json", "--token", "t-run"]).output)
    assert [r["actor"] for r in mine] == ["api:t-run"]
    table = runner.invoke(cli, ["audit"])
    assert table.exit_code == 0 and "token:deployer" in table.output
    assert created.output.strip().splitlines()[0] not in json.dumps(listed)
