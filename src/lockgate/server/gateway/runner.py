"""One `lockgate gateway` process: the route table, its background threads, and uvicorn.

Threads: uvicorn's event loop and its worker threads answer requests (model
calls run in the worker threads, never on the loop); `lockgate-routes` polls
route versions every `reload_interval` seconds and swaps in reloaded routes;
`lockgate-alerts` runs alert passes (when rules exist); `lockgate-samples`
scores and writes samples; `lockgate-mirror` answers mirror copies. On
SIGTERM uvicorn stops accepting, finishes requests in flight, then `stop`
answers queued mirror copies and writes queued samples.

A target that cannot be loaded keeps the route's previous version serving
and raises a `gateway_load_failed` alert: the gateway enqueues it (one per
route version and target) and runs an alert pass to send it; later passes
of any `lockgate server` (or this gateway, every `ALERT_INTERVAL` seconds)
retry a failed send.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI

from lockgate.ports.routes import RouteRecord, RouteTarget
from lockgate.server.daemon import check_bind
from lockgate.server.gateway.background import Mirror, SampleWriter, build_evaluators
from lockgate.server.gateway.metrics import GatewayMetrics
from lockgate.server.gateway.serving import load_answerer
from lockgate.server.gateway.table import RouteTable, Snapshot
from lockgate.server.state import is_loopback
from lockgate.service.alerts import Fact, enqueue_fact, run_alert_pass
from lockgate.service.compose import Workspace
from lockgate.service.gatewayconfig import GatewaySettings

log = logging.getLogger("lockgate.gateway")

#: Seconds between the gateway's own alert passes (retrying sends), while rules exist.
ALERT_INTERVAL = 30.0


class Gateway:
    """The gateway's state and threads; `serve` runs it until SIGTERM."""

    def __init__(
        self,
        workspace: Workspace,
        settings: GatewaySettings | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        allow_remote: bool | None = None,
    ) -> None:
        """Prepare a gateway over `workspace` (nothing runs until `start` or `serve`).

        `allow_remote` (`--allow-remote`; None: `[gateway] allow_remote`) is
        needed, with a live API token, to listen on a non-loopback `host`.

        Raises:
            ConfigError: a bad answerer or evaluator, or a non-loopback host without
                `allow_remote` or without tokens.
        """
        self.workspace = workspace
        self.settings = settings or workspace.project.gateway
        self.host = host or self.settings.host
        self.port = self.settings.port if port is None else port
        remote = self.settings.allow_remote if allow_remote is None else allow_remote
        check_bind(workspace, self.host, allow_remote=remote, section="gateway")
        if self.settings.open and not is_loopback(self.host):
            log.warning("[gateway] open = true is ignored: %s is not a loopback address", self.host)
        self.started_at = time.time()
        self.metrics = GatewayMetrics()
        self.writer = SampleWriter(
            workspace.metadata,
            self.metrics,
            build_evaluators(self.settings.evaluators),
            flush_interval=self.settings.flush_interval,
            flush_size=self.settings.flush_size,
            queue_size=self.settings.queue_size,
        )
        self.mirror = Mirror(self.writer, self.metrics, self.settings.queue_size)
        self.table = RouteTable(
            workspace, load_answerer(self.settings.answerer), self._load_failed, self._swapped
        )
        self.stopping = threading.Event()
        self._alerts_due = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="lockgate-routes", daemon=True)
        self._alerter = threading.Thread(target=self._alert, name="lockgate-alerts", daemon=True)

    def app(self) -> FastAPI:
        """The HTTP app (lockgate.server.gateway.app)."""
        from lockgate.server.gateway.app import create_app

        return create_app(self)

    def start(self) -> None:
        """Load every route, then start the background threads."""
        self.table.poll()
        self.writer.start()
        self.mirror.start()
        self._poller.start()
        if self.workspace.project.alerts:
            self._alerter.start()

    def stop(self) -> None:
        """Stop polling, answer queued mirror copies, write queued samples."""
        self.stopping.set()
        self._alerts_due.set()
        for thread in (self._poller, self._alerter):
            if thread.is_alive():
                thread.join(10)
        self.mirror.stop()
        self.writer.stop()

    def serve(self) -> None:
        """Serve on host:port until SIGINT/SIGTERM, then stop cleanly."""
        import uvicorn

        config = uvicorn.Config(
            self.app(),
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.start()
        try:
            uvicorn.Server(config).run()
        finally:
            self.stop()

    def health(self) -> dict[str, Any]:
        """What `GET /healthz` answers."""
        return {
            "status": "stopping" if self.stopping.is_set() else "ok",
            "routes": self.table.status(),
            "samples_written": self.writer.written,
            "samples_queued": self.writer.queue.qsize(),
            "mirror_queued": self.mirror.queue.qsize(),
            "uptime_s": round(time.time() - self.started_at, 3),
        }

    def _poll(self) -> None:
        while not self.stopping.wait(self.settings.reload_interval):
            try:
                self.table.poll()
            except Exception:  # the database is down: keep serving what is loaded
                log.exception("gateway: checking routes for changes failed")

    def _alert(self) -> None:
        # Its own thread: a slow webhook must not delay noticing route changes.
        rules = self.workspace.project.alerts
        while not self.stopping.is_set():
            self._alerts_due.wait(ALERT_INTERVAL)
            self._alerts_due.clear()
            if not self.stopping.is_set():
                run_alert_pass(self.workspace.metadata, rules)

    def _swapped(self, snapshot: Snapshot) -> None:
        route = snapshot.route
        self.metrics.serving(route.name, route.version, route.weights)

    def _load_failed(self, record: RouteRecord, target: RouteTarget, message: str) -> None:
        self.metrics.load_failures.labels(record.name, target.label).inc()
        rules = self.workspace.project.alerts
        if not rules:
            return
        fact = Fact(
            event="gateway_load_failed",
            subject=f"route-{record.name}@{record.version}-{target.label}",
            run_id=None,
            pipeline=None,
            summary=(
                f"gateway cannot load {target.label} for route {record.name} version "
                f"{record.version}; it keeps serving the previous version: {message}"
            ),
            details={
                "route": record.name,
                "route_version": record.version,
                "target": target.label,
                "error": message,
                "changed_by": record.updated_by,
            },
            at=time.time(),
        )
        try:
            enqueue_fact(self.workspace.metadata, rules, fact)
        except Exception:  # alerting must not take serving down
            log.exception("gateway: enqueueing the gateway_load_failed alert failed")
            return
        self._alerts_due.set()
