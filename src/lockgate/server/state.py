"""What the scheduler loop and the HTTP API of one server share."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lockgate.service.catalog import Catalog
from lockgate.service.compose import Workspace
from lockgate.service.launcher import Launcher


@dataclass
class ServerState:
    """One server's workspace, pipelines, launcher and liveness."""

    workspace: Workspace
    catalog: Catalog
    server_id: str
    launcher: Launcher
    started_at: float = field(default_factory=time.time)
    last_pass: float | None = None
    passes: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    host: str = "127.0.0.1"
    poll_interval: float = 1.0

    @property
    def reads_open(self) -> bool:
        """Whether GETs need no token: `[server] open_reads` and bound to loopback."""
        return self.workspace.project.server.open_reads and is_loopback(self.host)

    def health(self) -> dict[str, Any]:
        """What `GET /healthz` answers."""
        return {
            "status": "draining" if self.stopping.is_set() else "ok",
            "server": self.server_id,
            "pipelines": sorted(e.pipeline.name for e in self.catalog),
            "driving": sorted(self.launcher.children),
            "launched": self.launcher.launched,
            "passes": self.passes,
            "last_pass_age_s": (
                None if self.last_pass is None else round(time.time() - self.last_pass, 3)
            ),
            "uptime_s": round(time.time() - self.started_at, 3),
        }


#: Headers a reverse proxy adds; their presence means the request came from elsewhere.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def via_proxy(headers: Mapping[str, str]) -> bool:
    """Whether a request was relayed by a proxy (so its loopback peer says nothing about it).

    A reverse proxy on the same machine connects from 127.0.0.1: without this
    check, `open_reads` and `[gateway] open` would open the API to whoever
    reaches the proxy.
    """
    return any(name in headers for name in PROXY_HEADERS)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
