"""Artifacts (metadata and verified bytes) and lineage.

An artifact is named by its content hash (`sha256:<hex>`, a bare digest or
its `lockgate://` URI) or by a registered version (`model:NAME@3`), never by
a path. Downloads are the stored serialized bytes, verified against the
hash and sent as an attachment: the server never deserializes them, so an
untrusted pickle is never loaded here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from lockgate.errors import ArtifactNotFoundError
from lockgate.model.versions import KINDS, parse_version_ref
from lockgate.server.problems import ERRORS
from lockgate.server.routes import State
from lockgate.server.schemas import Artifact, Lineage
from lockgate.service.artifacts import artifact_bytes, describe_artifact
from lockgate.service.compose import Workspace
from lockgate.service.lineage import resolve_artifact, walk
from lockgate.service.views import artifact_view

router = APIRouter(tags=["artifacts"], responses=ERRORS)

#: Content type and file extension of each serializer's bytes.
MEDIA = {
    "json": ("application/json", "json"),
    "bytes": ("application/octet-stream", "bin"),
    "npy": ("application/x-npy", "npy"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "pickle": ("application/x-python-pickle", "pkl"),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@router.get("/artifacts", response_model=list[Artifact])
def list_artifacts(state: State, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
    """Recorded artifacts, newest first (metadata only)."""
    return [artifact_view(r) for r in state.workspace.metadata.list_artifacts(limit=limit)]


@router.get("/artifacts/{key}", response_model=Artifact)
def get_artifact(key: str, state: State) -> Any:
    """An artifact's metadata and the task runs that produced and consumed it."""
    return describe_artifact(state.workspace, _resolve(state.workspace, key))


@router.get(
    "/artifacts/{key}/content",
    response_model=None,
    responses={
        200: {
            "description": "the serialized bytes (the content type follows the serializer)",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media, _ in MEDIA.values()
            },
        }
    },
)
def download(key: str, state: State) -> Response:
    """The artifact's serialized bytes as an attachment, verified against its hash."""
    sha256 = _resolve(state.workspace, key)
    record, data = artifact_bytes(state.workspace, sha256)
    media, extension = MEDIA.get(record.ref.serializer, ("application/octet-stream", "bin"))
    stem = _UNSAFE.sub("-", key) if ":" in key and "@" in key else sha256[:16]
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="{stem}.{extension}"',
            "X-Content-Type-Options": "nosniff",
            "X-Lockgate-Sha256": sha256,
        },
    )


@router.get("/lineage/{key}", response_model=Lineage)
def lineage(
    key: str,
    state: State,
    direction: Annotated[str, Query(pattern="^(upstream|downstream)$")] = "upstream",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Any:
    """What an artifact (or registered version) was made from, or what was made from it."""
    sha256 = _resolve(state.workspace, key)
    graph = walk(state.workspace, sha256, downstream=direction == "downstream", limit=limit)
    return graph.to_dict()


def _resolve(workspace: Workspace, key: str) -> str:
    """The sha256 `key` names: a content hash, or a registered `kind:name@version`."""
    if key.split(":", 1)[0] in KINDS:
        ref = parse_version_ref(key)
        if workspace.metadata.resolve_version(ref.kind, ref.name, ref.version) is None:
            raise ArtifactNotFoundError(
                f"{key} is not registered; `lockgate {ref.kind}s list` shows what is"
            )
    return resolve_artifact(workspace, key)
