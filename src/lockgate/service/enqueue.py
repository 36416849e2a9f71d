"""Queue a run for `lockgate server` to launch: the one path every trigger takes.

Schedule ticks, backfills, data sensors, messages and the HTTP API all call
`enqueue`. A queued run is driven later by another process that reads its
parameters back from the database, so a secret parameter must be an
`env:VAR` reference here: a literal value would not be there to read.
A trigger key makes it idempotent: the database's unique key on
(pipeline, trigger key) lets exactly one of several racing servers create
the run, and the others get the existing run back.
"""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from lockgate.engine.coordinator import Coordinator, RunSpec
from lockgate.errors import ParameterError, RunExistsError
from lockgate.model.params import literal_secrets
from lockgate.model.pipeline import Pipeline
from lockgate.model.states import Trigger
from lockgate.service.compose import Workspace
from lockgate.service.gitinfo import git_state
from lockgate.service.runs import pipeline_ref_of

#: The parameter a scheduled run's tick is passed in, when the pipeline declares it.
LOGICAL_DATE = "logical_date"


@dataclass(frozen=True, slots=True)
class Enqueued:
    """A queued run, and whether this call created it (False: the trigger had one)."""

    run_id: str
    created: bool


def enqueue(
    workspace: Workspace,
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    trigger: Trigger,
    trigger_key: str | None = None,
    logical_date: dt.datetime | None = None,
    pins: Mapping[tuple[str, str], int] | None = None,
    pipeline_ref: str | None = None,
    json_params: bool = False,
    actor: str | None = None,
) -> Enqueued:
    """Record a queued run of `pipeline` (named versions resolved now).

    Args:
        workspace: where the run is recorded.
        pipeline: what to run.
        params: parameter values; with `json_params`, in their JSON form (dates
            as ISO strings), as an HTTP body carries them.
        trigger: who asked (schedule, sensor, api, backfill, message, cli).
        trigger_key: at most one run per pipeline and key (a tick, a version, a message).
        logical_date: the schedule tick the run stands for; passed as the
            `logical_date` parameter when the pipeline declares one.
        pins: `(kind, name) -> version` for latest-version references.
        pipeline_ref: how the launcher loads the code (default: where it was defined).
        actor: who asked (`api:<token name>`), recorded in the `run_created` event.

    Raises:
        ParameterError: unknown, missing or mistyped parameters, or a secret
            parameter given as a literal value instead of `env:VAR`.
        VersionNotFoundError: a referenced version does not exist.
        ConfigError: a task uses a pool that is not configured.
    """
    values = dict(params or {})
    if json_params:
        known = {spec.name for spec in pipeline.params}
        parsed = pipeline.params_from_json({k: v for k, v in values.items() if k in known})
        values = {**values, **parsed}
    if logical_date is not None:
        declared = {spec.name: spec for spec in pipeline.params}
        if LOGICAL_DATE in declared and LOGICAL_DATE not in values:
            values[LOGICAL_DATE] = _logical_value(
                pipeline, logical_date, declared[LOGICAL_DATE].kind
            )
    bound = pipeline.bind(values)
    literals = literal_secrets(bound)
    if literals:
        name = literals[0]
        raise ParameterError(
            f"secret parameter {name!r} of pipeline {pipeline.name!r} was given a literal "
            "value, but this run is queued for lockgate server, which reads a run's "
            "parameters from the database, where a secret's value is never stored. Pass a "
            f"reference to an environment variable set where the server runs (for example "
            f"{name}=env:{name.upper()})"
        )
    try:
        source = inspect.getsourcefile(pipeline.fn)
    except TypeError:
        source = None
    git_sha, git_dirty = git_state(source) if source else (None, None)
    creator = Coordinator(
        workspace.metadata,
        None,
        pools=workspace.project.pools,
        stale_after=workspace.settings.heartbeat_timeout,
    )
    spec = RunSpec(
        pipeline,
        bound,
        trigger.value,
        git_sha=git_sha,
        git_dirty=git_dirty,
        pipeline_ref=pipeline_ref or pipeline_ref_of(pipeline),
        trigger_key=trigger_key,
        logical_date=logical_date.timestamp() if logical_date is not None else None,
        pins=dict(pins or {}),
        queued=True,
        actor=actor,
    )
    try:
        run_id, _ = creator.create(spec)
    except RunExistsError as exc:
        return Enqueued(exc.run_id, False)
    return Enqueued(run_id, True)


def _logical_value(pipeline: Pipeline, tick: dt.datetime, kind: str) -> Any:
    schedule = pipeline.options.schedule
    local = tick.astimezone(ZoneInfo(schedule.timezone)) if schedule else tick
    if kind == "date":
        return local.date()
    if kind == "datetime":
        return local
    return local.isoformat()


def now_utc() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.fromtimestamp(time.time(), dt.UTC)
