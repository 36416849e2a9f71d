"""The web UI's sessions, CSRF defence and security headers.

A browser logs in once with an API token (`lockgate token create NAME`); the
server keeps the session in memory and gives the browser only a random
session id in an `HttpOnly; SameSite=Strict` cookie. The token itself is
never written into a page or a cookie. Each session carries a synchronizer
CSRF token that every state-changing form sends back; a POST also needs the
browser to say it comes from this server (`Origin`, `Sec-Fetch-Site` or
`Referer`, see `same_origin`), or it gets 403.

Sessions are lost when the server restarts (log in again); a revoked token
ends its sessions at the next request, because each request re-checks it.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from lockgate.server.state import ServerState, is_loopback, via_proxy

COOKIE = "lockgate_session"
#: A session lasts this long after login.
SESSION_TTL = 12 * 3600.0
#: Beyond this many live sessions the oldest are dropped (memory stays bounded).
MAX_SESSIONS = 10_000
#: The same for anonymous sessions (login forms not yet sent).
MAX_ANONYMOUS = 1_000

#: Set on every HTML response. No inline scripts or styles: all of it is in /ui/static.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass
class Session:
    """One browser's session: the token it logged in with (by hash) and its CSRF token."""

    id: str
    csrf: str
    created_at: float
    token_hash: str | None = None
    token_name: str | None = None
    scopes: tuple[str, ...] = ()

    @property
    def user(self) -> str | None:
        """The name of the token this session logged in with, or None."""
        return self.token_name


class Sessions:
    """Live sessions by id, in this server's memory.

    Anonymous sessions (a login form's CSRF token) are kept apart and capped
    lower, so a flood of login-page visits can never push out logged-in users.
    """

    def __init__(self) -> None:
        """Start with none."""
        self._users: OrderedDict[str, Session] = OrderedDict()
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def new(
        self,
        token_hash: str | None = None,
        token_name: str | None = None,
        scopes: tuple[str, ...] = (),
    ) -> Session:
        """A fresh session with a new id and CSRF token (anonymous without a token)."""
        session = Session(
            id=secrets.token_urlsafe(32),
            csrf=secrets.token_urlsafe(32),
            created_at=time.time(),
            token_hash=token_hash,
            token_name=token_name,
            scopes=scopes,
        )
        table, cap = (self._users, MAX_SESSIONS) if token_hash else (self._anonymous, MAX_ANONYMOUS)
        with self._lock:
            while len(table) >= cap:
                table.popitem(last=False)  # the oldest goes
            table[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown or expired)."""
        if not session_id:
            return None
        with self._lock:
            for table in (self._users, self._anonymous):
                session = table.get(session_id)
                if session is None:
                    continue
                if time.time() - session.created_at > SESSION_TTL:
                    del table[session_id]
                    return None
                return session
        return None

    def drop(self, session_id: str) -> None:
        """End a session (logout, or its token was revoked)."""
        with self._lock:
            self._users.pop(session_id, None)
            self._anonymous.pop(session_id, None)


def current_session(request: Request, state: ServerState, sessions: Sessions) -> Session | None:
    """The request's session; a session whose token was revoked since login is ended."""
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        return None
    if session.token_hash is not None:
        found = state.workspace.metadata.find_token(session.token_hash, time.time())
        if found is None:
            sessions.drop(session.id)
            return None
    return session


def set_cookie(response: Response, request: Request, session: Session) -> None:
    """Send the session id: HttpOnly, SameSite=Strict, Secure under TLS."""
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(SESSION_TTL),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def same_origin(request: Request) -> bool:
    """True when the browser says the request comes from a page of this server.

    `Origin` decides when it names an origin. Under `Referrer-Policy:
    no-referrer` browsers send `Origin: null` on form posts and no `Referer`,
    so then `Sec-Fetch-Site: same-origin` decides (browsers send it to https
    and loopback servers), and lacking that a `Referer` naming this host.
    """
    host = request.headers.get("host", "")
    if not host:
        return False
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return _names_host(origin, host)
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    referer = request.headers.get("referer")
    return origin is None and bool(referer) and _names_host(str(referer), host)


def _names_host(url: str, host: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and parts.netloc == host


def csrf_ok(session: Session | None, sent: str | None) -> bool:
    """True when `sent` is the session's CSRF token (compared in constant time)."""
    if session is None or not sent:
        return False
    return hmac.compare_digest(session.csrf.encode(), sent.encode())


def loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses."""
    return bool(host) and is_loopback(str(host).strip("[]"))


def open_reads(state: ServerState, request: Request) -> bool:
    """Whether pages may be read without logging in.

    Only when `[server] open_reads = true`, the server is bound to loopback,
    and the reader connects from loopback, not through a proxy.
    """
    client = request.client.host if request.client else None
    return state.reads_open and loopback(client) and not via_proxy(request.headers)


def add_headers(response: Response) -> None:
    """The security headers every UI response carries."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
