"""Registry use cases: list and show named versions; promote and roll back model aliases.

Promotion moves an alias (`production`, `staging`, any name) to a model
version. It is refused when the version did not pass a gate, unless forced
with a reason; either way the move is appended to the alias audit log with
who made it and why. Rollback moves the alias back to where it pointed
before its last move.
"""

from __future__ import annotations

import getpass
import time
from typing import Any

from lockgate.errors import RegistryError, UsageError
from lockgate.model.versions import KINDS, check_name
from lockgate.ports.metadata import AliasEvent, AliasMove, VersionRecord
from lockgate.service.compose import Workspace
from lockgate.service.views import iso


def cli_actor() -> str:
    """`cli:<user>`: who acts from a shell."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def version_view(record: VersionRecord) -> dict[str, Any]:
    """A named version as JSON data."""
    return {
        "ref": record.label,
        "kind": record.kind,
        "name": record.name,
        "version": record.version,
        "uri": record.ref.uri,
        "sha256": record.ref.sha256,
        "type": record.ref.type_name,
        "size": record.ref.size,
        "created_at": iso(record.created_at),
        "run_id": record.run_id,
        "node": record.node_id,
        "aliases": list(record.aliases),
        "gated": record.gated,
        "metadata": dict(record.metadata),
    }


def alias_event_view(event: AliasEvent) -> dict[str, Any]:
    """An audit-log entry as JSON data."""
    return {
        "alias": event.alias,
        "action": event.action,
        "version": event.version,
        "previous_version": event.previous_version,
        "actor": event.actor,
        "run_id": event.run_id,
        "reason": event.reason,
        "forced": event.forced,
        "at": iso(event.at),
    }


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return kind


def list_versions(
    workspace: Workspace, kind: str, name: str | None = None, limit: int = 100
) -> list[VersionRecord]:
    """Versions of `kind` (of one name, or all names), newest first."""
    if name is not None:
        check_name(_kind(kind), name)
    return workspace.metadata.list_versions(_kind(kind), name, limit=limit)


def get_version(
    workspace: Workspace, kind: str, name: str, version: int | None = None
) -> VersionRecord:
    """One version (the latest when `version` is None).

    Raises:
        RegistryError: no such version.
    """
    found = workspace.metadata.resolve_version(_kind(kind), check_name(kind, name), version)
    if found is None:
        which = f"version {version}" if version is not None else "versions"
        raise RegistryError(
            f"{kind} {name!r} has no {which}; `lockgate {kind}s list` shows what exists"
        )
    return found


def promote(
    workspace: Workspace,
    name: str,
    version: int,
    alias: str,
    *,
    actor: str | None = None,
    reason: str | None = None,
    force: bool = False,
) -> int | None:
    """Point `alias` of model `name` at `version`; return the version it pointed at before.

    Raises:
        RegistryError: the version does not exist, or has no passing gate and
            `force` is not set.
        UsageError: `force` without a reason.
    """
    target = get_version(workspace, "model", name, version)
    if force and not reason:
        raise UsageError("--force needs --reason: the override is recorded in the audit log")
    if not target.gated and not force:
        where = f" (registered by run {target.run_id})" if target.run_id else ""
        raise RegistryError(
            f"model {name!r} version {version}{where} has no passing gate, so it cannot be "
            f"promoted to {alias!r}. Register it through lg.gate(...) in a pipeline, or override "
            "with --force --reason '...' (recorded)."
        )
    move = AliasMove(
        name=name,
        alias=alias,
        action="promote",
        actor=actor or cli_actor(),
        version=version,
        reason=reason,
        forced=force and not target.gated,
    )
    return workspace.metadata.move_alias(move, time.time())


def rollback(
    workspace: Workspace,
    name: str,
    alias: str,
    *,
    actor: str | None = None,
    reason: str | None = None,
) -> tuple[int, int]:
    """Move `alias` back to the version it pointed at before its last move.

    Returns:
        (the version it pointed at, the version it points at now).

    Raises:
        RegistryError: the alias was never moved, or has no earlier version.
    """
    history = workspace.metadata.alias_events("model", check_name("model", name), alias)
    if not history:
        raise RegistryError(f"model {name!r} has no alias {alias!r} to roll back")
    last = history[-1]
    if last.previous_version is None:
        raise RegistryError(
            f"alias {alias!r} of model {name!r} has pointed only at version {last.version}: "
            "there is no earlier version to roll back to"
        )
    move = AliasMove(
        name=name,
        alias=alias,
        action="rollback",
        actor=actor or cli_actor(),
        version=last.previous_version,
        reason=reason or f"rollback from version {last.version}",
    )
    workspace.metadata.move_alias(move, time.time())
    return last.version, last.previous_version
