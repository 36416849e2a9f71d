"""The web UI served by `lockgate server` at `/`.

Server-rendered pages (Jinja2 templates under `templates/`) with a little
vanilla JavaScript under `static/` for live updates; no Node.js and no CDN.

    GET  /                          runs (filter by pipeline, status, trigger; paged; live)
    GET  /runs/{id}                 a run: live DAG, Gantt of attempts, cancel/resume
    GET  /runs/{id}/nodes/{node}    a node's attempts and logs
    GET  /runs/{id}/record          the run's reliability record
    GET  /pipelines[/{name}]        graph, schedule and next ticks, metrics, trigger form
    GET  /lineage?ref=...           ancestry (or descendants) of an artifact or version
    GET  /models[/{name}]           versions, aliases, gate evidence, audit log
    GET  /login, POST /login, POST /logout
    POST /pipelines/{name}/trigger, /runs/{id}/cancel, /runs/{id}/resume
    GET  /ui/...                    live-update fragments and states; /ui/static/ files

Pages need a login (an API token) unless reads are open (`[server]
open_reads = true` on loopback); actions always do. See `security` for the
session, CSRF and header rules.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from lockgate.server.state import ServerState
from lockgate.server.ui import actions, browse, pages, security
from lockgate.server.ui.web import HERE, UI, Refused


def mount_ui(app: FastAPI, state: ServerState) -> None:
    """Add the UI's routes and static files to `app`."""
    ui = UI(state)

    @app.middleware("http")
    async def ui_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/html") or request.url.path.startswith("/ui/"):
            security.add_headers(response)
        return response

    async def refused(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return exc.response

    app.add_exception_handler(Refused, refused)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    pages.register(app, ui)
    browse.register(app, ui)
    actions.register(app, ui)
