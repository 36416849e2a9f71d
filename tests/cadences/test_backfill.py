"""Backfills: one queued run per tick in a range, in order, and never twice."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lockgate.cli.main import cli
from lockgate.errors import UsageError
from lockgate.service.scheduler import backfill

PIPELINES = """
import datetime as dt
import lockgate as lg

@lg.task
def echo(day: dt.date) -> str:
    return day.isoformat()

@lg.pipeline(schedule="0 2 * * *", timezone="Europe/Berlin")
def nightly(logical_date: dt.date = dt.date(2026, 1, 1)):
    return echo(logical_date)

@lg.pipeline
def unscheduled(day: dt.date = dt.date(2026, 1, 1)):
    return echo(day)
"""


def test_backfill_queues_each_tick_in_order_and_is_idempotent(project):
    project.write(PIPELINES)
    workspace = project.workspace()
    entry = project.catalog(workspace).get("nightly")
    first = backfill(workspace, entry, "2026-11-01", "2026-11-07")
    assert len(first.created) == 7 and first.existing == []
    runs = sorted(workspace.metadata.list_runs(limit=100), key=lambda r: r.created_at)
    # Ticks are 02:00 Berlin: 01:00 UTC (CET), and the date parameter is the local day.
    assert [r.params["logical_date"] for r in runs] == [f"2026-11-0{d}" for d in range(1, 8)]
    assert runs[0].trigger_key == "schedule:2026-11-01T01:00:00Z"
    assert {r.trigger for r in runs} == {"backfill"} and {r.status.value for r in runs} == {
        "queued"
    }
    again = backfill(workspace, entry, "2026-11-05", "2026-11-10")
    assert [t.day for t, _ in again.existing] == [5, 6, 7]
    assert [t.day for t, _ in again.created] == [8, 9, 10]
    assert len(workspace.metadata.list_runs(limit=100)) == 10


def test_backfill_crosses_the_dst_change_without_double_runs(project):
    project.write(PIPELINES)
    workspace = project.workspace()
    entry = project.catalog(workspace).get("nightly")
    done = backfill(workspace, entry, "2026-10-24", "2026-10-26")
    assert [t.isoformat() for t, _ in done.created] == [
        "2026-10-24T00:00:00+00:00",  # CEST
        "2026-10-25T00:00:00+00:00",  # 02:00 happens twice on the 25th: fires at the first
        "2026-10-26T01:00:00+00:00",  # CET
    ]


@pytest.mark.parametrize(
    ("name", "start", "end", "expected"),
    [
        ("unscheduled", "2026-11-01", "2026-11-02", "has no schedule"),
        ("nightly", "2026-11-05", "2026-11-01", "is before --start"),
        ("nightly", "yesterday", "2026-11-01", "not a date or datetime"),
        ("nightly", "2026-11-01T03:00", "2026-11-01T04:00", "no tick"),
    ],
)
def test_bad_backfills_say_what_is_wrong(project, name, start, end, expected):
    project.write(PIPELINES)
    workspace = project.workspace()
    with pytest.raises(UsageError, match=expected):
        backfill(workspace, project.catalog(workspace).get(name), start, end)
    assert workspace.metadata.list_runs() == []


def test_backfill_command(project):
    project.write(PIPELINES)
    args = ["backfill", "nightly", "--start", "2026-11-01", "--end", "2026-11-03"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "3 run(s) queued, 0 tick(s) already had a run" in first.stdout
    second = CliRunner().invoke(cli, [*args, "--json"])
    data = json.loads(second.stdout)
    assert data["created"] == [] and len(data["existing"]) == 3
