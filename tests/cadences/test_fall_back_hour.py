"""The repeated hour of an autumn fall-back: a clock in it neither misses nor invents ticks.

Regression (found by tests/chaos/test_clock_jumps.py): cronsim walks wall-clock
time, and 02:19 on the second pass (CET, fold=1) has the same wall time as an
instant an hour earlier. Walking backwards from it, `Schedule.due` skipped
that day's 02:30, which had happened on the first pass (CEST): a scheduler
pass then created nothing, or, with catchup off and an older last tick, the
previous day's tick, which the documented rules never create; the day's own
tick followed at a later pass. Walking forwards from a second-pass instant
returned a tick before it.
"""

from __future__ import annotations

import datetime as dt

from lockgate.model.schedules import make_schedule
from lockgate.service.scheduler import SchedulerState, schedule_pass

UTC = dt.UTC

#: 2026-10-25 01:19 UTC is 02:19 CET, the second pass of Berlin's repeated hour;
#: that day's 02:30 CEST (00:30 UTC) is already past.
IN_THE_REPEAT = dt.datetime(2026, 10, 25, 1, 19, tzinfo=UTC)
THAT_DAY = dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
NEXT_DAY = dt.datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET

PIPELINES = """
import lockgate as lg

@lg.task
def echo(day: str) -> str:
    return day

@lg.pipeline(schedule="30 2 * * *", timezone="Europe/Berlin", catchup=False)
def nightly(logical_date: str = "none"):
    return echo(logical_date)
"""


def test_a_schedule_walked_from_the_repeated_hour_sees_the_first_pass_as_past():
    schedule = make_schedule("p", "30 2 * * *", "Europe/Berlin", True, 10)
    day_before = dt.datetime(2026, 10, 24, 0, 30, tzinfo=UTC)
    assert schedule.due(day_before, IN_THE_REPEAT) == ([THAT_DAY], 0)
    assert schedule.previous_tick(IN_THE_REPEAT) == THAT_DAY
    assert list(schedule.ticks(IN_THE_REPEAT, NEXT_DAY)) == [NEXT_DAY]  # not THAT_DAY again
    (upcoming,) = schedule.next_ticks(IN_THE_REPEAT, 1)
    assert upcoming.astimezone(UTC) == NEXT_DAY
    # Both passes of an hourly schedule's 02:00 are distinct ticks, each due once.
    hourly = make_schedule("p", "0 * * * *", "Europe/Berlin", True, 10)
    ticks, _ = hourly.due(dt.datetime(2026, 10, 24, 23, 0, tzinfo=UTC), IN_THE_REPEAT)
    assert [t.hour for t in ticks] == [0, 1]  # 02:00 CEST, 02:00 CET


def test_a_pass_in_the_repeated_hour_creates_that_days_tick_only(project):
    project.write(PIPELINES)
    workspace = project.workspace()
    catalog = project.catalog(workspace)
    state = SchedulerState()
    schedule_pass(workspace, catalog, dt.datetime(2026, 10, 21, 12, tzinfo=UTC), state)
    first = schedule_pass(workspace, catalog, dt.datetime(2026, 10, 22, 1, tzinfo=UTC), state)
    assert len(first) == 1
    # Down from the 22nd until the repeated hour of the 25th: catchup is off, so only
    # the latest missed tick, which is the 25th's, not the 24th's.
    created = schedule_pass(workspace, catalog, IN_THE_REPEAT, state)
    runs = [workspace.metadata.get_run(c.run_id) for c in created]
    assert [r.logical_date for r in runs] == [THAT_DAY.timestamp()]
    assert schedule_pass(workspace, catalog, dt.datetime(2026, 10, 25, 8, tzinfo=UTC), state) == []
