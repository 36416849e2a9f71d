"""The routes one gateway serves: immutable snapshots, swapped whole on a route change.

A `Snapshot` is one route version with its targets loaded. Requests read the
current snapshot of their route (one dict lookup) and never wait on a load:
when a route changes, the poller loads the new version's targets first and
then swaps the snapshot in one assignment, so requests in flight finish on
the old targets and the next ones use the new ones. No request is dropped
or sees a half-loaded route.

If any target of the new version (a positive-weight target or the mirror)
cannot be loaded, the previous snapshot keeps serving, `on_failure` is told
(the gateway counts it and raises a `gateway_load_failed` alert), and the
load is retried after `RETRY_S` or when the route changes again. A route
seen for the first time is loaded by the first request that names it; with
no previous snapshot to fall back on, its failure is that request's 503.

Loaded targets are cached by label (`model:NAME@VERSION`) across routes and
versions; a label no snapshot uses any more is dropped from the cache.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lockgate.errors import LockgateError, ModelLoadError
from lockgate.model.routing import pick
from lockgate.ports.routes import RouteRecord, RouteTarget
from lockgate.server.gateway.serving import Answerer, Served, load_target
from lockgate.service.compose import Workspace

log = logging.getLogger("lockgate.gateway")

#: Seconds before a route version whose targets failed to load is tried again.
RETRY_S = 30.0

#: Told (route, the target that failed, why) when a route version cannot be loaded.
FailureHandler = Callable[[RouteRecord, RouteTarget, str], None]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One route version with its serving targets (and mirror) loaded.

    Attributes:
        served: the loaded targets, aligned with `route.targets` (None: weight 0, not loaded).
    """

    route: RouteRecord
    served: tuple[Served | None, ...]
    mirror: Served | None

    def pick(self, key: str) -> Served:
        """The target that serves `key` (sticky while the route's weights are unchanged)."""
        index = pick(self.route.name, key, [t.weight for t in self.route.targets])
        found = self.served[index]
        assert found is not None  # positive weights are always loaded
        return found


class RouteTable:
    """The current snapshot of every route this gateway has seen."""

    def __init__(
        self,
        workspace: Workspace,
        answerer: Answerer | None,
        on_failure: FailureHandler,
        on_swap: Callable[[Snapshot], None] | None = None,
    ) -> None:
        """Serve routes of `workspace`'s store; prompts through `answerer`."""
        self.workspace = workspace
        self.answerer = answerer
        self.on_failure = on_failure
        self.on_swap = on_swap
        self._snapshots: dict[str, Snapshot] = {}
        self._cache: dict[str, Served] = {}
        self._failed: dict[str, tuple[int, float, str]] = {}
        self._loading = threading.Lock()

    def get(self, name: str) -> Snapshot:
        """The snapshot serving route `name`, loading it on first use.

        Raises:
            RouteNotFoundError: no such route.
            ModelLoadError: the route was never loaded here and its targets cannot be.
        """
        found = self._snapshots.get(name)
        if found is not None:
            return found
        with self._loading:
            found = self._snapshots.get(name)
            if found is not None:
                return found
            record = self.workspace.metadata.get_route(name)
            failed = self._failed.get(name)
            if failed and failed[0] == record.version and time.time() - failed[1] < RETRY_S:
                raise ModelLoadError(
                    f"route {name!r} version {record.version} cannot be served: {failed[2]}"
                )
            self._install(record, raise_on_failure=True)
            return self._snapshots[name]

    def knows(self, name: str) -> bool:
        """Whether route `name` is being served here."""
        return name in self._snapshots

    def poll(self) -> None:
        """Load and swap in every route whose version changed (one query when none did)."""
        now = time.time()
        for record in self.workspace.metadata.list_routes():
            current = self._snapshots.get(record.name)
            if current is not None and current.route.version == record.version:
                continue
            failed = self._failed.get(record.name)
            if failed and failed[0] == record.version and now - failed[1] < RETRY_S:
                continue
            with self._loading:
                self._install(record, raise_on_failure=False)

    def status(self) -> dict[str, Any]:
        """Per route: the version served, its targets, and the version that failed to load."""
        out: dict[str, Any] = {}
        for name, snap in sorted(self._snapshots.items()):
            out[name] = {
                "version": snap.route.version,
                "targets": snap.route.weights,
                "mirror": None if snap.route.mirror is None else snap.route.mirror.label,
            }
            failed = self._failed.get(name)
            if failed is not None:
                out[name]["failed"] = {"version": failed[0], "error": failed[2]}
        return out

    def _install(self, record: RouteRecord, *, raise_on_failure: bool) -> None:
        wanted = [t for t in record.targets if t.weight > 0]
        if record.mirror is not None:
            wanted.append(record.mirror)
        loaded: dict[str, Served] = {}
        for target in wanted:
            try:
                loaded[target.label] = self._cache.get(target.label) or load_target(
                    self.workspace, target, self.answerer
                )
            except LockgateError as exc:
                self._failure(record, target, str(exc))
                if raise_on_failure:
                    raise ModelLoadError(
                        f"route {record.name!r} version {record.version} cannot be served: {exc}"
                    ) from exc
                return
            except Exception as exc:  # user code ran while unpickling: keep serving
                message = f"{target.label}: loading raised {type(exc).__name__}: {exc}"
                self._failure(record, target, message)
                if raise_on_failure:
                    raise ModelLoadError(
                        f"route {record.name!r} version {record.version} cannot be served: "
                        f"{message}"
                    ) from exc
                return
        snapshot = Snapshot(
            record,
            tuple(loaded.get(t.label) if t.weight > 0 else None for t in record.targets),
            None if record.mirror is None else loaded[record.mirror.label],
        )
        self._cache.update(loaded)
        self._snapshots[record.name] = snapshot  # the swap: one assignment
        self._failed.pop(record.name, None)
        in_use = {s.label for snap in self._snapshots.values() for s in _served(snap)}
        for label in set(self._cache) - in_use:
            del self._cache[label]
        log.info("route %s version %d serving %s", record.name, record.version, record.weights)
        if self.on_swap is not None:
            self.on_swap(snapshot)

    def _failure(self, record: RouteRecord, target: RouteTarget, message: str) -> None:
        self._failed[record.name] = (record.version, time.time(), message)
        previous = self._snapshots.get(record.name)
        log.error(
            "route %s version %d: cannot load %s (%s); %s",
            record.name,
            record.version,
            target.label,
            message,
            f"still serving version {previous.route.version}" if previous else "nothing to serve",
        )
        self.on_failure(record, target, message)


def _served(snapshot: Snapshot) -> list[Served]:
    found = [s for s in snapshot.served if s is not None]
    return [*found, snapshot.mirror] if snapshot.mirror is not None else found
