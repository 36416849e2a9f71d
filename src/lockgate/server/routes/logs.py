"""Captured task output: whole (plain text), or followed as server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse

from lockgate.errors import NodeNotFoundError
from lockgate.server.problems import ERRORS
from lockgate.server.routes import State
from lockgate.server.schemas import MAX_INT
from lockgate.service.compose import Workspace
from lockgate.service.logs import attempt_logs

router = APIRouter(prefix="/runs", tags=["logs"], responses=ERRORS)

#: How often a follow looks for new output, and how long it stays silent at most
#: (a comment line then keeps proxies from closing the stream and notices a gone client).
POLL_S = 0.3
KEEPALIVE_S = 15.0

Node = Annotated[str | None, Query(max_length=200, description="a node id, or node[i]")]
Number = Annotated[int | None, Query(ge=1, le=MAX_INT, description="one attempt number")]


@router.get(
    "/{run_id}/logs",
    response_model=None,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def logs(run_id: str, state: State, node: Node = None, attempt: Number = None) -> PlainTextResponse:
    """What the run's attempts printed so far: each behind a `=== node attempt N ===` line,
    or one attempt's bare output when both `node` and `attempt` are given."""
    found = attempt_logs(state.workspace, run_id, node, attempt)
    if node is not None and attempt is not None and len(found) == 1:
        return PlainTextResponse(found[0].read())
    parts = [f"=== {log.label} attempt {log.attempt} ===\n{log.read()}" for log in found]
    return PlainTextResponse("".join(p if p.endswith("\n") else p + "\n" for p in parts))


SSE_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["log", "end", "error"]},
        "data": {
            "type": "string",
            "description": "JSON: {node, attempt, text}, {status}, or {error, detail}",
        },
    },
    "required": ["event", "data"],
}


@router.get(
    "/{run_id}/logs/stream",
    response_model=None,
    # The schema of one server-sent event, as clients (and schemathesis) parse it.
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}},
)
def follow_logs(
    run_id: str, state: State, node: Node = None, attempt: Number = None
) -> StreamingResponse:
    """Follow the run's output as server-sent events until the run ends.

    Each `log` event's data is JSON `{"node", "attempt", "text"}`; a last
    `end` event carries `{"status"}` of the ended run. A node the run never
    had is a 404 if the run has ended, else a last `error` event
    (`{"error": "node_not_found", "detail"}`) once it ends without that node.
    """
    run = state.workspace.metadata.get_run(run_id)  # 404 now, not inside the stream
    if run.status.terminal:
        attempt_logs(state.workspace, run_id, node, attempt)  # an unknown node: 404 now
    return StreamingResponse(
        _events(state.workspace, run_id, node, attempt),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    workspace: Workspace, run_id: str, node: str | None, attempt: int | None
) -> AsyncIterator[str]:
    # Reads run in the thread pool, waits on the event loop: a follower holds
    # one of the server's few API threads only while it reads, never while idle.
    read: dict[tuple[str, int], int] = {}
    quiet_since = time.monotonic()
    while True:
        events, ended = await run_in_threadpool(_poll, workspace, run_id, node, attempt, read)
        for event in events:
            yield event
            quiet_since = time.monotonic()
        if ended:
            return
        if time.monotonic() - quiet_since > KEEPALIVE_S:
            yield ": keepalive\n\n"
            quiet_since = time.monotonic()
        await anyio.sleep(POLL_S)


def _poll(
    workspace: Workspace,
    run_id: str,
    node: str | None,
    attempt: int | None,
    read: dict[tuple[str, int], int],
) -> tuple[list[str], bool]:
    """The events for output new since `read` (updated), and whether the stream ends."""
    run = workspace.metadata.get_run(run_id)
    try:
        found = attempt_logs(workspace, run_id, node, attempt)
    except NodeNotFoundError as exc:
        if run.status.terminal:
            return [_event("error", {"error": "node_not_found", "detail": str(exc)})], True
        found = []  # the node has not started yet
    events = []
    for log in found:
        key = (log.label, log.attempt)
        chunk = log.read_from(read.get(key, 0))
        if chunk:
            read[key] = read.get(key, 0) + len(chunk)
            text = chunk.decode("utf-8", errors="replace")
            events.append(_event("log", {"node": log.label, "attempt": log.attempt, "text": text}))
    if run.status.terminal:
        events.append(_event("end", {"status": run.status.value}))
    return events, run.status.terminal


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n"
