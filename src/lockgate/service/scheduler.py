"""Schedule ticks and backfills: queued runs, one per pipeline and tick.

Every tick's run carries the trigger key `schedule:<UTC instant>`, so the
scheduler of each server, a restarted server and a backfill over the same
range all agree on which ticks have runs: the database's unique key keeps
exactly one. A schedule never goes back before the newest tick that has a
run (`catchup` fills the gap since then, bounded by `max_catchup`), and a
pipeline scheduled for the first time starts at its first tick after now.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from lockgate.errors import LockgateError, UsageError
from lockgate.model.schedules import Schedule, tick_key
from lockgate.model.states import Trigger
from lockgate.service.catalog import Catalog, Entry
from lockgate.service.compose import Workspace
from lockgate.service.enqueue import Enqueued, enqueue

log = logging.getLogger("lockgate.scheduler")


@dataclass
class SchedulerState:
    """What one scheduler remembers between passes (nothing it relies on for correctness).

    `armed` is when this scheduler first saw each never-fired schedule: its
    first tick after that moment is the schedule's first run.
    """

    armed: dict[str, dt.datetime] = field(default_factory=dict)


def schedule_pass(
    workspace: Workspace, catalog: Catalog, now: dt.datetime, state: SchedulerState
) -> list[Enqueued]:
    """Queue the runs of every schedule tick due at `now`; return those created."""
    created: list[Enqueued] = []
    for entry in catalog:
        schedule = entry.pipeline.options.schedule
        if schedule is None:
            continue
        try:
            created += _pipeline_pass(workspace, entry, schedule, now, state)
        except LockgateError as exc:  # one broken pipeline must not stop the others
            log.error("schedule of %s: %s", entry.pipeline.name, exc)
    return created


def _pipeline_pass(
    workspace: Workspace,
    entry: Entry,
    schedule: Schedule,
    now: dt.datetime,
    state: SchedulerState,
) -> list[Enqueued]:
    name = entry.pipeline.name
    last = workspace.metadata.last_logical_date(name)
    if last is None:
        armed = state.armed.setdefault(name, now)
        after = armed
    else:
        after = dt.datetime.fromtimestamp(last, dt.UTC)
    ticks, dropped = schedule.due(after, now)
    if dropped:
        log.warning(
            "%s: %d missed tick(s) before %s skipped (max_catchup=%d%s)",
            name,
            dropped,
            ticks[0].isoformat() if ticks else now.isoformat(),
            schedule.max_catchup,
            "" if schedule.catchup else ", catchup off",
        )
    created = []
    for tick in ticks:
        result = enqueue(
            workspace,
            entry.pipeline,
            trigger=Trigger.SCHEDULE,
            trigger_key=tick_key(tick),
            logical_date=tick,
            pipeline_ref=entry.ref,
        )
        if result.created:
            created.append(result)
    return created


@dataclass(frozen=True, slots=True)
class Backfill:
    """What a backfill did: runs created and ticks that already had one, in tick order."""

    created: list[tuple[dt.datetime, str]]
    existing: list[tuple[dt.datetime, str]]


def parse_bound(text: str, zone: ZoneInfo, *, end: bool) -> dt.datetime:
    """A backfill bound: a date (the whole day, in the schedule's zone) or a datetime.

    Raises:
        UsageError: not an ISO date or datetime.
    """
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            if end:
                day += dt.timedelta(days=1)
            return dt.datetime.combine(day, dt.time(), zone) - dt.timedelta(
                microseconds=1 if end else 0
            )
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"{text!r} is not a date or datetime; use 2026-11-01 or 2026-11-01T02:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def backfill(
    workspace: Workspace,
    entry: Entry,
    start: str,
    end: str,
    *,
    limit: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> Backfill:
    """Queue one run per schedule tick from `start` to `end` (inclusive), in order.

    Dates are whole days in the schedule's timezone. Ticks that already have a
    run (from the scheduler or an earlier backfill) are left alone, so running
    the same backfill twice creates nothing the second time.

    Raises:
        UsageError: the pipeline has no schedule, the range is empty or reversed,
            or it holds more than `limit` ticks.
    """
    pipeline = entry.pipeline
    schedule = pipeline.options.schedule
    if schedule is None:
        raise UsageError(
            f"pipeline {pipeline.name!r} has no schedule, so it has no ticks to backfill; "
            'give it @lg.pipeline(schedule="0 2 * * *") or start runs with `lockgate run`'
        )
    zone = ZoneInfo(schedule.timezone)
    lower = parse_bound(start, zone, end=False)
    upper = parse_bound(end, zone, end=True)
    if upper < lower:
        raise UsageError(f"--end {end} is before --start {start}")
    ticks = []
    for tick in schedule.ticks(lower - dt.timedelta(microseconds=1), upper):
        ticks.append(tick)
        if len(ticks) > limit:
            raise UsageError(
                f"{start}..{end} holds more than {limit} ticks of {schedule.expression!r}; "
                "backfill a shorter range at a time"
            )
    if not ticks:
        raise UsageError(
            f"no tick of {schedule.expression!r} ({schedule.timezone}) falls in {start}..{end}"
        )
    created: list[tuple[dt.datetime, str]] = []
    existing: list[tuple[dt.datetime, str]] = []
    for done, tick in enumerate(ticks, 1):
        result = enqueue(
            workspace,
            pipeline,
            trigger=Trigger.BACKFILL,
            trigger_key=tick_key(tick),
            logical_date=tick,
            pipeline_ref=entry.ref,
        )
        (created if result.created else existing).append((tick, result.run_id))
        if progress is not None:
            progress(done, len(ticks))
    return Backfill(created, existing)
