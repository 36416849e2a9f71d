"""What every UI handler shares: templates, sessions, the read/act checks, error pages.

Pages render on the server with Jinja2 (autoescaped); the only scripts are
the static files under `/ui/static`, so the CSP can forbid inline script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from lockgate.server import audit
from lockgate.server.auth import Caller
from lockgate.server.state import ServerState
from lockgate.server.ui import security
from lockgate.server.ui.security import Session, Sessions
from lockgate.service import tokens
from lockgate.service.views import iso

HERE = Path(__file__).parent
#: Form bodies are small: a token, a CSRF token, a few parameters.
MAX_FORM_BYTES = 64 * 1024


class Refused(Exception):
    """A UI request that must stop here with `response` (a redirect, 401, 403 or 413)."""

    def __init__(self, response: Response) -> None:
        """Carry the response to send."""
        super().__init__(response.status_code)
        self.response = response


@dataclass
class Viewer:
    """Who is looking: their session (if any) and what they may do."""

    session: Session | None
    can_act: bool

    @property
    def user(self) -> str | None:
        """The token name the viewer logged in with, or None."""
        return self.session.user if self.session else None

    @property
    def csrf(self) -> str:
        """The CSRF token forms must send ("" without a session)."""
        return self.session.csrf if self.session else ""


@dataclass
class UI:
    """The UI's server state, sessions and template environment."""

    state: ServerState
    sessions: Sessions = field(default_factory=Sessions)
    env: jinja2.Environment = field(init=False)

    def __post_init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=jinja2.select_autoescape(["html"], default=True),
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["iso"] = lambda ts: (iso(ts) or "")[:19].replace("T", " ")
        self.env.filters["seconds"] = _seconds
        self.env.filters["short"] = lambda text, n=12: (text or "")[:n]

    # --- who may read and act ----------------------------------------------

    def viewer(self, request: Request, *, json: bool = False) -> Viewer:
        """The logged-in viewer, or an anonymous one where reads are open.

        Raises:
            Refused: neither: a redirect to the login page (401 for `json`).
        """
        session = security.current_session(request, self.state, self.sessions)
        if session is not None and session.user is not None:
            return Viewer(session, can_act=_may_run(session))
        if security.open_reads(self.state, request):
            return Viewer(None, can_act=False)
        if json:
            raise Refused(JSONResponse({"error": "unauthorized"}, status_code=401))
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise Refused(RedirectResponse(f"/login?next={target}", status_code=303))

    async def form(self, request: Request, *, login: bool = False) -> dict[str, str]:
        """The checked form of a state-changing request.

        Checks, in order: same origin (Origin or Referer), body size, the
        session's CSRF token, and (unless `login`) a logged-in session whose
        token may run pipelines. A logged-in session's token is left on
        `request.state.caller` for the audit trail, which names it.

        Raises:
            Refused: 403 for a cross-origin request or a bad CSRF token or
                scope, 413 for a large body, a redirect to login without a session.
        """
        session = security.current_session(request, self.state, self.sessions)
        if session is not None and session.user is not None:
            request.state.caller = Caller(session.user, session.scopes, "session")
        if not security.same_origin(request):
            raise Refused(self.forbidden("cross-origin request refused (Origin/Referer)"))
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Refused(HTMLResponse("form too large", status_code=413))
        fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not security.csrf_ok(session, fields.get("csrf")):
            raise Refused(self.forbidden("missing or wrong CSRF token; reload the page"))
        if not login:
            if session is None or session.user is None:
                audit.refused(request)
                raise Refused(RedirectResponse("/login", status_code=303))
            if not _may_run(session):
                raise Refused(self.forbidden(f"token {session.user!r} may only read"))
        return fields

    def forbidden(self, why: str) -> Response:
        """A 403 page saying why."""
        return self.error_page(403, "Forbidden", why)

    # --- rendering -----------------------------------------------------------

    def page(
        self, name: str, viewer: Viewer, context: Mapping[str, Any], status: int = 200
    ) -> HTMLResponse:
        """Render template `name` with the viewer and `context`."""
        text = self.env.get_template(name).render(viewer=viewer, **context)
        return HTMLResponse(text, status_code=status)

    def fragment(self, name: str, context: Mapping[str, Any]) -> HTMLResponse:
        """Render a partial template (a piece of a page that scripts swap in)."""
        return HTMLResponse(self.env.get_template(name).render(**context))

    def error_page(self, status: int, title: str, message: str) -> HTMLResponse:
        """An error page with the problem and what to do (the error's own message)."""
        context = {"title": title, "message": message, "status": status}
        return self.page("error.html", Viewer(None, False), context, status)


def _may_run(session: Session) -> bool:
    return tokens.scope_level(session.scopes) >= tokens.SCOPES.index("run")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
