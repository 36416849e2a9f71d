"""Cadences a pipeline declares: cron schedules and triggers.

A schedule is a cron expression (5 fields, or 6 with seconds first) or an
alias (`@daily`, `@hourly`, ...), evaluated in an IANA timezone so that a
daily `30 2 * * *` fires once on the autumn fall-back and once, at the
shifted time, on the spring-forward (cronsim's behaviour; croniter fires
twice). Everything is checked when the pipeline is defined, naming it.

cronsim is imported here although this layer has no other third-party
import: it is a small pure-Python core dependency with no I/O, and a
malformed schedule must fail when the module that defines it loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lockgate.errors import InvalidPolicyError
from lockgate.model.versions import KINDS, VersionRef, check_name

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a pipeline runs by itself.

    Attributes:
        cron: the expression (aliases expanded).
        timezone: the IANA zone it is read in.
        catchup: after downtime, create the missed ticks (at most `max_catchup`).
        max_catchup: bound on the missed ticks created at once.
        expression: as written.
    """

    cron: str
    timezone: str
    catchup: bool
    max_catchup: int
    expression: str

    def ticks(self, after: datetime, until: datetime) -> Iterator[datetime]:
        """Fire times strictly after `after` and up to `until` (both aware), as UTC."""
        end = until.astimezone(UTC)
        for moment in self._walk(after):
            if moment > end:
                return
            yield moment

    def due(self, after: datetime | None, now: datetime) -> tuple[list[datetime], int]:
        """The ticks to create at `now`, oldest first, and how many missed ones were dropped.

        Only ticks after `after` (the newest tick that already has a run) and at
        or before `now` count. Without catchup that is the latest one; with it,
        the latest `max_catchup`. With no `after` (a schedule that never fired)
        nothing is due: a new schedule starts now instead of replaying its past.
        Walking backwards from `now` keeps this cheap however long the downtime.
        """
        if after is None:
            return [], 0
        wanted = self.max_catchup if self.catchup else 1
        found: list[datetime] = []
        dropped = 0
        for moment in self._walk(now, reverse=True):
            if moment <= after:
                break
            if len(found) < wanted:
                found.append(moment)
            else:
                dropped += 1
                if dropped >= _COUNT_LIMIT:
                    break
        found.reverse()
        return found, dropped

    def next_ticks(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire times after `after`, in the schedule's timezone."""
        zone = ZoneInfo(self.timezone)
        found = []
        for moment in self._walk(after):
            found.append(moment.astimezone(zone))
            if len(found) == count:
                break
        return found

    def previous_tick(self, before: datetime) -> datetime:
        """The latest fire time at or before `before`, as UTC."""
        return next(iter(self._walk(before, reverse=True)))

    def _walk(self, anchor: datetime, *, reverse: bool = False) -> Iterator[datetime]:
        """Fire times strictly after `anchor` (reverse: at or before it, newest first), as UTC.

        cronsim walks wall-clock time. In the hour an autumn fall-back repeats,
        an anchor on the second pass (fold=1) has the same wall time as an
        instant an hour earlier, so walking from it would yield that hour's
        first-pass ticks as still ahead (forward: ticks before `anchor`) or
        never (reverse: a tick already due is missed, and an older one fires
        instead). So the walk starts on the far side of the repeated hour and
        compares instants, never wall times.
        """
        from cronsim import CronSim

        zone = ZoneInfo(self.timezone)
        at = anchor.astimezone(UTC)
        local = at.astimezone(zone)
        shift = timedelta(0)
        if local.fold:
            first, second = local.replace(fold=0).utcoffset(), local.utcoffset()
            if first is not None and second is not None:
                shift = abs(first - second)
        if reverse:
            start = (at + shift + timedelta(microseconds=1)).astimezone(zone)
        else:
            start = (at - shift).astimezone(zone)
        for moment in CronSim(self.cron, start, reverse=reverse):
            instant = moment.astimezone(UTC)
            if (instant > at) if reverse else (instant <= at):
                continue
            yield instant


#: Counting dropped catchup ticks stops here (an every-second schedule down for a week).
_COUNT_LIMIT = 100_000


def tick_key(tick: datetime) -> str:
    """The trigger key of a schedule tick: one run per pipeline and tick, however
    many schedulers (or backfills) ask for it."""
    return "schedule:" + tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_schedule(
    pipeline: str, schedule: object, timezone: object, catchup: object, max_catchup: object
) -> Schedule:
    """Validate a pipeline's schedule options.

    Raises:
        InvalidPolicyError: a malformed cron, an unknown timezone, or bad options,
            naming the pipeline.
    """
    owner = f"pipeline {pipeline!r}"
    if not isinstance(schedule, str) or not schedule.strip():
        raise InvalidPolicyError.for_field(owner, "schedule", schedule, "a cron expression")
    expression = schedule.strip()
    cron = ALIASES.get(expression.lower(), expression)
    if cron.startswith("@"):
        raise InvalidPolicyError.for_field(
            owner, "schedule", schedule, f"a cron expression or one of {', '.join(ALIASES)}"
        )
    if not isinstance(timezone, str):
        raise InvalidPolicyError.for_field(owner, "timezone", timezone, "an IANA name")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name the zone database reads as a path it cannot open, such as a
        # directory ('Europe') or a name longer than the filesystem allows.
        raise InvalidPolicyError.for_field(
            owner, "timezone", timezone, "an IANA timezone such as 'Europe/Berlin' or 'UTC'"
        ) from None
    from cronsim import CronSim, CronSimError

    try:
        CronSim(cron, datetime(2026, 1, 1, tzinfo=ZoneInfo(timezone)))
    except CronSimError as exc:
        raise InvalidPolicyError.for_field(
            owner,
            "schedule",
            schedule,
            f"a valid cron expression (minute hour day month weekday, or seconds first): {exc}",
        ) from None
    if not isinstance(catchup, bool):
        raise InvalidPolicyError.for_field(owner, "catchup", catchup, "True or False")
    if isinstance(max_catchup, bool) or not isinstance(max_catchup, int) or max_catchup < 1:
        raise InvalidPolicyError.for_field(owner, "max_catchup", max_catchup, "an int >= 1")
    return Schedule(cron, timezone, catchup, max_catchup, expression)


@dataclass(frozen=True, slots=True)
class VersionTrigger:
    """Start the pipeline when a new version of `kind:name` is created."""

    kind: str
    name: str

    @property
    def key(self) -> str:
        """How runs it starts are recorded: `version:dataset:transcripts`."""
        return f"version:{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True)
class MessageTrigger:
    """Start the pipeline once per message on a Redis Stream (consumer group `group`)."""

    url: str
    stream: str
    group: str = "lockgate"

    @property
    def key(self) -> str:
        """How runs it starts are recorded: `message:<stream>`."""
        return f"message:{self.stream}"


Trigger = VersionTrigger | MessageTrigger


def on_new_version(ref: str) -> VersionTrigger:
    """Trigger on every new version of a named dataset, model or prompt (`dataset:NAME`).

    Raises:
        InvalidPolicyError: not `KIND:NAME` with a known kind.
    """
    kind, sep, name = ref.partition(":")
    if not sep or kind not in KINDS or "@" in name:
        raise InvalidPolicyError(
            f"on_new_version({ref!r}): expected KIND:NAME with KIND one of "
            f"{', '.join(KINDS)} and no @version (e.g. 'dataset:transcripts')"
        )
    return VersionTrigger(kind, check_name(kind, name))


def on_message(url: str, *, stream: str, group: str = "lockgate") -> MessageTrigger:
    """Trigger once per message of a Redis Stream, shared by servers through a consumer group.

    Raises:
        InvalidPolicyError: not a redis:// URL, or an empty stream or group name.
    """
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise InvalidPolicyError(f"on_message: {url!r} is not a redis:// URL")
    if not isinstance(stream, str) or not stream or not isinstance(group, str) or not group:
        raise InvalidPolicyError("on_message: stream and group must be non-empty strings")
    return MessageTrigger(url, stream, group)


def version_ref_of(trigger: VersionTrigger) -> VersionRef:
    """The latest-version reference a sensor watches."""
    return VersionRef(trigger.kind, trigger.name, None)
