"""Cron schedules: aliases, timezones, DST, definition-time errors, due ticks and catchup."""

from __future__ import annotations

import datetime as dt

import pytest

import lockgate as lg
from lockgate.errors import InvalidPolicyError
from lockgate.model.schedules import make_schedule, tick_key

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@lg.task
def step(x: str) -> str:
    return x


def test_aliases_expand_and_next_runs_follow_the_timezone():
    schedule = make_schedule("p", "@daily", "Europe/Berlin", False, 10)
    assert schedule.cron == "0 0 * * *" and schedule.expression == "@daily"
    (first,) = schedule.next_ticks(at(2026, 11, 26, 12), 1)
    assert first.isoformat() == "2026-11-27T00:00:00+01:00"  # midnight in Berlin


def test_the_autumn_fall_back_fires_a_daily_schedule_once():
    # 02:30 happens twice in Berlin on 2026-10-25; cronsim fires once (croniter twice).
    schedule = make_schedule("p", "30 2 * * *", "Europe/Berlin", False, 10)
    ticks = list(schedule.ticks(at(2026, 10, 24, 12), at(2026, 10, 26, 12)))
    assert [t.isoformat() for t in ticks] == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
    ]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"schedule": "0 25 * * *"}, "pipeline 'bad': schedule='0 25 \\* \\* \\*' is invalid"),
        ({"schedule": "0 0 30 2 *"}, "valid cron"),
        ({"schedule": "@sometimes"}, "@daily"),
        ({"schedule": "0 2 * * *", "timezone": "Mars/Olympus"}, "IANA timezone"),
        ({"schedule": "0 2 * * *", "max_catchup": 0}, "max_catchup"),
        ({"max_active_runs": 0}, "max_active_runs"),
        ({"max_input_age": "soon"}, "max_input_age"),
        ({"on_stale_input": "ignore"}, "on_stale_input"),
        ({"triggers": ["dataset:x"]}, "lg.on_new_version"),
    ],
)
def test_bad_options_fail_when_the_pipeline_is_defined_naming_it(kwargs, expected):
    with pytest.raises(InvalidPolicyError, match=expected) as caught:

        @lg.pipeline(name="bad", **kwargs)
        def bad():
            return step("x")

    assert "bad" in str(caught.value)


def test_bad_trigger_references_are_rejected():
    with pytest.raises(InvalidPolicyError, match="KIND:NAME"):
        lg.on_new_version("table:transcripts")
    with pytest.raises(InvalidPolicyError, match="redis://"):
        lg.on_message("http://localhost", stream="s")


def test_due_without_catchup_is_only_the_latest_missed_tick():
    schedule = make_schedule("p", "0 * * * *", "UTC", False, 10)
    ticks, dropped = schedule.due(at(2026, 1, 1, 0), at(2026, 1, 1, 5, 30))
    assert ticks == [at(2026, 1, 1, 5)] and dropped == 4  # 1:00..4:00 skipped


def test_due_with_catchup_is_bounded_by_max_catchup():
    schedule = make_schedule("p", "0 * * * *", "UTC", True, 3)
    ticks, dropped = schedule.due(at(2026, 1, 1, 0), at(2026, 1, 1, 5, 0))
    assert ticks == [at(2026, 1, 1, 3), at(2026, 1, 1, 4), at(2026, 1, 1, 5)]
    assert dropped == 2
    everything, none = make_schedule("p", "0 * * * *", "UTC", True, 100).due(
        at(2026, 1, 1, 0), at(2026, 1, 1, 5, 0)
    )
    assert len(everything) == 5 and none == 0


def test_due_never_repeats_or_precedes_the_last_tick():
    schedule = make_schedule("p", "*/10 * * * * *", "UTC", True, 100)
    assert schedule.due(at(2026, 1, 1, 0, 0, 20), at(2026, 1, 1, 0, 0, 29)) == ([], 0)
    assert schedule.due(None, at(2026, 1, 1)) == ([], 0)


def test_tick_keys_are_utc_instants():
    berlin = dt.datetime(2026, 11, 1, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert tick_key(berlin) == "schedule:2026-11-01T01:00:00Z"


@pytest.mark.parametrize("zone", ["Europe", "__pycache__", "Europe/Berlin" + "x" * 300])
def test_a_timezone_the_zone_database_cannot_open_names_the_pipeline(zone):
    # Found by tests/chaos/test_fuzz_cron.py: a directory of the zone database or a
    # name longer than a file name raised IsADirectoryError / OSError.
    with pytest.raises(InvalidPolicyError, match="pipeline 'p': timezone="):
        make_schedule("p", "0 2 * * *", zone, False, 10)
