"""The guard in front of every request: Host check, tokens and scopes, body limits.

It is ASGI middleware, so it answers before anything parses a body: an
anonymous caller sending a malformed body gets 401, never a 422 describing
what it got wrong. In order:

1. `Host` must be localhost, 127.0.0.1, [::1], the address the server is
   bound to, or one of `[server] allowed_hosts` (else 400): a page on another
   site cannot reach the API through DNS rebinding.
2. `/api/` and `/metrics` need `Authorization: Bearer <token>` with the
   scope the request needs: `read` for GET, `admin` to promote or roll back a
   model, to shift or roll back a route and to read the audit log (GET
   /api/v1/audit), `run` for the other writes (401
   without a valid token, 403 with too small a scope). GETs need no token
   while `[server] open_reads = true`, the server is bound to loopback and the
   request was not relayed by a proxy (no Forwarded / X-Forwarded-For /
   X-Real-IP header: a proxy on this machine would otherwise open them to all).
   After 10 failed authentications within a second from one client, the
   next get 429.
3. A body over 1 MiB gets 413; a body sent to `/api/` that is not JSON gets
   415 (no endpoint takes pickles, forms or code).

Whoever is calling is left on `request.state.caller` (a `Caller`, or None
on routes that need no token), so the UI can apply the same rules and the
audit trail (`lockgate.server.audit`) can name them. A request refused for
its Host or by the rate limit is marked `request.state.unaudited`: it is no
authentication attempt, and recording floods of them would let anyone fill
the database. Tokens are never logged.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockgate.errors import StoreError
from lockgate.server.problems import problem
from lockgate.server.state import ServerState, via_proxy
from lockgate.service import tokens

log = logging.getLogger("lockgate.server.auth")

#: Largest request body accepted, in bytes.
MAX_BODY = 1024 * 1024
#: Failed authentications one client may make within `FAILURE_WINDOW` seconds.
MAX_FAILURES = 10
FAILURE_WINDOW = 1.0
#: Host names every server answers to (besides its bind address and allowed_hosts).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: a token's name and scopes, or anonymous under open reads."""

    name: str
    scopes: tuple[str, ...]
    via: str  # "token", "session" (a UI login) or "open_reads"

    def allows(self, scope: str) -> bool:
        """Whether this caller may do what needs `scope`."""
        return tokens.allows(self.scopes, scope)

    @property
    def actor(self) -> str:
        """How the caller is named in events and audit logs: `api:<token>` or `ui:<token>`."""
        return f"{'ui' if self.via == 'session' else 'api'}:{self.name}"

    @property
    def token(self) -> str | None:
        """The name of the token the caller presented (None under open reads)."""
        return self.name if self.via in ("token", "session") else None


def needed_scope(method: str, path: str) -> str:
    """The scope a request needs: read for GET, admin for model and route moves and
    for reading the audit log, else run."""
    if method not in _WRITES:
        return "admin" if path.rstrip("/") == "/api/v1/audit" else "read"
    if path.startswith(("/api/v1/models/", "/api/v1/routes/")):
        return "admin"
    return "run"


def guarded(path: str) -> bool:
    """Whether `path` needs a token (or open reads)."""
    return path.startswith("/api/") or path == "/metrics"


def host_name(header: str) -> str:
    """The host part of a `Host` header, lower-cased, without the port."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class FailureLimiter:
    """Counts failed authentications per client over a sliding window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        """An empty limiter reading time from `clock`."""
        self.clock = clock
        self.failures: dict[str, collections.deque[float]] = {}

    def _recent(self, client: str) -> collections.deque[float]:
        now = self.clock()
        found = self.failures.get(client)
        if found is None:
            if len(self.failures) > 10_000:  # a flood of clients: forget the oldest state
                self.failures.clear()
            found = self.failures[client] = collections.deque()
        while found and found[0] <= now - FAILURE_WINDOW:
            found.popleft()
        return found

    def blocked(self, client: str) -> bool:
        """Whether `client` failed too often just now."""
        return len(self._recent(client)) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        """Note one failed authentication by `client`."""
        self._recent(client).append(self.clock())


class _TooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"request bodies are limited to {MAX_BODY} bytes")


async def authenticate(state: ServerState, request: Request) -> Caller | None:
    """The caller a request's bearer token names, or None (no, wrong or revoked token)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    found = await run_in_threadpool(tokens.verify, state.workspace, value.strip())
    if found is None:
        return None
    return Caller(found.name, tuple(found.scopes), "token")


class Guard:
    """ASGI middleware applying the checks in this module's docstring."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        """Guard `app`, served by `state`'s server."""
        self.app = app
        self.state = state
        self.limiter = FailureLimiter()
        allowed = set(LOCAL_HOSTS) | {
            h.lower() for h in state.workspace.project.server.allowed_hosts
        }
        if not ipaddress_unspecified(state.host):
            allowed.add(f"[{state.host}]" if ":" in state.host else state.host.lower())
        self.allowed_hosts = frozenset(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check one request, then pass it on (or answer it)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        request.state.caller = None
        refusal = await self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._pass(scope, receive, send)

    async def _refusal(self, request: Request) -> Any:
        if host_name(request.headers.get("host", "")) not in self.allowed_hosts:
            request.state.unaudited = True
            return problem(
                400,
                "bad_host",
                "this server does not answer to that Host header; add the name to "
                "[server] allowed_hosts in lockgate.toml",
            )
        path = request.url.path
        if guarded(path):
            denied = await self._authorize(request, needed_scope(request.method, path))
            if denied is not None:
                return denied
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return problem(413, "body_too_large", f"request bodies are limited to {MAX_BODY} bytes")
        if request.method in _WRITES and path.startswith("/api/") and _has_body(request):
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                return problem(
                    415,
                    "unsupported_media_type",
                    "send the body as JSON (Content-Type: application/json)",
                )
        return None

    async def _authorize(self, request: Request, needed: str) -> Any:
        client = request.client.host if request.client else "unknown"
        if (
            "authorization" not in request.headers
            and needed == "read"
            and self.state.reads_open
            and not via_proxy(request.headers)
        ):
            request.state.caller = Caller("anonymous", ("read",), "open_reads")
            return None
        if self.limiter.blocked(client):
            request.state.unaudited = True
            return problem(
                429,
                "too_many_requests",
                "too many failed authentications from this client; wait a second",
                {"Retry-After": "1"},
            )
        try:
            caller = await authenticate(self.state, request)
        except StoreError as exc:
            return problem(503, "database_unavailable", f"cannot check the token: {exc}")
        if caller is None:
            self.limiter.failed(client)
            log.info(
                "refused %s %s from %s: no valid token", request.method, request.url.path, client
            )
            return problem(
                401,
                "unauthorized",
                "send Authorization: Bearer <token>; create one with "
                "`lockgate token create NAME --scope read|run|admin`",
                {"WWW-Authenticate": "Bearer"},
            )
        request.state.caller = caller  # the audit trail names it, refused or not
        if not caller.allows(needed):
            return problem(
                403,
                "forbidden",
                f"token {caller.name!r} has scope {','.join(caller.scopes)}; this needs "
                f"{needed} (`lockgate token create NAME --scope {needed}`)",
            )
        return None

    async def _pass(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0

        async def limited() -> Message:
            # A chunked body has no Content-Length: count what arrives instead.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise _TooLarge
            return message

        await self.app(scope, limited, send)


def ipaddress_unspecified(host: str) -> bool:
    """Whether `host` is a wildcard address (listen everywhere), not a name to answer to."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length != "0")
