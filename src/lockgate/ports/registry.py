"""Registry records the metadata store reads and writes: gate checks, model
registrations, alias moves and their audit trail, approvals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class GateDecision:
    """One check of one gate, as decided."""

    task_run_id: int
    metric: str
    op: str
    expression: str
    passed: bool
    reason: str
    value: float | None = None
    threshold: float | None = None
    baseline_alias: str | None = None
    baseline_version: int | None = None
    baseline_value: float | None = None
    node_id: str | None = None  # filled in when read back
    at: float | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    """Record the artifact `sha256` as a version of model `name` (once per content)."""

    task_run_id: int
    name: str
    sha256: str
    metadata: Mapping[str, Any]
    gated: bool


@dataclass(frozen=True, slots=True)
class AliasMove:
    """Point alias `alias` of model `name` at `version` (or at the version of `sha256`).

    Attributes:
        action: "promote" or "rollback".
        actor: who moved it: "cli:<user>", "api:<token name>", or "run:<run id>".
        forced: moved although the version has no passing gate (`--force`).
    """

    name: str
    alias: str
    action: str
    actor: str
    version: int | None = None
    sha256: str | None = None
    reason: str | None = None
    forced: bool = False
    run_id: str | None = None
    kind: str = "model"


@dataclass(frozen=True, slots=True)
class AliasEvent:
    """One entry of the alias audit log."""

    id: int
    kind: str
    name: str
    alias: str
    version: int
    previous_version: int | None
    action: str
    actor: str
    reason: str | None
    forced: bool
    at: float
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    """A decision on an approval node."""

    run_id: str
    task_run_id: int
    node_id: str
    decision: str  # "approved" | "rejected"
    by: str
    reason: str | None
    at: float
