"""The audit log's use cases: entries for CLI actions, reading the log, its JSON form.

The server writes its entries itself (`lockgate.server.audit`); this module
makes the CLI's (token creation and revocation, written in the same
transaction as the change) and reads the log for `lockgate audit` and
`GET /api/v1/audit`.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from lockgate.errors import UsageError
from lockgate.ports.audit import AuditEntry
from lockgate.service.compose import Workspace
from lockgate.service.views import iso

#: Most entries one read returns.
MAX_LIMIT = 1000


def new_request_id() -> str:
    """A fresh id for one audited action (unique in the log)."""
    return secrets.token_hex(16)


def cli_entry(actor: str, action: str, target: str) -> AuditEntry:
    """The entry for a CLI action by `actor` (`cli:<user>`), e.g. `token create`."""
    return AuditEntry(
        request_id=new_request_id(),
        at=time.time(),
        channel="cli",
        actor=actor,
        token=None,
        scope=None,
        method=None,
        action=action,
        target=target,
        status=None,
        outcome="ok",
        client=None,
    )


def list_audit(
    workspace: Workspace, *, limit: int = 100, token: str | None = None
) -> list[AuditEntry]:
    """The newest `limit` entries (of the token named `token`), newest first.

    Raises:
        UsageError: `limit` is not within 1..MAX_LIMIT.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"--limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return workspace.metadata.audit_entries(limit=limit, token=token)


def audit_view(entry: AuditEntry) -> dict[str, Any]:
    """An entry as JSON data (what the CLI's --json and the API print)."""
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "channel": entry.channel,
        "actor": entry.actor,
        "token": entry.token,
        "scope": entry.scope,
        "method": entry.method,
        "action": entry.action,
        "target": entry.target,
        "status": entry.status,
        "outcome": entry.outcome,
        "client": entry.client,
        "request_id": entry.request_id,
    }
