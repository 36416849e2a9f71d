"""The gateway's guard: Host check, tokens, JSON only and a body limit, before any handler.

The same rules as `lockgate server`'s guard (lockgate.server.auth), built
from its pieces, on the gateway's paths:

1. `Host` must be localhost, 127.0.0.1, [::1], or the address the gateway is
   bound to (else 400; DNS rebinding).
2. `POST /v1/routes/...` (predict, feedback) needs a token with scope `run`;
   `GET /v1/...` and `/metrics` need `read`. 401 without a valid token, 403
   with too small a scope, 429 after 10 failures a second from one client.
   `[gateway] open = true` lifts the token requirement, and is honoured only
   while the gateway is bound to loopback and for requests no proxy relayed
   (no Forwarded / X-Forwarded-For / X-Real-IP header). `/healthz` needs no token. A
   verified token is remembered for `TOKEN_TTL` seconds, so a revoked token
   stops working within that time.
3. A body over `MAX_BODY` (1 MiB) gets 413; a POST whose body is not JSON
   (`Content-Type: application/json`) gets 415. Bodies are parsed as JSON
   only: nothing a client sends is ever unpickled or executed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockgate.errors import StoreError
from lockgate.ports.metadata import TokenRecord
from lockgate.server.auth import (
    LOCAL_HOSTS,
    MAX_BODY,
    Caller,
    FailureLimiter,
    host_name,
    ipaddress_unspecified,
)
from lockgate.server.problems import problem
from lockgate.server.state import is_loopback, via_proxy
from lockgate.service import tokens
from lockgate.service.compose import Workspace

log = logging.getLogger("lockgate.gateway.guard")


#: Seconds a verified token is trusted without asking the database again.
TOKEN_TTL = 5.0


class _TooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"request bodies are limited to {MAX_BODY} bytes")


class GatewayGuard:
    """ASGI middleware applying the checks in this module's docstring."""

    def __init__(self, app: ASGIApp, workspace: Workspace, host: str, open_: bool) -> None:
        """Guard `app` for a gateway bound to `host`; `open_` is `[gateway] open`."""
        self.app = app
        self.workspace = workspace
        self.open = open_ and is_loopback(host)
        self.limiter = FailureLimiter()
        self._verified: dict[str, tuple[TokenRecord, float]] = {}
        allowed = set(LOCAL_HOSTS)
        if not ipaddress_unspecified(host):
            allowed.add(f"[{host}]" if ":" in host else host.lower())
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
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise _TooLarge
            return message

        await self.app(scope, limited, send)

    async def _refusal(self, request: Request) -> Any:
        if host_name(request.headers.get("host", "")) not in self.allowed_hosts:
            return problem(400, "bad_host", "this gateway does not answer to that Host header")
        path = request.url.path
        if path.startswith("/v1/") or path == "/metrics":
            needed = "run" if request.method == "POST" else "read"
            denied = await self._authorize(request, needed)
            if denied is not None:
                return denied
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return problem(413, "body_too_large", f"request bodies are limited to {MAX_BODY} bytes")
        if request.method == "POST":
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                return problem(
                    415,
                    "unsupported_media_type",
                    "send the body as JSON (Content-Type: application/json)",
                )
        return None

    async def _authorize(self, request: Request, needed: str) -> Any:
        if self.open and "authorization" not in request.headers and not via_proxy(request.headers):
            request.state.caller = Caller("anonymous", ("run",), "open")
            return None
        client = request.client.host if request.client else "unknown"
        if self.limiter.blocked(client):
            return problem(
                429,
                "too_many_requests",
                "too many failed authentications from this client; wait a second",
                {"Retry-After": "1"},
            )
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        try:
            found = await self._verify(value.strip()) if scheme.lower() == "bearer" else None
        except StoreError as exc:
            return problem(503, "database_unavailable", f"cannot check the token: {exc}")
        if found is None:
            self.limiter.failed(client)
            log.info(
                "refused %s %s from %s: no valid token", request.method, request.url.path, client
            )
            return problem(
                401,
                "unauthorized",
                "send Authorization: Bearer <token> (`lockgate token create NAME --scope run`), "
                "or set [gateway] open = true on a loopback-only gateway",
                {"WWW-Authenticate": "Bearer"},
            )
        caller = Caller(found.name, tuple(found.scopes), "token")
        if not caller.allows(needed):
            return problem(
                403,
                "forbidden",
                f"token {caller.name!r} has scope {','.join(caller.scopes)}; this needs "
                f"{needed} (`lockgate token create NAME --scope {needed}`)",
            )
        request.state.caller = caller
        return None

    async def _verify(self, token: str) -> TokenRecord | None:
        # Predictions are many and fast: a verified token is trusted for TOKEN_TTL
        # seconds (keyed by its hash), so a revoke takes effect within that time.
        key = tokens.hash_token(token)
        now = time.monotonic()
        cached = self._verified.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await run_in_threadpool(tokens.verify, self.workspace, token)
        if found is not None:
            if len(self._verified) > 1000:
                self._verified.clear()
            self._verified[key] = (found, now + TOKEN_TTL)
        return found
