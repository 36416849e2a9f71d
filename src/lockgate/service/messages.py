"""Message triggers: a run per message of a Redis Stream (see `lg.on_message`).

One `StreamSource` (a daemon thread) serves each (Redis URL, stream, consumer
group) the project's pipelines trigger on; every pipeline on it gets its own
run per message. Servers share a stream through the consumer group: Redis
hands each message to one of them (XREADGROUP), so N servers split the load.

Invariants:

- A message is acknowledged (XACK) only after its runs are recorded. A server
  that dies in between leaves it pending; after `min_idle` seconds any server
  takes it over (XAUTOCLAIM), so it is never lost.
- It is never run twice: each run's trigger key is `message:<stream>:<id>`,
  and the database lets one run exist per (pipeline, key), so a re-delivered
  message gets the existing run back and is then acknowledged.
- A message that cannot become a run (a bad or missing parameter) does not
  come back forever: the reason is logged, a copy goes to the dead-letter
  stream `<stream>:dead`, and it is acknowledged. A failure that may pass
  (the database is busy or down) leaves it pending, to be retried.
- A new group starts at `$`: messages added before the first server started
  are not replayed (as a new schedule does not replay its past). Once the
  group exists, messages added while every server is down wait for the next.
- Redis going away is logged and retried with backoff; it never stops the server.

`redis` is imported only when a pipeline uses `on_message` (the `[redis]` extra).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from lockgate import failpoints
from lockgate.errors import (
    ConfigError,
    DefinitionError,
    LockgateError,
    ParameterError,
    UsageError,
)
from lockgate.model.pipeline import Pipeline
from lockgate.model.schedules import MessageTrigger
from lockgate.model.states import Trigger
from lockgate.service.catalog import Catalog, Entry
from lockgate.service.compose import Workspace
from lockgate.service.enqueue import Enqueued, enqueue

log = logging.getLogger("lockgate.messages")

#: How long one XREADGROUP waits for a message: bounds both latency and `close()`.
BLOCK_MS = 500
#: A message pending this long with another consumer is taken over (XAUTOCLAIM).
MIN_IDLE = 30.0
#: Messages read or claimed per call.
BATCH = 10
#: Where messages that cannot become a run are copied: `<stream>:dead`.
DEAD_SUFFIX = ":dead"
#: The dead-letter stream is trimmed to about this many entries.
DEAD_MAXLEN = 10_000
#: Retries after a Redis failure wait 0.5 s, doubling up to this.
BACKOFF_MAX = 30.0

# Errors about the message or the pipeline: retrying cannot fix them.
_PERMANENT = (UsageError, DefinitionError, ConfigError)


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
    workspace: Workspace,
    catalog: Catalog,
    consumer: str,
    wake: Callable[[], None],
    *,
    block_ms: int = BLOCK_MS,
    min_idle: float = MIN_IDLE,
    batch: int = BATCH,
) -> list[StreamSource]:
    """A source per (Redis URL, stream, group) the catalog's pipelines trigger on.

    Args:
        workspace: where runs are recorded.
        catalog: the project's pipelines.
        consumer: this server's name in the consumer groups (unique per process).
        wake: called after a run is queued, so the server launches it at once.
        block_ms: how long one read waits for a message.
        min_idle: seconds a message stays pending with a consumer before another
            takes it over.
        batch: messages read or claimed per call.

    Raises:
        ConfigError: a pipeline uses `on_message` and the redis package is missing.
    """
    served: dict[tuple[str, str, str], list[Entry]] = {}
    for entry in catalog:
        for trigger in entry.pipeline.options.triggers:
            if not isinstance(trigger, MessageTrigger):
                continue
            entries = served.setdefault((trigger.url, trigger.stream, trigger.group), [])
            if all(e.pipeline.name != entry.pipeline.name for e in entries):
                entries.append(entry)
    if not served:
        return []
    first = next(iter(served.values()))[0].pipeline.name
    _redis(f"pipeline {first!r} triggers on_message(...)")
    return [
        StreamSource(
            workspace,
            MessageTrigger(url, stream, group),
            entries,
            consumer=consumer,
            wake=wake,
            block_ms=block_ms,
            min_idle=min_idle,
            batch=batch,
        )
        for (url, stream, group), entries in served.items()
    ]


def params_for(pipeline: Pipeline, fields: Mapping[Any, Any]) -> dict[str, Any]:
    """The run parameters a message gives `pipeline`, defaults filled in.

    Fields named like a declared parameter are parsed from text to its type as
    `-p NAME=VALUE` is on the command line (`int`, `date`, JSON for lists, ...);
    other fields are ignored, so one message can serve several pipelines.

    Raises:
        ParameterError: a value does not parse, or a required parameter has no field.
    """
    declared = {spec.name for spec in pipeline.params}
    assignments = []
    for raw_name, raw_value in fields.items():
        name = _text(raw_name)
        if name not in declared:
            continue
        try:
            value = raw_value.decode() if isinstance(raw_value, bytes) else str(raw_value)
        except UnicodeDecodeError:
            raise ParameterError(
                f"pipeline {pipeline.name!r}: message field {name!r} is not UTF-8 text"
            ) from None
        assignments.append(f"{name}={value}")
    try:
        return pipeline.bind_cli(assignments)
    except ParameterError as exc:
        given = ", ".join(sorted(_text(name) for name in fields)) or "none"
        raise ParameterError(
            f"{exc} (a message field named like a parameter sets it; this message's "
            f"fields: {given})"
        ) from None


class StreamSource:
    """Queues runs for the messages of one stream, in a daemon thread.

    `poll()` does one step in the caller's thread (what the thread repeats).
    """

    def __init__(
        self,
        workspace: Workspace,
        trigger: MessageTrigger,
        entries: Sequence[Entry],
        *,
        consumer: str,
        wake: Callable[[], None] = lambda: None,
        block_ms: int = BLOCK_MS,
        min_idle: float = MIN_IDLE,
        batch: int = BATCH,
    ) -> None:
        """Serve `entries` (pipelines triggering on `trigger`) as `consumer` of its group.

        Raises:
            ConfigError: the redis package is missing.
        """
        self._redis = _redis(f"stream {trigger.stream!r}")
        self.workspace = workspace
        self.trigger = trigger
        self.entries = list(entries)
        self.consumer = consumer
        self.wake = wake
        self.block_ms = block_ms
        self.min_idle = min_idle
        self.batch = batch
        self.name = f"{trigger.stream} on {_redacted(trigger.url)} (group {trigger.group})"
        #: Set once the group exists and this source has read from it.
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: Any = None
        # Claiming more often than half the idle time finds nothing new.
        self._claim_every = min(max(min_idle / 2, 0.05), 5.0)
        self._next_claim = 0.0

    # --- the thread ---------------------------------------------------------

    def start(self) -> None:
        """Start consuming in a daemon thread (connecting, with retries, in it)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, name=f"lockgate-messages-{self.trigger.stream}", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Stop after the message in hand; unacknowledged ones stay pending for others.

        Args:
            timeout: how long to wait for the thread (default: one read plus 5 s).
        """
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(self.block_ms / 1000 + 5 if timeout is None else timeout)
            if thread.is_alive():
                log.warning("%s: the consumer thread did not stop in time", self.name)
                return
        client, self._client = self._client, None
        if client is not None:
            self._leave_group(client)
            client.close()

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # Redis down, the database down, or a bug: retry
                self._drop_client()
                delay = min(max(delay * 2, 0.5), BACKOFF_MAX)
                if isinstance(exc, self._redis.RedisError):
                    log.warning("%s: %s; retrying in %.1fs", self.name, exc, delay)
                else:
                    log.exception("%s: retrying in %.1fs", self.name, delay)
                self._stop.wait(delay)
            else:
                if delay:
                    log.info("%s: consuming again", self.name)
                delay = 0.0

    # --- one step -------------------------------------------------------------

    def poll(self) -> list[Enqueued]:
        """Connect if needed, take over stale pending messages, read new ones.

        Returns:
            The runs this step created.

        Raises:
            redis.RedisError: Redis is unreachable or refused a command.
        """
        created: list[Enqueued] = []
        if self._client is None:
            self._client = self._connect()
            created += self._prepare()
            self.ready.set()
        if time.monotonic() >= self._next_claim:
            created += self._claim()
            self._next_claim = time.monotonic() + self._claim_every
        reply = self._client.xreadgroup(
            self.trigger.group,
            self.consumer,
            {self.trigger.stream: ">"},
            count=self.batch,
            block=self.block_ms,
        )
        for _stream, messages in reply or ():
            created += self._handle_all(messages)
        return created

    def _connect(self) -> Any:
        return self._redis.Redis.from_url(
            self.trigger.url,
            socket_connect_timeout=5,
            # A blocked read answers within block_ms; a longer silence is a dead link.
            socket_timeout=self.block_ms / 1000 + 10,
            client_name=f"lockgate:{self.consumer}".replace(" ", "_"),
        )

    def _prepare(self) -> list[Enqueued]:
        """Create the group if missing, then finish this consumer's own pending messages."""
        try:
            self._client.xgroup_create(
                self.trigger.stream, self.trigger.group, id="$", mkstream=True
            )
        except self._redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        created: list[Enqueued] = []
        after = "0"  # pending with us: read before a reconnect, never acknowledged
        while not self._stop.is_set():
            reply = self._client.xreadgroup(
                self.trigger.group,
                self.consumer,
                {self.trigger.stream: after},
                count=self.batch,
            )
            messages = reply[0][1] if reply else []
            if not messages:
                break
            created += self._handle_all(messages)
            after = _text(messages[-1][0])
        return created

    def _claim(self) -> list[Enqueued]:
        """Take over messages another consumer read but left unacknowledged too long."""
        created: list[Enqueued] = []
        cursor = "0-0"
        while not self._stop.is_set():
            reply = self._client.xautoclaim(
                self.trigger.stream,
                self.trigger.group,
                self.consumer,
                int(self.min_idle * 1000),
                cursor,
                count=self.batch,
            )
            cursor, messages = _text(reply[0]), reply[1]
            if messages:
                log.info("%s: took over %d stale message(s)", self.name, len(messages))
                created += self._handle_all(messages)
            if cursor == "0-0":
                break
        return created

    def _handle_all(self, messages: Sequence[tuple[Any, Any]]) -> list[Enqueued]:
        created: list[Enqueued] = []
        for raw_id, fields in messages:
            if self._stop.is_set():
                break  # the rest stay pending: another server (or the next) takes them
            message_id = _text(raw_id)
            try:
                created += self.handle(message_id, fields or {})
            except self._redis.RedisError:
                raise
            except LockgateError as exc:  # the database failed: retry when it is idle
                log.error(
                    "%s: message %s left pending, retried after %gs: %s",
                    self.name,
                    message_id,
                    self.min_idle,
                    exc,
                )
            except Exception:  # a bug must not stop the stream either
                log.exception("%s: message %s left pending", self.name, message_id)
        return created

    def handle(self, message_id: str, fields: Mapping[Any, Any]) -> list[Enqueued]:
        """Queue each pipeline's run for one message, then acknowledge it.

        Returns:
            The runs created (a re-delivered message returns none: its runs exist).

        Raises:
            LockgateError: the database failed; the message stays pending.
            redis.RedisError: the acknowledgement failed; the message stays pending.
        """
        stream, group = self.trigger.stream, self.trigger.group
        if not fields:  # deleted from the stream (XDEL, trimming) before we got to it
            log.warning("%s: message %s was deleted before it ran", self.name, message_id)
            self._client.xack(stream, group, message_id)
            return []
        created: list[Enqueued] = []
        rejected: list[tuple[str, str]] = []
        for entry in self.entries:
            try:
                result = enqueue(
                    self.workspace,
                    entry.pipeline,
                    params_for(entry.pipeline, fields),
                    trigger=Trigger.MESSAGE,
                    trigger_key=f"message:{stream}:{message_id}",
                    pipeline_ref=entry.ref,
                )
            except _PERMANENT as exc:
                log.error(
                    "%s: message %s cannot start pipeline %r (moved to %s%s): %s",
                    self.name,
                    message_id,
                    entry.pipeline.name,
                    stream,
                    DEAD_SUFFIX,
                    exc,
                )
                rejected.append((entry.pipeline.name, str(exc)))
                continue
            if result.created:
                created.append(result)
                self.wake()
        failpoints.hit("message.before_ack", message_id)
        # The dead letters and the ack commit together: a crash repeats both or neither.
        tx = self._client.pipeline(transaction=True)
        for pipeline, reason in rejected:
            letter = dict(fields)
            letter.update(
                {
                    "lockgate.error": reason,
                    "lockgate.pipeline": pipeline,
                    "lockgate.message_id": message_id,
                    "lockgate.group": group,
                }
            )
            tx.xadd(stream + DEAD_SUFFIX, letter, maxlen=DEAD_MAXLEN, approximate=True)
        tx.xack(stream, group, message_id)
        tx.execute()
        return created

    # --- connection ---------------------------------------------------------------

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # already broken; a new one is made on the next try
                log.debug("%s: closing a broken connection failed", self.name, exc_info=True)

    def _leave_group(self, client: Any) -> None:
        """Remove this consumer from the group if nothing is pending with it.

        Each server has a new consumer name, so without this the group's consumer
        list grows with every restart. Deleting a consumer drops its pending
        messages, so one that has some is kept for XAUTOCLAIM to empty.
        """
        stream, group = self.trigger.stream, self.trigger.group
        try:
            if not client.xpending_range(stream, group, "-", "+", 1, consumername=self.consumer):
                client.xgroup_delconsumer(stream, group, self.consumer)
        except self._redis.RedisError as exc:
            log.debug("%s: could not leave the group: %s", self.name, exc)


def _redis(what: str) -> ModuleType:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            f"{what} needs the redis package, which is not installed; "
            "run: pip install 'lockgate[redis]'"
        ) from None
    return redis


def _text(value: Any) -> str:
    # Field names and ids come back as bytes; a name that is not UTF-8 matches no parameter.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _redacted(url: str) -> str:
    """The URL without its password, for names and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + host))
