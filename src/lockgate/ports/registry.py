"""Registry records the metadata store reads and writes: named versions (and those a run
pinned), gate checks, model registrations, alias moves and their audit trail, approvals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.ports.artifacts import ArtifactRef


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


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One version of a named dataset, model or prompt.

    Attributes:
        metadata: for models, {"scores": ...} as registered.
        gated: the version was registered with scores that passed a gate.
        aliases: registry aliases pointing at this version.
    """

    kind: str
    name: str
    version: int
    ref: ArtifactRef
    created_at: float
    run_id: str | None = None
    node_id: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    gated: bool | None = None
    aliases: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """`kind:name@version`."""
        return f"{self.kind}:{self.name}@{self.version}"


@dataclass(frozen=True, slots=True)
class ResolvedVersion:
    """A named version a run consumes, resolved when the run was created."""

    kind: str
    name: str
    requested: int | None  # None: the latest at run creation
    version: int
    ref: ArtifactRef
