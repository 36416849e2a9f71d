"""The audit log's record: one row per state-changing request or token change.

`lockgate server` writes one `AuditEntry` for every POST, PUT, PATCH or
DELETE it answers (the API and the UI's actions, refusals included), and the
CLI writes one when it creates or revokes a token. An entry names the token
that acted, never the token itself. `request_id` is unique: writing the same
entry twice (a retried write) stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Where an action came from (`audit_log.channel`).
CHANNELS = ("api", "ui", "cli")
#: How it ended: done; refused by authentication (401, 403); failed (another 4xx); error (5xx).
OUTCOMES = ("ok", "refused", "failed", "error")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited action.

    Attributes:
        request_id: unique per action (a random hex id); a repeated write is ignored.
        at: when it was answered (Unix seconds).
        channel: `api`, `ui` or `cli`.
        actor: who acted, as events and the registry name them (`api:<token>`,
            `ui:<token>`, `cli:<user>`), or None for an unknown caller.
        token: the name of the token presented (None: none, or not a live one).
        scope: that token's scope (`read`, `run`, `admin`), or None.
        method: the HTTP method (None for the CLI).
        action: the request path, or the CLI command (`token create`).
        target: what it acted on, e.g. `run:<id>`, `pipeline:<name>`, `model:<name>`,
            `route:<name>`, `token:<name>`; several are space-separated.
        status: the HTTP status answered (None for the CLI).
        outcome: one of `OUTCOMES`.
        client: the client's address (None for the CLI).
        id: the row's id once stored (None before).
    """

    request_id: str
    at: float
    channel: str
    actor: str | None
    token: str | None
    scope: str | None
    method: str | None
    action: str
    target: str | None
    status: int | None
    outcome: str
    client: str | None
    id: int | None = None


def outcome_of(status: int) -> str:
    """The outcome an HTTP status stands for."""
    if status in (401, 403):
        return "refused"
    if status >= 500:
        return "error"
    return "failed" if status >= 400 else "ok"
