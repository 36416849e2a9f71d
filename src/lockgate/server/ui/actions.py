"""The UI's state-changing requests: log in and out, trigger, cancel and resume runs.

Every POST passes `UI.form` first (same origin, CSRF token, a session whose
token may run pipelines). After queueing work the server's loop is woken so
it launches at once instead of at its next poll.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from lockgate.errors import LockgateError, PipelineNotFoundError, RunNotFoundError
from lockgate.model.states import Trigger
from lockgate.server import audit
from lockgate.server.auth import Caller, FailureLimiter
from lockgate.server.ui import security
from lockgate.server.ui.web import UI, Viewer
from lockgate.service import tokens
from lockgate.service.enqueue import enqueue
from lockgate.service.lifecycle import cancel_run, queue_resume


def safe_next(target: str | None) -> str:
    """Where to go after login: a path on this server only (never `//host` or a URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def actor(request: Request) -> str:
    """`ui:<token name>` of the session `UI.form` admitted (the audit and events name it)."""
    caller: Caller = request.state.caller
    return caller.actor


def register(app: FastAPI, ui: UI) -> None:
    """Add login, logout and the run actions to `app`."""
    failures = FailureLimiter()  # as the API's: 10 bad tokens a second, then 429

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request) -> Response:
        # An anonymous session carries the login form's CSRF token.
        session = security.current_session(request, ui.state, ui.sessions) or ui.sessions.new()
        context = {"next": safe_next(request.query_params.get("next")), "problem": None}
        response = ui.page("login.html", Viewer(session, False), context)
        security.set_cookie(response, request, session)
        return response

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        fields = await ui.form(request, login=True)
        client = request.client.host if request.client else "?"
        if failures.blocked(client):
            request.state.unaudited = True  # as the API's rate limit: not recorded
            return ui.error_page(429, "Too many failed logins", "wait a second and try again")
        found = await run_in_threadpool(
            tokens.verify, ui.state.workspace, fields.get("token", "").strip()
        )
        old = security.current_session(request, ui.state, ui.sessions)
        if found is None:
            failures.failed(client)
            context = {
                "next": safe_next(fields.get("next")),
                "problem": "that token is unknown or revoked; create one with "
                "`lockgate token create NAME`",
            }
            return ui.page("login.html", Viewer(old, False), context, status=401)
        if old is not None:
            ui.sessions.drop(old.id)  # a new id at login: no session fixation
        token = fields["token"].strip()
        session = ui.sessions.new(tokens.hash_token(token), found.name, tuple(found.scopes))
        request.state.caller = Caller(found.name, tuple(found.scopes), "session")
        response = RedirectResponse(safe_next(fields.get("next")), status_code=303)
        security.set_cookie(response, request, session)
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        await ui.form(request, login=True)
        session = security.current_session(request, ui.state, ui.sessions)
        if session is not None:
            ui.sessions.drop(session.id)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(security.COOKIE, path="/")
        return response

    @app.post("/pipelines/{name}/trigger", include_in_schema=False)
    async def trigger(request: Request, name: str) -> Response:
        fields = await ui.form(request)
        who = actor(request)
        assignments = [
            f"{key[len('param.') :]}={value}"
            for key, value in fields.items()
            if key.startswith("param.") and value != ""
        ]

        def run() -> str:
            entry = ui.state.catalog.get(name)
            result = enqueue(
                ui.state.workspace,
                entry.pipeline,
                entry.pipeline.bind_cli(assignments),
                trigger=Trigger.UI,
                pipeline_ref=entry.ref,
                actor=who,
            )
            return result.run_id

        try:
            run_id = await run_in_threadpool(run)
        except PipelineNotFoundError as exc:
            return ui.error_page(404, "No such pipeline", str(exc))
        except LockgateError as exc:
            return ui.error_page(400, "Run not queued", str(exc))
        ui.state.wake.set()
        audit.note(request, f"run:{run_id}")
        return RedirectResponse(f"/runs/{run_id}", status_code=303)

    @app.post("/runs/{run_id}/cancel", include_in_schema=False)
    async def cancel(request: Request, run_id: str) -> Response:
        await ui.form(request)
        who = actor(request)
        try:
            record = await run_in_threadpool(
                lambda: cancel_run(ui.state.workspace, run_id, by=Trigger.UI, actor=who)
            )
        except RunNotFoundError as exc:
            return ui.error_page(404, "No such run", str(exc))
        except LockgateError as exc:
            return ui.error_page(409, "Not cancelled", str(exc))
        ui.state.wake.set()
        return RedirectResponse(f"/runs/{record.id}", status_code=303)

    @app.post("/runs/{run_id}/resume", include_in_schema=False)
    async def resume(request: Request, run_id: str) -> Response:
        await ui.form(request)
        who = actor(request)
        try:
            record = await run_in_threadpool(
                lambda: queue_resume(ui.state.workspace, run_id, by=Trigger.UI, actor=who)
            )
        except RunNotFoundError as exc:
            return ui.error_page(404, "No such run", str(exc))
        except LockgateError as exc:
            return ui.error_page(409, "Not resumed", str(exc))
        ui.state.wake.set()
        return RedirectResponse(f"/runs/{record.id}", status_code=303)
