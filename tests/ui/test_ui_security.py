"""The UI's HTTP security rules (RELIABILITY.md §3.5 S3, S7, S8) against a real server.

Plain HTTP (httpx) rather than a browser: these are about what the server
answers to requests a browser would, or would not, send.
"""

from __future__ import annotations

import re

import httpx
import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli
from lockgate.server.ui.security import MAX_ANONYMOUS, Sessions

HTML_PAGES = [
    "/",
    "/?status=failed&page=2",
    "/pipelines",
    "/pipelines/watched",
    "/pipelines/nope",
    "/lineage",
    "/lineage?ref=model:nope@1",
    "/models",
    "/models/nope",
    "/runs/r-nope",
]


def client(project) -> httpx.Client:
    return httpx.Client(base_url=project.url, follow_redirects=False, timeout=10)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def logged_in(project, token: str | None = None) -> tuple[httpx.Client, str]:
    """A client with a session cookie, and the session's CSRF token."""
    http = client(project)
    csrf = csrf_of(http.get("/login").text)
    answer = http.post(
        "/login",
        data={"csrf": csrf, "token": token or project.token, "next": "/"},
        headers={"Origin": project.url},
    )
    assert answer.status_code == 303, answer.text
    return http, csrf_of(http.get("/pipelines/watched").text)


def failed_run(project) -> str:
    run_id = project.api("POST", "/api/v1/pipelines/fragile/runs", {"params": {}})["run_id"]
    project.wait_run(run_id, ("failed",))
    return run_id


def assert_secure_headers(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_every_html_response_carries_the_security_headers(project):
    run_id = failed_run(project)
    http, _ = logged_in(project)
    pages = [
        *HTML_PAGES,
        f"/runs/{run_id}",
        f"/runs/{run_id}/nodes/fragile_step",
        f"/runs/{run_id}/nodes/nope",
        f"/runs/{run_id}/record",
        "/login",
    ]
    for path in pages:
        response = http.get(path)
        assert response.headers["content-type"].startswith("text/html"), path
        assert response.status_code in (200, 404), (path, response.status_code)
        assert_secure_headers(response)
    assert_secure_headers(http.get("/ui/runs/rows"))
    assert_secure_headers(http.get(f"/ui/runs/{run_id}/states"))
    # Pages load scripts and styles from files only: nothing inline for the CSP to allow.
    page = http.get(f"/runs/{run_id}").text
    assert re.search(r"<script(?![^>]*\bsrc=)", page) is None
    assert "<style" not in page and " style=" not in page and " onclick=" not in page


def test_the_session_cookie_is_httponly_strict_and_the_token_never_reaches_html(project):
    run_id = failed_run(project)
    http = client(project)
    csrf = csrf_of(http.get("/login").text)
    answer = http.post(
        "/login",
        data={"csrf": csrf, "token": project.token, "next": f"/runs/{run_id}"},
        headers={"Origin": project.url},
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/runs/{run_id}"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert project.token not in cookie
    pages = [*HTML_PAGES, f"/runs/{run_id}", f"/runs/{run_id}/record", "/ui/runs/rows"]
    for path in pages:
        assert project.token not in http.get(path).text, path
    # The token is not in the server's log either.
    assert project.token not in project.server.output()


def test_reads_need_a_login_unless_open_reads(project, start_project):
    http = client(project)
    answer = http.get("/runs/r-1?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/runs/r-1%3Fx%3D1"
    assert http.get("/ui/runs/rows").status_code == 401
    assert http.get("/ui/runs/r-1/states").status_code == 401
    opened = start_project(server="open_reads = true\n")
    anonymous = client(opened)
    page = anonymous.get("/pipelines/watched")
    assert page.status_code == 200 and 'id="trigger"' not in page.text
    assert "Log in to trigger a run" in page.text
    assert anonymous.get("/ui/runs/rows").status_code == 200
    # What a reverse proxy on this machine relays came from elsewhere: log in first.
    relayed = anonymous.get("/pipelines/watched", headers={"Forwarded": "for=203.0.113.9"})
    assert relayed.status_code == 303 and relayed.headers["location"].startswith("/login")
    # Open reads never open actions: no session, no CSRF token, no run.
    refused = anonymous.post(
        "/pipelines/watched/trigger", data={"csrf": "x"}, headers={"Origin": opened.url}
    )
    assert refused.status_code == 403
    assert opened.api("GET", "/api/v1/runs?limit=5")["runs"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Referer": "http://evil.example/page"},
        {},  # neither Origin, Sec-Fetch-Site nor Referer
    ],
    ids=["evil-origin", "null-origin-cross-site", "same-site", "evil-referer", "no-origin"],
)
def test_cross_origin_posts_are_refused_even_with_a_valid_csrf_token(project, headers):
    http, csrf = logged_in(project)
    answer = http.post("/pipelines/watched/trigger", data={"csrf": csrf}, headers=headers)
    assert answer.status_code == 403
    assert_secure_headers(answer)
    assert project.api("GET", "/api/v1/runs?limit=5")["runs"] == []


def test_posts_need_the_sessions_csrf_token(project):
    http, csrf = logged_in(project)
    same = {"Origin": project.url}
    assert http.post("/pipelines/watched/trigger", headers=same).status_code == 403
    wrong = {"csrf": csrf[:-2] + "xx"}
    assert http.post("/pipelines/watched/trigger", data=wrong, headers=same).status_code == 403
    # Another session's token does not work for this one.
    _, other = logged_in(project)
    assert (
        http.post("/pipelines/watched/trigger", data={"csrf": other}, headers=same).status_code
        == 403
    )
    assert project.api("GET", "/api/v1/runs?limit=5")["runs"] == []
    # Browsers on this server's pages send Origin: null under no-referrer, with Sec-Fetch-Site.
    good = http.post(
        "/runs/r-missing/cancel",
        data={"csrf": csrf},
        headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"},
    )
    assert good.status_code == 404  # past the checks: the run does not exist


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH"])
def test_other_state_changing_methods_change_nothing(project, method):
    run_id = failed_run(project)
    http, csrf = logged_in(project)
    for path in (f"/runs/{run_id}/resume", f"/runs/{run_id}", "/pipelines/fragile/trigger"):
        answer = http.request(method, path, data={"csrf": csrf}, headers={"Origin": project.url})
        assert answer.status_code in (403, 405), (path, answer.status_code)
    assert project.api("GET", f"/api/v1/runs/{run_id}")["run"]["status"] == "failed"


def test_login_refuses_bad_tokens_cross_origin_posts_and_foreign_redirects(project):
    http = client(project)
    csrf = csrf_of(http.get("/login").text)
    same = {"Origin": project.url}
    bad = http.post("/login", data={"csrf": csrf, "token": "lg_wrong"}, headers=same)
    assert bad.status_code == 401 and "unknown or revoked" in bad.text
    assert http.get("/").status_code == 303  # still not logged in
    cross = http.post(
        "/login",
        data={"csrf": csrf, "token": project.token},
        headers={"Origin": "http://evil.example"},
    )
    assert cross.status_code == 403
    for target in ("//evil.example/x", "http://evil.example/", "/\\evil.example"):
        answer = http.post(
            "/login", data={"csrf": csrf, "token": project.token, "next": target}, headers=same
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/", target
        csrf = csrf_of(http.get("/login").text)
    # The session id changes at login (no fixation of a pre-login id).
    before = http.cookies.get("lockgate_session")
    http.post("/login", data={"csrf": csrf, "token": project.token}, headers=same)
    assert http.cookies.get("lockgate_session") != before


def test_revoking_the_token_ends_its_sessions_and_read_tokens_cannot_act(project):
    http, csrf = logged_in(project)
    assert http.get("/").status_code == 200
    env = {"LOCKGATE_CONFIG": str(project.root / "lockgate.toml")}
    result = CliRunner().invoke(cli, ["token", "revoke", "ui-test"], env=env)
    assert result.exit_code == 0, result.output
    assert http.get("/").status_code == 303
    answer = http.post(
        "/pipelines/watched/trigger", data={"csrf": csrf}, headers={"Origin": project.url}
    )
    assert answer.status_code == 403
    made = CliRunner().invoke(cli, ["token", "create", "reader", "--scope", "read"], env=env)
    assert made.exit_code == 0, made.output
    reader, csrf = logged_in(project, made.stdout.strip())
    page = reader.get("/pipelines/watched")
    assert page.status_code == 200 and 'id="trigger"' not in page.text
    answer = reader.post(
        "/pipelines/watched/trigger", data={"csrf": csrf}, headers={"Origin": project.url}
    )
    assert answer.status_code == 403 and "may only read" in answer.text


def test_failed_logins_from_one_client_are_rate_limited(project):
    http = client(project)
    csrf = csrf_of(http.get("/login").text)
    codes = []
    while 429 not in codes and len(codes) < 50:
        answer = http.post(
            "/login", data={"csrf": csrf, "token": "lg_guess"}, headers={"Origin": project.url}
        )
        codes.append(answer.status_code)
    assert codes[-1] == 429 and set(codes[:-1]) == {401} and len(codes) >= 11


def test_a_flood_of_login_forms_never_pushes_out_logged_in_sessions():
    sessions = Sessions()
    user = sessions.new("hash", "alice", ("run",))
    first_form = sessions.new()
    for _ in range(MAX_ANONYMOUS + 50):
        sessions.new()
    assert sessions.get(user.id) is user
    assert sessions.get(first_form.id) is None  # the oldest anonymous ones went


def test_trigger_with_bad_parameters_says_why_and_cancel_stops_a_run(project):
    http, csrf = logged_in(project)
    same = {"Origin": project.url}
    bad = http.post(
        "/pipelines/watched/trigger", data={"csrf": csrf, "param.size": "many"}, headers=same
    )
    assert bad.status_code == 400 and "size" in bad.text and "int" in bad.text
    assert project.api("GET", "/api/v1/runs?limit=5")["runs"] == []
    queued = http.post(
        "/pipelines/watched/trigger", data={"csrf": csrf, "param.size": "2"}, headers=same
    )
    assert queued.status_code == 303
    run_id = queued.headers["location"].rsplit("/", 1)[1]
    project.wait_run(run_id, ("running",))
    cancelled = http.post(f"/runs/{run_id}/cancel", data={"csrf": csrf}, headers=same)
    assert cancelled.status_code == 303 and cancelled.headers["location"] == f"/runs/{run_id}"
    assert project.wait_run(run_id, ("cancelled",)) == "cancelled"
    again = http.post(f"/runs/{run_id}/cancel", data={"csrf": csrf}, headers=same)
    assert again.status_code == 409
