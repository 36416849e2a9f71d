"""The Ray executor: each task invocation becomes one Ray task on a local or remote cluster.

Ray places and runs the invocations; lockgate keeps everything else. Ray's
own retries are off (`max_retries=0`): a dead worker, a timeout or a cancel
comes back here as one `Finished` and the coordinator's retry policy, cache,
fencing and commits apply exactly as with the process executor, so the
metadata store records the same thing whichever executor ran the tasks.

Data does not pass through Ray or through this process: workers load inputs
from and write outputs to the artifact store themselves, and only refs come
back. That is why a cluster with nodes on other machines needs an artifact
store they all reach (`s3://...`); a local-disk store is refused up front
(`check_shared_store`).

Where the cluster comes from:
- `address=None`: a Ray instance started for this executor on this machine,
  listening on loopback only, without the dashboard; stopped by `close`.
- `"auto"`, `"host:port"` or `"ray://host:port"`: an existing cluster
  (`ray start --head`); `close` only disconnects.
- Ray already initialized in this process (a notebook, a test session): used
  as it is and left connected.

Ray reports neither when a task starts nor the pid that runs it without its
dashboard, so each worker tells a small actor (`Mailbox`) when user code
starts; the coordinator long-polls it together with the results. Timeouts
count from that start, not from submission, and `ray.cancel(force=True)`
kills the worker when one expires.

Invariants:
- At most one `Finished` per key; nothing for keys cancelled, finished or closed.
- Not thread-safe: one coordinator thread calls submit/poll/cancel/close.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lockgate.errors import ExecutorError, SharedStoreRequiredError
from lockgate.executors.channel import Job, TaskShipper
from lockgate.executors.ray_worker import Mailbox, run_job
from lockgate.ports.artifacts import ArtifactStore
from lockgate.ports.executor import ErrorInfo, ExecutorEvent, Finished, Invocation, Outcome, Started

#: Longest a mailbox long-poll waits for a start report before answering empty.
DRAIN_WAIT = 1.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def validate_address(address: str | None) -> str | None:
    """Check a Ray address: None (start a local cluster), `auto`, `host:port` or `ray://host:port`.

    Raises:
        ExecutorError: anything else, with the accepted forms.
    """
    if address is None or address == "auto":
        return address
    rest = address.removeprefix("ray://")
    host, colon, port = rest.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExecutorError(
            f"Ray address {address!r} is not one of: auto, HOST:PORT (the head node's GCS, "
            "e.g. 10.0.0.5:6379) or ray://HOST:PORT (Ray Client, e.g. ray://10.0.0.5:10001)"
        )
    return address


def _is_loopback(address: str | None) -> bool:
    if address is None:
        return True
    host = address.removeprefix("ray://").rpartition(":")[0]
    return host in _LOOPBACK


def _local_disk(root: str) -> bool:
    scheme, separator, _ = root.partition("://")
    return not separator or scheme == "file"


def check_shared_store(
    artifact_root: str, *, address: str | None, client: bool, nodes: list[str], here: set[str]
) -> None:
    """Refuse an artifact store that some of the cluster's workers cannot reach.

    Args:
        artifact_root: the store's root (a path or URL).
        address: the cluster's address, for the message (None: started here).
        client: connected through Ray Client (`ray://`): the driver is not a node.
        nodes: IP addresses of the cluster's live nodes.
        here: IP addresses of this machine as Ray sees it.

    Raises:
        SharedStoreRequiredError: a local-disk store with a node elsewhere (or
            through Ray Client), or a `memory://` store, which lives in one process.
    """
    if artifact_root.startswith("memory://"):
        raise SharedStoreRequiredError(
            f"the artifact store {artifact_root} lives inside this process; Ray workers are "
            "other processes and cannot reach it. Use a path or an s3:// URL as the artifact "
            "root (LOCKGATE_ARTIFACT_ROOT or [artifacts] root in lockgate.toml)"
        )
    if not _local_disk(artifact_root):
        return
    elsewhere = sorted({ip for ip in nodes if ip not in here})
    if not client and not elsewhere:
        return
    where = "is reached through Ray Client" if client else f"has nodes on {', '.join(elsewhere)}"
    raise SharedStoreRequiredError(
        f"the artifact store {artifact_root} is on this machine's disk, but the Ray cluster at "
        f"{address} {where}: workers there cannot read inputs from it or write outputs to it. "
        "Give every node the same store: set LOCKGATE_ARTIFACT_ROOT (or [artifacts] root in "
        "lockgate.toml) to an object store such as s3://bucket/lockgate "
        "(pip install 'lockgate[s3]'), or run without --ray-address to use this machine only"
    )


def import_ray(address: str | None) -> Any:
    """Import Ray, configured first so a cluster started here listens on loopback only.

    Raises:
        ExecutorError: Ray is not installed.
    """
    if _is_loopback(address) and "ray" not in sys.modules:
        # Ray's own switch for single-machine use: every Ray process then binds
        # 127.0.0.1 instead of the machine's network address (ShadowRay).
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "the ray executor needs Ray: pip install 'lockgate[ray]' (same version on every node)"
        ) from None
    return ray


def connect(ray: Any, address: str | None, num_cpus: int | None) -> bool:
    """Start or join a Ray cluster; True when this call did (and `close` should undo it).

    Raises:
        ExecutorError: no cluster answers at `address`.
    """
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    try:
        if address is None:
            ray.init(num_cpus=num_cpus, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        raise ExecutorError(
            f"cannot connect to the Ray cluster at {address!r}: {exc}. Start one with "
            "`ray start --head`, check the address (auto, HOST:PORT or ray://HOST:PORT), or "
            "leave --ray-address out to start a Ray instance on this machine for the run"
        ) from exc
    return True


@dataclass(eq=False, slots=True)
class _Job:
    invocation: Invocation
    ref: Any
    started_at: float | None = None
    deadline: float | None = None  # monotonic: force-cancel the Ray task


def _failed(key: str, started_at: float | None, error: ErrorInfo, **extra: Any) -> Finished:
    now = time.time()
    return Finished(Outcome(key, started_at or now, now, error=error, **extra))


def _cancelled(key: str, started_at: float | None) -> Finished:
    error = ErrorInfo("lockgate.Cancelled", "cancelled", retryable=False, user=False)
    return _failed(key, started_at, error)


class RayExecutor:
    """`Executor` that runs each invocation as a Ray task.

    `@lg.task(resources={"cpu": 2, "gpu": 1, "memory": "4GiB", "custom": 1})`
    becomes Ray's `num_cpus`, `num_gpus`, `memory` and custom resources (a
    task without `cpu` asks for one CPU). Ray schedules by them; it does not
    cap a task's memory the way the process executor does. A request no
    single node can meet fails at once instead of waiting forever.
    """

    name = "ray"

    def __init__(
        self,
        store_factory: Callable[[], ArtifactStore],
        *,
        artifact_root: str,
        address: str | None = None,
        logs_root: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        """Connect to (or start) the cluster and check that it can reach the artifact store.

        Args:
            store_factory: picklable callable returning the artifact store;
                each Ray worker calls it once.
            artifact_root: the store's root, to check every node can reach it.
            address: None (start Ray here), `auto`, `HOST:PORT` or `ray://HOST:PORT`.
            logs_root: where attempt logs go, on the node that runs the attempt.
            num_cpus: CPUs of a Ray instance started here (default: all).

        Raises:
            TypeError: `store_factory` cannot be pickled.
            ExecutorError: Ray is missing or the cluster is unreachable.
            SharedStoreRequiredError: some node cannot reach the artifact store.
        """
        address = validate_address(address)
        try:
            factory = pickle.dumps(store_factory)
        except Exception as exc:
            raise TypeError(
                f"store_factory {store_factory!r} cannot be pickled ({exc}); pass a module-level "
                "function or functools.partial(open_artifact_store, root)"
            ) from exc
        self._ray = ray = import_ray(address)
        self._owned = connect(ray, address, num_cpus)
        self._closed = False
        try:
            check_shared_store(
                artifact_root,
                address=address or "started here",
                client=ray.util.client.ray.is_connected(),
                nodes=[node["NodeManagerAddress"] for node in ray.nodes() if node["Alive"]],
                here={ray.util.get_node_ip_address(), "127.0.0.1"},
            )
            self._store_id = hashlib.sha256(factory).hexdigest()[:32]
            self._store_ref = ray.put(factory)
            self._remote = ray.remote(run_job)
            self._mailbox = ray.remote(Mailbox).options(num_cpus=0).remote()
        except BaseException:
            self.close()
            raise
        self._logs_root = logs_root
        self._shipper = TaskShipper()
        self._task_refs: dict[str, Any] = {}
        self._jobs: dict[str, _Job] = {}
        self._by_ref: dict[Any, _Job] = {}
        self._events: list[ExecutorEvent] = []
        self._drain: Any = None
        self._offers = _node_offers(ray)

    # --- the port ---------------------------------------------------------------

    def submit(self, invocation: Invocation) -> None:
        """Hand the invocation to Ray; its events arrive through `poll`.

        Raises:
            RuntimeError: the executor is closed.
            ValueError: an invocation with the same key is already running.
        """
        if self._closed:
            raise RuntimeError("this RayExecutor is closed; create a new one")
        if invocation.key in self._jobs:
            raise ValueError(f"invocation {invocation.key} is already queued or running")
        task = invocation.task
        try:
            options = self._options(invocation)
            task_id, data = self._shipper.payload(task)
            task_ref = self._task_refs.get(task_id)
            if task_ref is None:
                task_ref = self._task_refs[task_id] = self._ray.put(data)
            job = Job.of(invocation, task_id, sys_path=tuple(sys.path))
            ref = self._remote.options(**options).remote(
                job, [task_ref], self._store_id, [self._store_ref], self._logs_root, self._mailbox
            )
        except _Unschedulable as exc:
            error = ErrorInfo("lockgate.Unschedulable", str(exc), retryable=False, user=True)
            self._events.append(_failed(invocation.key, None, error))
            return
        except Exception as exc:
            error = ErrorInfo(
                f"{type(exc).__module__}.{type(exc).__qualname__}",
                f"node {invocation.label!r} (task {task.name!r}) cannot be sent to Ray: {exc}; "
                "a task and its arguments must pickle (cloudpickle for the function): no open "
                "connections, locks or files in them or in the globals the function uses",
                retryable=False,
                user=True,
            )
            self._events.append(_failed(invocation.key, None, error))
            return
        tracked = _Job(invocation, ref)
        self._jobs[invocation.key] = tracked
        self._by_ref[ref] = tracked

    def poll(self, timeout: float) -> list[ExecutorEvent]:
        """Wait up to `timeout` seconds; return the events that arrived, in order."""
        end = time.monotonic() + max(0.0, timeout)
        while not self._closed:
            self._fire_timers(time.monotonic())
            if self._events or not self._jobs:
                break
            if self._drain is None:
                self._drain = self._mailbox.drain.remote(DRAIN_WAIT)
            waiting = [*self._by_ref, self._drain]
            deadlines = [j.deadline for j in self._jobs.values() if j.deadline is not None]
            until = min([end, *deadlines]) - time.monotonic()
            ready, _ = self._ray.wait(waiting, num_returns=1, timeout=max(0.0, until))
            if ready:
                ready, _ = self._ray.wait(waiting, num_returns=len(waiting), timeout=0)
            for ref in ready:
                if ref is self._drain:
                    self._on_drain()
            for ref in ready:
                job = self._by_ref.get(ref)
                if job is not None:
                    self._on_result(job)
            if self._events or time.monotonic() >= end:
                break
        if not self._jobs and timeout > 0 and not self._events:
            time.sleep(min(timeout, 0.05))  # nothing to wait on; do not spin the caller
        events, self._events = self._events, []
        return events

    def cancel(self, key: str) -> None:
        """Stop an invocation, queued or running (its Ray worker is killed).

        One `Finished` with a `lockgate.Cancelled` error follows; unknown keys
        are ignored.
        """
        job = self._jobs.get(key)
        if job is None:
            return
        self._forget(job)
        self._ray.cancel(job.ref, force=True)
        self._events.append(_cancelled(key, job.started_at))

    def close(self) -> None:
        """Kill running invocations' workers and the mailbox; stop Ray if it was started here.

        Idempotent. Queued and running invocations are abandoned without events.
        """
        if self._closed:
            return
        self._closed = True
        ray = self._ray
        for job in list(getattr(self, "_jobs", {}).values()):
            self._forget(job)
            _quietly(ray.cancel, job.ref, force=True)
        if getattr(self, "_mailbox", None) is not None:
            _quietly(ray.kill, self._mailbox)
        if self._owned:
            ray.shutdown()

    # --- internals ----------------------------------------------------------------

    def _options(self, invocation: Invocation) -> dict[str, Any]:
        resources = invocation.task.spec.resources
        need: dict[str, float] = {"CPU": 1.0 if resources.cpu is None else resources.cpu}
        options: dict[str, Any] = {
            "num_cpus": need["CPU"],
            "max_retries": 0,
            "retry_exceptions": False,
            "name": f"lockgate:{invocation.pipeline}.{invocation.label}",
        }
        if resources.gpu:
            options["num_gpus"] = need["GPU"] = resources.gpu
        if resources.memory:
            options["memory"] = need["memory"] = resources.memory
        if resources.extra:
            options["resources"] = dict(resources.extra)
            need.update(resources.extra)
        self._check_feasible(invocation, need)
        return options

    def _check_feasible(self, invocation: Invocation, need: Mapping[str, float]) -> None:
        def fits(offer: Mapping[str, float]) -> bool:
            return all(v <= offer.get(k, 0.0) for k, v in need.items())

        if any(fits(offer) for offer in self._offers):
            return
        self._offers = _node_offers(self._ray)  # the cluster may have grown since we looked
        if any(fits(offer) for offer in self._offers):
            return
        most = {k: max((o.get(k, 0.0) for o in self._offers), default=0.0) for k in need}
        short = {k: v for k, v in need.items() if v > most[k]} or dict(need)
        asks = ", ".join(f"{v:g} {k}" for k, v in short.items())
        has = ", ".join(f"{most[k]:g} {k}" for k in short)
        raise _Unschedulable(
            f"node {invocation.label!r} asks for {asks} on one machine, but no node of the Ray "
            f"cluster has that much (the most any node has: {has}); lower resources= on the "
            "task or add a node that has them"
        )

    def _forget(self, job: _Job) -> None:
        self._jobs.pop(job.invocation.key, None)
        self._by_ref.pop(job.ref, None)

    def _on_drain(self) -> None:
        try:
            reports = self._ray.get(self._drain)
        except Exception:
            # The mailbox died (its node went away): start another; results
            # still arrive, only start times are late.
            reports = []
            self._mailbox = self._ray.remote(Mailbox).options(num_cpus=0).remote()
        self._drain = None
        for key, at in reports:
            job = self._jobs.get(key)
            if job is None or job.started_at is not None:
                continue
            job.started_at = at
            self._events.append(Started(key, at))
            if job.invocation.timeout is not None:
                elapsed = max(0.0, time.time() - at)
                job.deadline = time.monotonic() + job.invocation.timeout - elapsed

    def _on_result(self, job: _Job) -> None:
        self._forget(job)
        key = job.invocation.key
        try:
            outcome: Outcome = self._ray.get(job.ref)
        except Exception as exc:
            event = _failed(key, job.started_at, self._ray_failure(job.invocation, exc))
        else:
            event = Finished(outcome)
        if job.started_at is None:
            self._events.append(Started(key, event.outcome.started_at))
        self._events.append(event)

    def _ray_failure(self, invocation: Invocation, exc: Exception) -> ErrorInfo:
        errors = self._ray.exceptions
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, errors.OutOfMemoryError):
            message = f"Ray killed the worker because its node ran out of memory ({detail})"
        elif isinstance(exc, errors.RayTaskError):
            return ErrorInfo(
                "lockgate.WorkerError",
                f"the Ray worker failed around node {invocation.label!r}: {detail}; lockgate "
                "and the task's modules must be installed on every node",
                str(exc),
                retryable=False,
                user=False,
            )
        else:
            message = f"the Ray worker running it died ({type(exc).__name__}: {detail})"
        return ErrorInfo("lockgate.WorkerCrashed", message, retryable=True, user=False)

    def _fire_timers(self, now: float) -> None:
        for job in list(self._jobs.values()):
            if job.deadline is not None and now >= job.deadline:
                self._forget(job)
                self._ray.cancel(job.ref, force=True)
                seconds = job.invocation.timeout or 0.0
                error = ErrorInfo(
                    "lockgate.Timeout", f"timed out after {seconds:g} s", retryable=True, user=False
                )
                key = job.invocation.key
                self._events.append(_failed(key, job.started_at, error, timed_out=True))


def _node_offers(ray: Any) -> list[dict[str, float]]:
    """What each live node of the cluster has in all (CPU, GPU, memory, custom)."""
    return [dict(node["Resources"]) for node in ray.nodes() if node["Alive"]]


class _Unschedulable(Exception):
    """No node of the cluster could ever run this invocation."""


def _quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    with contextlib.suppress(Exception):  # best effort while closing
        fn(*args, **kwargs)
