"""`lockgate server`: the scheduler loop, the run launcher and the HTTP API in one process.

The loop runs in a thread: every `poll_interval` it queues due schedule
ticks, fires data sensors and message triggers, then launches queued runs
(and takes over orphaned ones) up to `max_concurrent_runs`. uvicorn serves
the API in the main thread and owns SIGINT/SIGTERM; when it returns, the
server drains: no new launches, running runs get `drain_timeout` seconds,
and any still running are stopped and left resumable.

Several servers may share one PostgreSQL database: every step above is
safe to race (unique trigger keys, SKIP LOCKED claims, locked pool counts).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lockgate.errors import ConfigError, LockgateError
from lockgate.server.state import ServerState, is_loopback
from lockgate.service.alerts import alert_pass
from lockgate.service.catalog import Catalog, load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.launcher import Launcher, server_id
from lockgate.service.messages import message_sources
from lockgate.service.scheduler import SchedulerState, schedule_pass
from lockgate.service.sensors import sensor_pass

log = logging.getLogger("lockgate.server")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How one server listens and launches (from [server] in lockgate.toml and flags)."""

    host: str
    port: int
    poll_interval: float
    max_concurrent_runs: int
    drain_timeout: float
    executor: str | None
    workers: int | None
    allow_remote: bool = False


def options_for(workspace: Workspace, **overrides: object) -> ServeOptions:
    """[server] settings with command-line overrides (None means: keep the setting)."""
    server = workspace.project.server
    values = {
        "host": server.host,
        "port": server.port,
        "poll_interval": server.poll_interval,
        "max_concurrent_runs": server.max_concurrent_runs,
        "drain_timeout": server.drain_timeout,
        "executor": server.executor,
        "workers": server.workers,
        "allow_remote": server.allow_remote,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return ServeOptions(**values)  # type: ignore[arg-type]


def check_bind(
    workspace: Workspace, host: str, *, allow_remote: bool = False, section: str = "server"
) -> None:
    """Refuse to listen beyond loopback unless asked to explicitly and tokens exist.

    A non-loopback `host` needs both `allow_remote` (`--allow-remote`, or
    `allow_remote = true` in the config's `[section]`) and at least one live
    API token: the flag so that a typo in `host` never exposes a server, the
    token so that what is exposed is not open to all.

    Raises:
        ConfigError: a non-loopback host with either missing, saying what and how to fix it.
    """
    if is_loopback(host):
        return
    missing = []
    if not allow_remote:
        missing.append(
            f"the --allow-remote flag (or allow_remote = true under [{section}] in lockgate.toml)"
        )
    if not any(t.revoked_at is None for t in workspace.metadata.list_tokens()):
        missing.append(
            "an API token: none exists yet (create one with "
            "`lockgate token create NAME --scope read|run|admin`)"
        )
    if missing:
        raise ConfigError(
            f"refusing to listen on {host}: it is reachable from other machines, which "
            f"needs both --allow-remote and at least one API token; missing: "
            f"{'; and '.join(missing)}. Or bind to 127.0.0.1 (the default)"
        )


class Server:
    """One `lockgate server` process."""

    def __init__(
        self,
        workspace: Workspace,
        options: ServeOptions,
        *,
        catalog: Catalog | None = None,
        on_ready: Callable[[ServerState], None] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        """Load the project's pipelines and prepare (nothing runs until `serve`).

        Args:
            workspace: the stores (and lockgate.toml) to serve.
            options: how to listen and launch.
            catalog: the pipelines (default: loaded from the project).
            on_ready: called once the loop runs, before the API listens.
            clock: what time the scheduler thinks it is (tests speed it up).

        Raises:
            ConfigError: no lockgate.toml, no pipelines, or an unsafe bind.
        """
        self.workspace = workspace
        self.options = options
        catalog = catalog or load_catalog(workspace.project)
        name = server_id()
        launcher = Launcher(
            workspace,
            claimer=name,
            max_concurrent=options.max_concurrent_runs,
            limits=catalog.limits(),
            executor=options.executor,
            workers=options.workers,
        )
        self.state = ServerState(
            workspace,
            catalog,
            name,
            launcher,
            host=options.host,
            poll_interval=options.poll_interval,
        )
        self.scheduler = SchedulerState()
        self.wake = self.state.wake
        self.sources = message_sources(workspace, catalog, name, self.wake.set)
        self.on_ready = on_ready
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        check_bind(workspace, options.host, allow_remote=options.allow_remote)

    def loop_once(self, now: dt.datetime | None = None) -> None:
        """One pass: schedules, sensors, messages, launches, then alerts."""
        state = self.state
        now = now or self.clock()
        steps: list[tuple[str, Callable[[], object]]] = [
            (
                "schedules",
                lambda: schedule_pass(self.workspace, state.catalog, now, self.scheduler),
            ),
            ("sensors", lambda: sensor_pass(self.workspace, state.catalog)),
        ]
        if not state.stopping.is_set():
            steps.append(("launcher", state.launcher.launch_pass))
        rules = self.workspace.project.alerts
        if rules:  # last: a slow receiver must not delay launches
            steps.append(("alerts", lambda: alert_pass(self.workspace.metadata, rules)))
        for what, step in steps:
            if state.stopping.is_set() and what != "launcher":
                break
            try:
                step()
            except LockgateError as exc:
                log.error("%s: %s", what, exc)
            except Exception:  # a bug in one step must not stop the server
                log.exception("%s failed", what)
        state.passes += 1
        state.last_pass = time.time()

    def _loop(self) -> None:
        while not self.state.stopping.is_set():
            started = time.monotonic()
            self.wake.clear()
            self.loop_once()
            rest = self.options.poll_interval - (time.monotonic() - started)
            # A new message or API trigger sets `wake`: its run launches at once.
            self.wake.wait(max(0.0, rest))

    def serve(self) -> list[str]:
        """Run until SIGINT/SIGTERM, then drain; return runs left resumable."""
        import uvicorn

        from lockgate.server.api import create_app

        app = create_app(self.state)
        config = uvicorn.Config(
            app,
            host=self.options.host,
            port=self.options.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        http = uvicorn.Server(config)
        self._own_signals()
        self.state.launcher.warm_up()
        loop = threading.Thread(target=self._loop, name="lockgate-scheduler", daemon=True)
        loop.start()
        for source in self.sources:
            source.start()
        if self.on_ready is not None:
            self.on_ready(self.state)
        try:
            http.run()
        finally:
            left = self.stop(loop)
        return left

    def _own_signals(self) -> None:
        """SIGINT/SIGTERM stop the server gracefully; a second one cuts the drain short.

        uvicorn installs its own handlers while it serves, restores these
        afterwards and re-raises the signal it caught: into these handlers
        rather than the default one, which would kill the process mid-drain.
        """
        if threading.current_thread() is not threading.main_thread():
            return

        def handle(signum: int, _frame: object) -> None:
            if self.state.stopping.is_set():
                log.warning("second signal %d: stopping running runs now", signum)
                self.state.launcher.hurry.set()
            self.state.stopping.set()
            self.wake.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def stop(self, loop: threading.Thread | None = None) -> list[str]:
        """Stop the loop and drain the launcher; return runs left resumable."""
        for source in self.sources:  # no new runs from messages while draining
            source.close()
        self.state.stopping.set()
        self.wake.set()
        if loop is not None:
            # A pass may be launching a run right now: let it finish, so the
            # drain below knows every driver this server started.
            loop.join(timeout=60)
        log.info("draining: waiting up to %gs for running runs", self.options.drain_timeout)
        left = self.state.launcher.drain(self.options.drain_timeout)
        if left:
            log.warning("left resumable (the next server resumes them): %s", ", ".join(left))
        return left
