"""Message triggers: a run per message of a Redis Stream (see `lg.on_message`).

Placeholder interface; the Redis Streams consumer is being written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lockgate.service.catalog import Catalog
from lockgate.service.compose import Workspace


class MessageSource(Protocol):
    """Consumes one stream for the pipelines that trigger on it."""

    name: str

    def start(self) -> None:
        """Start consuming (a daemon thread)."""
        ...

    def close(self) -> None:
        """Stop consuming; unacknowledged messages stay pending for another server."""
        ...


def message_sources(
    workspace: Workspace, catalog: Catalog, consumer: str, wake: Callable[[], None]
) -> list[MessageSource]:
    """A source per (Redis URL, stream, group) the catalog's pipelines trigger on."""
    return []
