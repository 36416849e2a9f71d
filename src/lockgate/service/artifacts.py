"""Artifact use cases: list, describe (with lineage), fetch verified bytes, verify them all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockgate.errors import ArtifactCorrupted, ArtifactNotFoundError
from lockgate.ports.metadata import ArtifactRecord
from lockgate.service.compose import Workspace
from lockgate.service.views import artifact_view


def find_artifact(workspace: Workspace, key: str) -> ArtifactRecord:
    """The recorded artifact for a URI, `sha256:<hex>` or bare hex.

    Raises:
        InvalidArtifactKey: the key is not an artifact id (checked before any I/O).
        ArtifactNotFoundError: no such artifact is recorded.
    """
    from lockgate.stores.artifacts.keys import parse_artifact_id

    sha256 = parse_artifact_id(key)
    record = workspace.metadata.get_artifact(sha256)
    if record is None:
        raise ArtifactNotFoundError(
            f"no artifact sha256:{sha256} is recorded in this installation; "
            "`lockgate artifacts list` shows what is."
        )
    return record


def describe_artifact(workspace: Workspace, key: str) -> dict[str, Any]:
    """An artifact's metadata plus the task runs that produced and consumed it."""
    record = find_artifact(workspace, key)
    view = artifact_view(record)
    edges = workspace.metadata.lineage(record.ref.sha256)
    view["produced_by"] = [
        {"run_id": e.run_id, "node": e.node_id, "map_index": e.map_index}
        for e in edges
        if e.direction == "produced"
    ]
    view["consumed_by"] = [
        {"run_id": e.run_id, "node": e.node_id, "map_index": e.map_index}
        for e in edges
        if e.direction == "consumed"
    ]
    return view


def artifact_bytes(workspace: Workspace, key: str) -> tuple[ArtifactRecord, bytes]:
    """The artifact's serialized bytes, verified against its hash (never deserialized)."""
    record = find_artifact(workspace, key)
    return record, workspace.artifacts.read_bytes(record.ref)


@dataclass(frozen=True, slots=True)
class Problem:
    """One recorded artifact that cannot be read back as it was written."""

    uri: str
    kind: str  # "corrupted" or "missing"
    detail: str
    produced_by: tuple[str, ...]  # "run-id node[i]"


@dataclass(frozen=True, slots=True)
class Verification:
    """What `verify_artifacts` found."""

    checked: int
    problems: tuple[Problem, ...]
    unrecorded: int  # blobs no record names (a crashed attempt's, or another installation's)

    @property
    def ok(self) -> bool:
        """True when every recorded artifact hashed to its name."""
        return not self.problems


def verify_artifacts(
    workspace: Workspace, *, on_progress: Callable[[int, int], None] | None = None
) -> Verification:
    """Re-hash every recorded artifact (blobs in the store, inline bytes in the database).

    Args:
        workspace: the installation to check.
        on_progress: called with (done, total) after each artifact.
    """
    store = workspace.artifacts
    records = workspace.metadata.list_artifacts(limit=2**62)
    problems = []
    for done, record in enumerate(records, 1):
        ref = record.ref
        try:
            if record.stored == "inline":
                # Listings leave the bytes out; the full record carries them.
                full = workspace.metadata.get_artifact(ref.sha256)
                store.read_bytes(full.ref if full is not None else ref)  # checks the hash
            else:
                store.verify(ref.sha256)
        except (ArtifactCorrupted, ArtifactNotFoundError) as exc:
            kind = "missing" if isinstance(exc, ArtifactNotFoundError) else "corrupted"
            producers = tuple(
                f"{e.run_id} {e.node_id}" + (f"[{e.map_index}]" if e.map_index is not None else "")
                for e in workspace.metadata.lineage(ref.sha256)
                if e.direction == "produced"
            )
            problems.append(Problem(ref.uri, kind, str(exc), producers))
        if on_progress is not None:
            on_progress(done, len(records))
    recorded = {r.ref.sha256 for r in records}
    unrecorded = sum(1 for sha256 in store.blobs() if sha256 not in recorded)
    return Verification(len(records), tuple(problems), unrecorded)
