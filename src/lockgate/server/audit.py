"""The audit trail: one row for every state-changing request the server answers.

ASGI middleware around the guard, so it sees the guard's refusals as well as
what the API and the UI did. For each POST, PUT, PATCH or DELETE it writes
one `AuditEntry` (ports/audit.py) when the response starts: who (the token
the guard or the UI's login found, on `request.state.caller`), the method and
path, the target (named from the path, plus what a handler adds with
`note`), the status and outcome, and the client address.

Why it is written like this:

- *Apart from the action.* The row is written after the handler committed
  its own transaction, never inside it: a failing audit write cannot undo
  the action, and the response still goes out (the failure is logged at
  ERROR), so a client is never told to retry something that happened.
- *Before the client hears back.* The write happens before the response's
  first byte is sent, so a client that saw the answer can count on the row.
- *Once.* Each request has a random request id, unique in the log; the write
  is retried on a database error, and a retry of a write that did land
  stores nothing more.
- *Not a flood.* Requests the guard refused for their Host or by the
  auth-failure rate limit are not recorded (`request.state.unaudited`), and
  rows for callers without a token are limited like failed authentications
  (`MAX_FAILURES` a second per client), so anonymous requests cannot fill
  the database.

The token itself is never recorded, only its name.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import unquote

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lockgate.errors import StoreError
from lockgate.ports.audit import AuditEntry, outcome_of
from lockgate.server.auth import Caller, FailureLimiter
from lockgate.server.state import ServerState
from lockgate.service.audit import new_request_id

log = logging.getLogger("lockgate.server.audit")

#: The methods that change state, each of whose requests gets one row.
AUDITED = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: The API's path prefix (targets are named from what follows it).
API_PREFIX = "/api/v1"
#: Tries of one write (database busy or gone) before giving up and logging.
WRITE_ATTEMPTS = 3


def note(request: Request, target: str) -> None:
    """Add `target` (e.g. `run:<id>` of a run a request created) to its audit row."""
    found: list[str] = getattr(request.state, "audit_targets", None) or []
    request.state.audit_targets = [*found, target]


def refused(request: Request) -> None:
    """Mark a request as refused for want of authentication though its status is no 401/403.

    The UI answers an action without a login with a redirect to the login page.
    """
    request.state.audit_refused = True


class AuditTrail:
    """ASGI middleware writing the audit row of each state-changing request."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        """Audit requests to `app` into `state`'s store."""
        self.app = app
        self.state = state
        self.anonymous = FailureLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; write its row when its response starts (or it fails)."""
        if scope["type"] != "http" or scope["method"] not in AUDITED:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        request_id = new_request_id()
        recorded = False

        async def answer(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await self._record(scope, request_id, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, answer)
        except Exception:
            if not recorded:  # the error middleware outside answers 500
                recorded = True
                await self._record(scope, request_id, 500)
            raise

    async def _record(self, scope: Scope, request_id: str, status: int) -> None:
        request = Request(scope)
        if getattr(request.state, "unaudited", False):
            return
        entry = self.entry(request, request_id, status)
        if entry.token is None:
            client = entry.client or "unknown"
            if self.anonymous.blocked(client):
                return
            self.anonymous.failed(client)
        await run_in_threadpool(self._write, entry)

    def entry(self, request: Request, request_id: str, status: int) -> AuditEntry:
        """The row for `request`, answered with `status`."""
        caller: Caller | None = getattr(request.state, "caller", None)
        token = caller.token if caller is not None else None
        path = request.url.path
        targets = [target_of(path), *getattr(request.state, "audit_targets", [])]
        outcome = outcome_of(status)
        if getattr(request.state, "audit_refused", False):
            outcome = "refused"
        return AuditEntry(
            request_id=request_id,
            at=time.time(),
            channel="api" if path.startswith("/api/") or path == "/metrics" else "ui",
            actor=caller.actor if caller is not None and token is not None else None,
            token=token,
            scope=",".join(caller.scopes) if caller is not None and token is not None else None,
            method=request.method,
            action=path,
            target=" ".join(t for t in targets if t) or None,
            status=status,
            outcome=outcome,
            client=request.client.host if request.client else None,
        )

    def _write(self, entry: AuditEntry) -> None:
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                self.state.workspace.metadata.record_audit(entry)
                return
            except StoreError as exc:
                if attempt == WRITE_ATTEMPTS:
                    log.error(
                        "audit: could not record %s %s by %s (%s, request %s): %s",
                        entry.method,
                        entry.action,
                        entry.actor or "an unknown caller",
                        entry.status,
                        entry.request_id,
                        exc,
                    )
                    return
                time.sleep(0.05 * attempt)
            except Exception:  # a bug here must not cost the client its answer
                log.exception("audit: recording request %s failed", entry.request_id)
                return


def target_of(path: str) -> str | None:
    """`kind:name` for the resource a path names: `/api/v1/runs/<id>/cancel` gives
    `run:<id>`, `/pipelines/<name>/trigger` gives `pipeline:<name>`.

    Derived from the path alone, so a refused request (never routed) and an
    endpoint added later get a target too.
    """
    segments = [unquote(s) for s in path.removeprefix(API_PREFIX).strip("/").split("/")]
    if len(segments) < 2 or not segments[1]:
        return None
    kind = segments[0][:-1] if segments[0].endswith("s") else segments[0]
    return f"{kind}:{segments[1]}"
