"""The scheduler pass: one queued run per tick, logical_date, catchup, restarts, races."""

from __future__ import annotations

import datetime as dt

from lockgate.model.states import RunState
from lockgate.service.scheduler import SchedulerState, schedule_pass

UTC = dt.UTC

PIPELINES = """
import lockgate as lg

@lg.task
def echo(day: str) -> str:
    return day

@lg.pipeline(schedule="0 * * * *", catchup={catchup}, max_catchup=3)
def hourly(logical_date: str = "none"):
    return echo(logical_date)

@lg.pipeline
def manual():
    return echo("x")
"""


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 26, hour, minute, tzinfo=UTC)


def runs(workspace):
    return sorted(workspace.metadata.list_runs(limit=1000), key=lambda r: r.logical_date or 0)


def test_a_new_schedule_starts_at_its_next_tick_not_in_the_past(project):
    project.write(PIPELINES.format(catchup=False))
    workspace = project.workspace()
    catalog = project.catalog(workspace)
    state = SchedulerState()
    assert schedule_pass(workspace, catalog, at(10, 30), state) == []
    assert schedule_pass(workspace, catalog, at(10, 59), state) == []
    created = schedule_pass(workspace, catalog, at(11, 0), state)
    assert len(created) == 1
    (run,) = runs(workspace)
    assert run.status is RunState.QUEUED and run.trigger == "schedule"
    assert run.trigger_key == "schedule:2026-11-26T11:00:00Z"
    assert run.logical_date == at(11).timestamp()
    assert run.params == {"logical_date": "2026-11-26T11:00:00+00:00"}
    # The same tick again (another pass, another server) creates nothing.
    assert schedule_pass(workspace, catalog, at(11, 0), SchedulerState()) == []
    assert len(runs(workspace)) == 1


def test_after_downtime_without_catchup_only_the_latest_tick_runs(project):
    project.write(PIPELINES.format(catchup=False))
    workspace = project.workspace()
    catalog = project.catalog(workspace)
    state = SchedulerState()
    schedule_pass(workspace, catalog, at(9, 30), state)
    schedule_pass(workspace, catalog, at(10, 0), state)
    # Down from 10:00 to 15:30: a restarted server (fresh state) resumes from the DB.
    schedule_pass(workspace, catalog, at(15, 30), SchedulerState())
    assert [r.trigger_key for r in runs(workspace)] == [
        "schedule:2026-11-26T10:00:00Z",
        "schedule:2026-11-26T15:00:00Z",
    ]


def test_after_downtime_catchup_creates_the_missed_ticks_up_to_max_catchup(project):
    project.write(PIPELINES.format(catchup=True))
    workspace = project.workspace()
    catalog = project.catalog(workspace)
    state = SchedulerState()
    schedule_pass(workspace, catalog, at(9, 30), state)
    schedule_pass(workspace, catalog, at(10, 0), state)
    schedule_pass(workspace, catalog, at(12, 10), SchedulerState())
    assert [r.logical_date for r in runs(workspace)] == [at(h).timestamp() for h in (10, 11, 12)]
    # Five hours more downtime: max_catchup=3 keeps the latest three, in order.
    schedule_pass(workspace, catalog, at(17, 5), SchedulerState())
    assert [r.logical_date for r in runs(workspace)][-3:] == [
        at(h).timestamp() for h in (15, 16, 17)
    ]
    created = [r.created_at for r in runs(workspace)]
    assert created == sorted(created)  # queued oldest tick first
