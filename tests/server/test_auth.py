"""The guard: tokens and scopes, open reads, the Host allowlist, body limits, rate limits."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli
from lockgate.server.auth import MAX_BODY, MAX_FAILURES, host_name
from lockgate.service import tokens

READS = [
    "/api/v1/pipelines",
    "/api/v1/runs",
    "/api/v1/artifacts",
    "/api/v1/models",
    "/api/v1/stats",
    "/api/v1/openapi.json",
    "/metrics",
]


def test_every_read_needs_a_token_by_default(api):
    for path in READS:
        anonymous = api.client.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.json()["error"] == "unauthorized"
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert api.client.get(path, headers=api.headers("read")).status_code == 200, path
    assert api.client.get("/healthz").status_code == 200


def test_wrong_and_revoked_tokens_get_401(api):
    assert (
        api.client.get("/api/v1/runs", headers={"Authorization": "Bearer lg_nope"}).status_code
        == 401
    )
    assert api.client.get("/api/v1/runs", headers={"Authorization": "Token x"}).status_code == 401
    tokens.revoke(api.workspace, "t-read")
    assert api.get("/api/v1/runs").status_code == 401


def test_scopes_read_run_admin(api):
    trigger = "/api/v1/pipelines/nightly/runs"
    refused = api.post(trigger, {}, scope="read")
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert "--scope run" in refused.json()["detail"]
    assert api.post(trigger, {}, scope="run").status_code == 201
    assert api.post(trigger, {}, scope="admin").status_code == 201
    promote = "/api/v1/models/tiny-clf/promote"
    assert api.post(promote, {"version": 1, "alias": "p"}, scope="run").status_code == 403
    # Admin passes the guard; the registry then refuses a model that does not exist.
    assert api.post(promote, {"version": 1, "alias": "p"}, scope="admin").status_code == 409


def test_tokens_from_before_scopes_may_read_and_run(api):
    api.workspace.metadata.create_token("old", tokens.hash_token("lg_legacy"), ["trigger"], 0.0)
    legacy = {"Authorization": "Bearer lg_legacy"}
    assert api.client.get("/api/v1/runs", headers=legacy).status_code == 200
    assert (
        api.client.post("/api/v1/pipelines/nightly/runs", json={}, headers=legacy).status_code
        == 201
    )
    promote = api.client.post(
        "/api/v1/models/m/promote", json={"version": 1, "alias": "p"}, headers=legacy
    )
    assert promote.status_code == 403


def test_a_malformed_body_without_a_token_is_401_not_422(api):
    response = api.client.post(
        "/api/v1/pipelines/nightly/runs",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401


def test_open_reads_on_loopback_only(make_api):
    opened = make_api(server="open_reads = true\n")
    assert opened.client.get("/api/v1/runs").status_code == 200
    assert opened.client.get("/metrics").status_code == 200
    # Writes still need a token, and a bad token is not waved through as anonymous.
    assert opened.client.post("/api/v1/pipelines/nightly/runs", json={}).status_code == 401
    bad = opened.client.get("/api/v1/runs", headers={"Authorization": "Bearer lg_bad"})
    assert bad.status_code == 401
    # Bound beyond loopback, open_reads is ignored.
    exposed = make_api(server="open_reads = true\n", host="0.0.0.0")
    assert exposed.client.get("/api/v1/runs").status_code == 401
    # A reverse proxy on this machine connects from loopback too: what it relays
    # came from elsewhere, so open_reads does not apply to it.
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        relayed = opened.client.get("/api/v1/runs", headers={header: "203.0.113.9"})
        assert relayed.status_code == 401, header
        assert opened.client.get("/metrics", headers={header: "203.0.113.9"}).status_code == 401


def test_host_header_must_be_local_or_allowed(make_api):
    api = make_api(server='allowed_hosts = ["lockgate.internal"]\n')
    for host in ("evil.example", "127.0.0.1.evil.example", "localhost.evil", ""):
        for path in ("/healthz", "/api/v1/runs", "/metrics", "/"):
            response = api.client.get(path, headers={**api.headers("read"), "Host": host})
            assert response.status_code == 400, (host, path)
            assert response.json()["error"] == "bad_host"
    for host in ("localhost:8787", "127.0.0.1", "[::1]:8787", "lockgate.internal", "LOCALHOST"):
        response = api.client.get("/api/v1/runs", headers={**api.headers("read"), "Host": host})
        assert response.status_code == 200, host


def test_host_names_drop_the_port():
    assert host_name("LocalHost:8787") == "localhost"
    assert host_name("[::1]:80") == "[::1]"
    assert host_name("example.org") == "example.org"


def test_oversized_bodies_get_413(api):
    big = json.dumps({"params": {"size": 1}, "key": "x" * MAX_BODY}).encode()
    response = api.client.post(
        "/api/v1/pipelines/nightly/runs",
        content=big,
        headers={**api.headers("run"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"

    def chunks():  # no Content-Length: the guard counts what arrives
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    streamed = api.client.post(
        "/api/v1/pipelines/nightly/runs",
        content=chunks(),
        headers={**api.headers("run"), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413 and streamed.json()["error"] == "body_too_large"


@pytest.mark.parametrize(
    "content_type, content",
    [
        ("application/octet-stream", pickle.dumps({"params": {}})),
        ("application/python-pickle", pickle.dumps(object)),
        ("application/x-www-form-urlencoded", b"params=1"),
        ("text/plain", b"{}"),
    ],
)
def test_bodies_that_are_not_json_get_415(api, content_type, content):
    response = api.client.post(
        "/api/v1/pipelines/nightly/runs",
        content=content,
        headers={**api.headers("run"), "Content-Type": content_type},
    )
    assert response.status_code == 415 and response.json()["error"] == "unsupported_media_type"
    assert api.workspace.metadata.list_runs() == []


def test_the_eleventh_bad_token_within_a_second_gets_429(api):
    bad = {"Authorization": "Bearer lg_guess"}
    statuses = [api.client.get("/api/v1/runs", headers=bad).status_code for _ in range(11)]
    assert statuses == [401] * MAX_FAILURES + [429]
    blocked = api.client.get("/api/v1/runs", headers=bad)
    assert blocked.status_code == 429 and blocked.headers["retry-after"] == "1"
    assert blocked.json()["error"] == "too_many_requests"


def test_tokens_are_never_logged(api, caplog):
    caplog.set_level(logging.DEBUG)
    secret = api.tokens["read"]
    api.get("/api/v1/runs")
    api.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {secret}x"})
    api.post("/api/v1/pipelines/nightly/runs", {}, scope="read")
    assert secret not in caplog.text and "refused GET /api/v1/runs" in caplog.text


def test_token_create_takes_a_scope(api):
    result = CliRunner().invoke(cli, ["token", "create", "reader", "--scope", "read"])
    assert result.exit_code == 0, result.output
    value = result.stdout.strip()
    found = tokens.verify(api.workspace, value)
    assert found is not None and found.scopes == ("read",)
    listed = json.loads(CliRunner().invoke(cli, ["token", "list", "--json"]).stdout)
    assert {t["name"]: t["scopes"] for t in listed}["reader"] == ["read"]
    wrong = CliRunner().invoke(cli, ["token", "create", "x", "--scope", "root"])
    assert wrong.exit_code != 0
