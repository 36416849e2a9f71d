"""The web UI served by `lockgate server` at `/` (being built: issue 6)."""

from __future__ import annotations

from fastapi import FastAPI

from lockgate.server.state import ServerState


def mount_ui(app: FastAPI, state: ServerState) -> None:
    """Add the UI's routes and static files to `app`."""
