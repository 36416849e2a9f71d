"""Fuzz: cron expressions and timezones (RELIABILITY.md B5).

Random cron strings (fields mutated, out of range, `*/0`, never-firing days,
aliases, junk) and timezone names (real IANA zones and mutations of them) go
through `@lg.pipeline(schedule=..., timezone=...)`. Either the pipeline is
defined and its schedule yields strictly increasing future ticks, in UTC and
in its zone, or definition fails with `InvalidPolicyError` naming the
pipeline, the option and the value. Never a silent None or empty schedule,
never another exception type.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import lockgate as lg
from lockgate.errors import InvalidPolicyError, LockgateError
from lockgate.model.schedules import ALIASES

UTC = dt.UTC
ZONES = sorted(zoneinfo.available_timezones())


@lg.task
def tick(x: int = 0) -> int:
    return x


# --- cron strings ------------------------------------------------------------

_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]  # seconds first
_NAMES = ["JAN", "feb", "MON", "sun", "FRI", "dec", "XYZ"]


@st.composite
def cron_field(draw: st.DrawFn, index: int) -> str:
    low, high = _RANGES[index]
    number = st.integers(low - 2, high + 3)
    kind = draw(
        st.sampled_from(["star", "num", "range", "step", "list", "name", "special", "junk"])
    )
    if kind == "star":
        return "*"
    if kind == "num":
        return str(draw(number))
    if kind == "range":
        return f"{draw(number)}-{draw(number)}"
    if kind == "step":
        base = draw(st.sampled_from(["*", f"{draw(number)}", f"{draw(number)}-{draw(number)}"]))
        return f"{base}/{draw(st.integers(-1, 70))}"
    if kind == "list":
        return ",".join(str(draw(number)) for _ in range(draw(st.integers(1, 4))))
    if kind == "name":
        return draw(st.sampled_from(_NAMES))
    if kind == "special":
        return draw(st.sampled_from(["L", "LW", "15W", "31W", "5#5", "1#6", "?", "L-3", "0#1"]))
    return draw(st.text(min_size=0, max_size=4))


@st.composite
def cron_expression(draw: st.DrawFn) -> str:
    style = draw(st.sampled_from(["five", "six", "count", "alias", "never", "text"]))
    if style in ("five", "six"):
        indexes = range(1, 6) if style == "five" else range(6)
        return " ".join(draw(cron_field(i)) for i in indexes)
    if style == "count":
        n = draw(st.sampled_from([0, 1, 2, 3, 4, 7, 8]))
        return " ".join(draw(cron_field(1 + i % 5)) for i in range(n))
    if style == "alias":
        alias = draw(st.sampled_from([*ALIASES, "@reboot", "@every", "@", "@DAILY", " @hourly "]))
        return alias
    if style == "never":
        # days that some months never have, alone or with a restricted weekday
        day = draw(st.sampled_from(["30", "31", "29", "30,31", "L", "31W"]))
        month = draw(st.sampled_from(["2", "4", "6", "9", "11", "2,4", "FEB"]))
        weekday = draw(st.sampled_from(["*", "1", "5#5", "MON"]))
        return f"0 0 {day} {month} {weekday}"
    return draw(st.text(max_size=20))


# --- timezones ---------------------------------------------------------------


@st.composite
def timezone(draw: st.DrawFn) -> str:
    zone = draw(st.sampled_from(ZONES))
    mutation = draw(
        st.sampled_from(["none", "none", "typo", "case", "prefix", "dir", "long", "nul", "text"])
    )
    if mutation == "none":
        return zone
    if mutation == "typo" and len(zone) > 1:
        i = draw(st.integers(0, len(zone) - 1))
        return zone[:i] + zone[i + 1 :]
    if mutation == "case":
        return zone.lower()
    if mutation == "prefix":
        return draw(st.sampled_from(["../", "/", "./", "posix/", "zoneinfo/", " "])) + zone
    if mutation == "dir":
        return draw(st.sampled_from(["Europe", "America", "Etc", "__pycache__", "Europe/", "."]))
    if mutation == "long":
        return zone + "x" * draw(st.integers(200, 5000))
    if mutation == "nul":
        return zone + "\x00"
    return draw(st.text(max_size=30))


START = st.datetimes(
    min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(UTC)
)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _check(name: str, cron: str, zone: str, start: dt.datetime) -> tuple[list[str], bool]:
    """Define a pipeline with this schedule; (problems, whether it was accepted)."""
    case = f"{_short(cron)} in {_short(zone)}"
    try:

        @lg.pipeline(name=name, schedule=cron, timezone=zone)
        def scheduled(x: int = 1):
            return tick(x)

    except InvalidPolicyError as exc:
        message = str(exc)
        problems = []
        if f"pipeline {name!r}" not in message:
            problems.append(f"{case}: the error does not name the pipeline: {_short(message, 200)}")
        if "schedule=" not in message and "timezone=" not in message:
            problems.append(f"{case}: the error names no option: {_short(message, 200)}")
        if repr(cron) not in message and repr(zone) not in message:
            problems.append(f"{case}: the error does not quote the value: {_short(message, 200)}")
        return problems, False
    except Exception as exc:  # the property: nothing else escapes
        kind = (
            "(a lockgate error, not InvalidPolicyError)" if isinstance(exc, LockgateError) else ""
        )
        return [f"{case}: {type(exc).__name__} {kind}: {_short(str(exc), 200)}"], False
    schedule = scheduled.options.schedule
    if schedule is None:
        return [f"{case}: a schedule was given but the pipeline has none"], True
    try:
        ticks = schedule.next_ticks(start, 4)
    except Exception as exc:
        return [f"{case}: next_ticks({start}): {type(exc).__name__}: {_short(str(exc), 200)}"], True
    problems = []
    if not ticks:
        problems.append(f"{case} was accepted but never fires after {start}")
    points = [start, *ticks]
    if any(b <= a for a, b in itertools.pairwise(points)):
        problems.append(f"{case}: ticks after {start} not increasing: {ticks}")
    if any(str(t.tzinfo) != zone for t in ticks):
        problems.append(f"{case}: ticks not in the schedule's zone: {ticks}")
    if ticks:
        # `ticks` and `due` agree with `next_ticks` (UTC, bounded, oldest first)
        window = list(schedule.ticks(start, ticks[-1]))
        if window != [t.astimezone(UTC) for t in ticks]:
            problems.append(f"{case}: ticks() {window} != next_ticks() {ticks}")
        due, _ = schedule.due(start, ticks[-1])
        if due != [ticks[-1].astimezone(UTC)]:
            problems.append(f"{case}: due() without catchup gave {due}")
    return problems, True


@pytest.mark.scenario("fuzz: cron and timezones")
def test_cron_and_timezones_either_schedule_or_fail_naming_the_pipeline(chaos):
    seen = {"accepted": 0, "refused": 0}

    @settings(
        max_examples=chaos.size(150, 3000),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @seed(chaos.seed)
    @given(cron=cron_expression(), zone=timezone(), start=START, n=st.integers(0, 999))
    def prop(cron: str, zone: str, start: dt.datetime, n: int) -> None:
        problems, accepted = _check(f"cron-{n}", cron, zone, start)
        chaos.record(problems)
        seen["accepted" if accepted else "refused"] += 1

    prop()
    chaos.check()
    # The generator must exercise both sides, or the property proves little.
    assert seen["accepted"] > 0 and seen["refused"] > 0, seen


KNOWN_BAD = [
    ("61 * * * *", "UTC", "Bad minute"),
    ("* * * *", "UTC", "Wrong number of fields"),
    ("*/0 * * * *", "UTC", "Bad minute"),
    ("0 0 30 2 *", "UTC", "Bad day-of-month"),  # never fires: refused, not a silent None
    ("@reboot", "UTC", "@daily"),
    ("0 2 * * *", "Europe/Berln", "timezone='Europe/Berln'"),
    ("0 2 * * *", "Europe", "timezone='Europe'"),  # a directory of the zone database
    ("0 2 * * *", "Europe/Berlin" + "x" * 300, "timezone="),  # longer than a file name
]


@pytest.mark.scenario("fuzz: cron and timezones")
def test_known_bad_schedules_name_the_pipeline_and_the_problem(chaos):
    for cron, zone, expected in KNOWN_BAD:
        problems, accepted = _check("nightly", cron, zone, dt.datetime(2026, 1, 1, tzinfo=UTC))
        if accepted:
            problems.append(f"{cron!r} in {_short(zone)} was accepted")
        else:
            try:
                lg.pipeline(name="nightly", schedule=cron, timezone=zone)(lambda: tick(0))
            except InvalidPolicyError as exc:
                if expected not in str(exc):
                    problems.append(f"{cron!r} in {_short(zone)}: {expected!r} not in {exc}")
        chaos.record(problems)
    chaos.check()
