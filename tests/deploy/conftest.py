"""A real gateway on 127.0.0.1 (uvicorn in a thread) over a real SQLite workspace.

`gateway_for(toml)` starts one with the given lockgate.toml text (its
`[gateway]` and `[[alerts]]`), polls route changes every 0.05 s and flushes
samples every 0.05 s, and stops it (writing queued samples) at teardown.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from lockgate.ports.routes import RouteRecord, RouteTarget
from lockgate.server.gateway.runner import Gateway
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.project import parse

FAST = "reload_interval = 0.05\nflush_interval = 0.05\n"


@dataclass
class Live:
    """A running gateway: its URL, its object, its workspace, and an HTTP client."""

    url: str
    gateway: Gateway
    workspace: Workspace
    client: httpx.Client

    def predict(self, route: str, body: dict, **kwargs) -> httpx.Response:
        return self.client.post(f"/v1/routes/{route}/predict", json=body, **kwargs)

    def set_route(
        self, name: str, targets: list[tuple[str, int, float]], mirror=None
    ) -> RouteRecord:
        return self.workspace.metadata.change_route(
            name,
            targets=[RouteTarget(m, v, w) for m, v, w in targets],
            mirror=None if mirror is None else RouteTarget(mirror[0], mirror[1]),
            action="set",
            by="test",
            at=time.time(),
        )

    def flushed(self, route: str, count: int, timeout: float = 10.0) -> list:
        """The route's samples once at least `count` are written."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.workspace.metadata.route_samples(route, since=0.0)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)


@pytest.fixture
def gateway_for(tmp_path: Path) -> Iterator[Callable[..., Live]]:
    started: list[tuple[uvicorn.Server, threading.Thread, Live]] = []

    def start(toml: str = "", *, open_: bool = True) -> Live:
        config = tmp_path / "lockgate.toml"
        gateway_table = f"[gateway]\nopen = {str(open_).lower()}\n{FAST}"
        config.write_text(gateway_table + toml)
        project = parse(config)
        workspace = Workspace(Settings.from_env({}, home=tmp_path / "home"), project=project)
        gateway = Gateway(workspace)
        gateway.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Without it each loopback request waits ~40 ms on Nagle + delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(gateway.app(), log_level="warning", access_log=False, lifespan="off")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.01)
        url = f"http://127.0.0.1:{port}"
        live = Live(url, gateway, workspace, httpx.Client(base_url=url, timeout=30))
        started.append((server, thread, live))
        return live

    yield start
    for server, thread, live in started:
        live.client.close()
        server.should_exit = True
        thread.join(10)
        live.gateway.stop()
        live.workspace.close()
