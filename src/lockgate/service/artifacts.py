"""Artifact use cases: list, describe (with lineage) and fetch verified bytes."""

from __future__ import annotations

from typing import Any

from lockgate.errors import ArtifactNotFoundError
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
