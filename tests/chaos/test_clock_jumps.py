"""F7 (../shared/RELIABILITY.md §3.3): the scheduler's wall clock jumps back and forward.

The real scheduler pass (`schedule_pass`) runs against a real SQLite
workspace with an injected clock. The clock mostly moves forward in small
steps; at random points (from `chaos.rng()`) it jumps back by minutes to
hours, jumps forward by several ticks, lands within an hour of the
Berlin DST change nearest its start (in the repeated hour, say), or the scheduler restarts (a new
workspace and a new `SchedulerState` on the same database). Each sequence
exercises one pair of schedules, with catchup on (bounded by max_catchup) and
off: every minute (UTC), hourly and a daily `30 2 * * *` in Europe/Berlin,
starting near the 2026 spring-forward and fall-back dates or an ordinary day.

The runs created must be exactly the ticks the documented rules give
(docs/scheduling.md "Schedules"), computed here from the schedule's forward
tick iteration: a schedule continues from the newest tick that has a run, so
a clock that goes back and passes the same ticks again creates nothing; with
`catchup=True` a forward jump creates every missed tick, oldest first, at most
`max_catchup` of them; with `catchup=False` only the latest missed one; a
schedule that never fired starts at its first tick after the scheduler first
saw it (a restart before the first tick sees it anew, as documented). Also:
trigger keys are unique and name each run's tick, no run is for a tick after
the clock's `now`, the daily Berlin schedule runs at most once per local day,
and what each pass reports as created is what the database gained.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from lockgate.model.schedules import Schedule, tick_key
from lockgate.service.catalog import Catalog, load_catalog
from lockgate.service.compose import Workspace
from lockgate.service.config import Settings
from lockgate.service.project import Project, parse
from lockgate.service.scheduler import SchedulerState, schedule_pass

UTC = dt.UTC
BERLIN = ZoneInfo("Europe/Berlin")

PIPELINES = """
import lockgate as lg


@lg.task
def echo(day: str) -> str:
    return day


def scheduled(name, cron, timezone, catchup, max_catchup):
    @lg.pipeline(
        name=name, schedule=cron, timezone=timezone, catchup=catchup, max_catchup=max_catchup
    )
    def pipeline(logical_date: str = "none"):
        return echo(logical_date)

    return pipeline


minute_all = scheduled("minute_all", "* * * * *", "UTC", True, 5)
minute_latest = scheduled("minute_latest", "* * * * *", "UTC", False, 1)
hourly_all = scheduled("hourly_all", "0 * * * *", "Europe/Berlin", True, 5)
hourly_latest = scheduled("hourly_latest", "0 * * * *", "Europe/Berlin", False, 1)
daily_all = scheduled("daily_all", "30 2 * * *", "Europe/Berlin", True, 3)
daily_latest = scheduled("daily_latest", "30 2 * * *", "Europe/Berlin", False, 1)
"""

MINUTE, HOUR, DAY = dt.timedelta(minutes=1), dt.timedelta(hours=1), dt.timedelta(days=1)
#: Berlin's 2026 spring-forward and fall-back instants, and an ordinary day.
STARTS = (
    dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    dt.datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    dt.datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
)
PASSES = 40


@dataclass(frozen=True)
class Regime:
    """A pair of schedules and a clock on their scale."""

    pipelines: tuple[str, str]
    step: tuple[float, float]  # a normal step forward, seconds
    back: tuple[float, float]  # a jump back, seconds
    unit: dt.timedelta  # a forward jump is 2..8 of these (one tick each)


REGIMES = (
    Regime(("minute_all", "minute_latest"), (10, 75), (120, 2 * 3600), MINUTE),
    Regime(("hourly_all", "hourly_latest"), (300, 3000), (600, 6 * 3600), HOUR),
    Regime(("daily_all", "daily_latest"), (3600, 8 * 3600), (3600, 30 * 3600), DAY),
)


@dataclass
class Expected:
    """What docs/scheduling.md says one schedule does, pass by pass."""

    schedule: Schedule
    last: dt.datetime | None = None  # the newest tick with a run: in the database
    armed: dt.datetime | None = None  # when this scheduler first saw it: in memory
    ticks: list[dt.datetime] = field(default_factory=list)

    def tick(self, now: dt.datetime) -> list[dt.datetime]:
        if self.last is None and self.armed is None:
            self.armed = now
        after = self.last or self.armed
        assert after is not None
        missed = list(self.schedule.ticks(after, now))
        due = missed[-(self.schedule.max_catchup if self.schedule.catchup else 1) :]
        if due:
            self.last = due[-1]
        self.ticks += due
        return due

    def restart(self) -> None:
        self.armed = None  # forgotten; `last` is read back from the database


@dataclass
class Clock:
    """The injected wall clock and what it did."""

    now: dt.datetime
    back_over_fired: int = 0  # jumps back past a tick that already had a run
    forward_jumps: int = 0
    restarts: int = 0
    runs: int = 0  # runs checked in the database


@pytest.fixture(scope="module")
def template() -> Iterator[tuple[Project, Catalog, Path]]:
    """The project, its catalog, and a migrated empty database to copy per sequence."""
    # tmpfs when there is one: thousands of commits, each fsynced by synchronous=FULL.
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="lockgate-clock-", dir=base))
    try:
        (root / "pipelines.py").write_text(PIPELINES)
        (root / "lockgate.toml").write_text('[project]\npipelines = ["pipelines.py"]\n')
        project = parse(root / "lockgate.toml")
        catalog = load_catalog(project)
        workspace = Workspace(Settings.from_env({}, home=root / "template"), project=project)
        workspace.metadata.list_runs(limit=1)  # creates and migrates the database
        workspace.close()
        yield project, catalog, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def runs_in(workspace: Workspace, pipeline: str) -> list[tuple[str, float, str]]:
    engine = sa.create_engine(workspace.settings.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT r.trigger_key, r.logical_date, r.trigger FROM runs r "
                    "JOIN pipelines p ON p.id = r.pipeline_id WHERE p.name = :p"
                ),
                {"p": pipeline},
            ).all()
    finally:
        engine.dispose()
    return [(key, logical, trigger) for key, logical, trigger in rows]


def sequence(
    rng: random.Random, regime: Regime, template: tuple[Project, Catalog, Path], n: int
) -> tuple[list[str], Clock]:
    """Drive one random clock sequence; the problems found."""
    project, catalog, root = template
    home = root / f"seq-{n}"
    shutil.copytree(root / "template", home)
    settings = Settings.from_env({}, home=home)
    subset = Catalog({name: catalog.get(name) for name in regime.pipelines}, project)
    schedules = {e.pipeline.name: e.pipeline.options.schedule for e in subset}
    expected = {name: Expected(s) for name, s in schedules.items() if s is not None}
    start = rng.choice(STARTS) - dt.timedelta(seconds=rng.uniform(0, PASSES * regime.step[1] / 2))
    clock = Clock(start)
    change = min(STARTS[:2], key=lambda t: abs(t - start))  # the DST change nearest the start
    problems: list[str] = []
    workspace = Workspace(settings, project=project)
    state = SchedulerState()
    created: dict[str, list[dt.datetime]] = {name: [] for name in expected}
    try:
        for step in range(PASSES):
            roll = rng.random()
            if roll < 0.08:  # land in or near a repeated (or skipped) hour of Berlin
                clock.now = change + dt.timedelta(minutes=rng.uniform(-30, 60))
            elif roll < 0.18:
                clock.now -= dt.timedelta(seconds=rng.uniform(*regime.back))
                if any(e.last is not None and clock.now < e.last for e in expected.values()):
                    clock.back_over_fired += 1
            elif roll < 0.28:
                jump = regime.unit * rng.randint(2, 8)
                clock.now += jump + dt.timedelta(seconds=rng.uniform(0, 0.9 * regime.step[0]))
                clock.forward_jumps += 1
            else:
                clock.now += dt.timedelta(seconds=rng.uniform(*regime.step))
            if rng.random() < 0.08:  # a restarted scheduler: new process, same database
                workspace.close()
                workspace = Workspace(settings, project=project)
                state = SchedulerState()
                for e in expected.values():
                    e.restart()
                clock.restarts += 1
            want = {name: e.tick(clock.now) for name, e in expected.items()}
            made = schedule_pass(workspace, subset, clock.now, state)
            got: dict[str, list[dt.datetime]] = {name: [] for name in expected}
            for result in made:
                run = workspace.metadata.get_run(result.run_id)
                assert run.logical_date is not None
                got[run.pipeline].append(dt.datetime.fromtimestamp(run.logical_date, UTC))
            at = f"pass {step} at {clock.now.isoformat()}"
            for name in expected:
                created[name] += got[name]
                if got[name] != want[name]:
                    problems.append(
                        f"{name}, {at}: created {_iso(got[name])}, expected {_iso(want[name])}"
                    )
                future = [t for t in got[name] if t > clock.now]
                if future:
                    problems.append(f"{name}, {at}: created ticks in the future {_iso(future)}")
        for name, e in expected.items():
            problems += _check_database(workspace, clock, name, e, created[name])
    finally:
        workspace.close()
        shutil.rmtree(home, ignore_errors=True)
    return problems, clock


def _check_database(
    workspace: Workspace,
    clock: Clock,
    name: str,
    expected: Expected,
    created: list[dt.datetime],
) -> list[str]:
    problems = []
    rows = runs_in(workspace, name)
    clock.runs += len(rows)
    keys = [key for key, _, _ in rows]
    if len(keys) != len(set(keys)):
        problems.append(f"{name}: duplicated trigger keys {sorted(keys)}")
    for key, logical, trigger in rows:
        tick = dt.datetime.fromtimestamp(logical, UTC)
        if key != tick_key(tick) or trigger != "schedule":
            problems.append(f"{name}: run {key} ({trigger}) is for tick {tick.isoformat()}")
    in_db = sorted(dt.datetime.fromtimestamp(logical, UTC) for _, logical, _ in rows)
    if in_db != sorted(created):
        problems.append(f"{name}: the database holds {_iso(in_db)}, passes created {_iso(created)}")
    if in_db != sorted(expected.ticks):
        problems.append(f"{name}: runs for {_iso(in_db)}, expected {_iso(expected.ticks)}")
    if name.startswith("daily"):
        days = [t.astimezone(BERLIN).date() for t in in_db]
        if len(days) != len(set(days)):
            problems.append(f"{name}: more than one run on a Berlin day: {_iso(in_db)}")
    return problems


def _iso(ticks: list[dt.datetime]) -> list[str]:
    return [t.astimezone(UTC).strftime("%m-%dT%H:%M") for t in ticks]


@pytest.mark.timeout(1200)  # the full (make chaos) size
@pytest.mark.scenario("9. clock jumps: each scheduler tick once")
def test_clock_jumps_neither_replay_nor_skip_ticks(chaos, template, monkeypatch):
    # Each queued run records the Git commit of the pipeline file: a subprocess per
    # tick that has nothing to do with ticks (the project is not in a repository).
    monkeypatch.setattr("lockgate.service.enqueue.git_state", lambda path: (None, None))
    rng = chaos.rng()
    totals = Clock(STARTS[0])
    for n in range(chaos.size(21, 501)):
        regime = REGIMES[n % len(REGIMES)]
        problems, clock = sequence(rng, regime, template, n)
        totals.back_over_fired += clock.back_over_fired
        totals.forward_jumps += clock.forward_jumps
        totals.restarts += clock.restarts
        chaos.record(
            [f"sequence {n} ({regime.pipelines[0]}): {p}" for p in problems], verified=clock.runs
        )
    # The faults happened: the clock went back over fired ticks, jumped, restarted.
    assert totals.back_over_fired and totals.forward_jumps and totals.restarts, totals
    chaos.check()
