"""Pipelines: a function whose body wires tasks, traced once into a Graph.

The graph does not depend on parameter values (the body sees placeholders),
so one pipeline version covers every parameter set and can be drawn, diffed
and validated before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from types import CodeType
from typing import Any, overload

from lockgate.errors import DuplicatePipelineError, InvalidPolicyError, TracingError
from lockgate.model.graph import Graph
from lockgate.model.hooks import NO_HOOKS, Hook, Hooks, make_hooks
from lockgate.model.params import ParamSpec, bind_params, parse_assignments, read_params
from lockgate.model.schedules import (
    MessageTrigger,
    Schedule,
    Trigger,
    VersionTrigger,
    make_schedule,
)
from lockgate.model.tracing import GraphBuilder
from lockgate.model.units import parse_duration

# Pipelines defined per module, to catch two with one name in one module even
# when the second definition shadows the first's variable.
_DEFINED: dict[str, dict[str, Pipeline]] = {}


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """How and how often a pipeline runs.

    Attributes:
        schedule: when it runs by itself, or None.
        max_active_runs: how many of its runs may be running at once (None: no limit).
        triggers: data sensors and message triggers that start it.
        max_input_age: seconds; a run that would consume an older named version fails
            fast (or warns, with `on_stale_input="warn"`).
        sla: seconds; a run not finished this long after its creation records
            `sla_missed` once (alerts can fire on it).
        hooks: monitoring callbacks run by the coordinator (not part of the version).
    """

    schedule: Schedule | None = None
    max_active_runs: int | None = None
    triggers: tuple[Trigger, ...] = ()
    max_input_age: float | None = None
    on_stale_input: str = "fail"
    sla: float | None = None
    hooks: Hooks = NO_HOOKS


class Pipeline:
    """A traced pipeline. Create one with `@lg.pipeline`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str,
        description: str | None,
        options: PipelineOptions | None = None,
    ) -> None:
        self.fn = fn
        self.name = name
        self.options = options or PipelineOptions()
        self.description = description if description is not None else inspect.getdoc(fn)
        self.params: tuple[ParamSpec, ...] = read_params(fn, name)
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<lockgate pipeline {self.name!r}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Pipelines are run, not called; this explains how."""
        raise TracingError(
            f"pipeline {self.name!r} was called like a function. Run it with "
            f"lg.run({self.fn.__name__}, params={{...}}) or `lockgate run FILE:{self.name}`; "
            "inside another pipeline, call its tasks directly."
        )

    @cached_property
    def graph(self) -> Graph:
        """Trace the body once and return the validated graph.

        Raises:
            TracingError: a placeholder was misused in the body.
            GraphError: the resulting graph is invalid (for example, a cycle).
        """
        with GraphBuilder(self.name) as builder:
            output = self.fn(**{spec.name: builder.param(spec.name) for spec in self.params})
            return builder.build(output)

    @property
    def version(self) -> str:
        """The pipeline version: hash of the graph and every task's code version."""
        return self.graph.version

    def bind(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check Python parameter values and fill in defaults."""
        return bind_params(self.name, self.params, dict(params or {}))

    def bind_cli(self, assignments: Sequence[str]) -> dict[str, Any]:
        """Parse `-p NAME=VALUE` strings and fill in defaults."""
        raw = parse_assignments(self.name, assignments)
        return bind_params(self.name, self.params, raw, from_cli=True)

    def params_to_json(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Parameter values in the JSON form stored with a run."""
        by_name = {spec.name: spec for spec in self.params}
        return {name: by_name[name].to_json(value) for name, value in values.items()}

    def params_from_json(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Inverse of `params_to_json`."""
        by_name = {spec.name: spec for spec in self.params}
        return {name: by_name[name].from_json(v) for name, v in data.items() if name in by_name}


@overload
def pipeline(fn: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    description: str | None = None,
    schedule: str | None = None,
    timezone: str = "UTC",
    catchup: bool = False,
    max_catchup: int = 100,
    max_active_runs: int | None = None,
    triggers: Iterable[Trigger] = (),
    max_input_age: float | str | None = None,
    on_stale_input: str = "fail",
    sla: float | str | None = None,
    on_success: Hook | list[Hook] | None = None,
    on_failure: Hook | list[Hook] | None = None,
    on_retry: Hook | list[Hook] | None = None,
    on_gate_failed: Hook | list[Hook] | None = None,
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    schedule: str | None = None,
    timezone: str = "UTC",
    catchup: bool = False,
    max_catchup: int = 100,
    max_active_runs: int | None = None,
    triggers: Iterable[Trigger] = (),
    max_input_age: float | str | None = None,
    on_stale_input: str = "fail",
    sla: float | str | None = None,
    on_success: Hook | list[Hook] | None = None,
    on_failure: Hook | list[Hook] | None = None,
    on_retry: Hook | list[Hook] | None = None,
    on_gate_failed: Hook | list[Hook] | None = None,
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Turn a function whose body calls tasks into a pipeline.

    Use as `@lg.pipeline` or `@lg.pipeline(name=..., schedule=...)`. Parameters of
    the function are the pipeline's parameters; their annotations (or defaults)
    give the types used to parse `-p NAME=VALUE`.

    Args:
        name: the pipeline's name (default: the function's name).
        description: shown in listings (default: the docstring).
        schedule: a cron expression (`"0 2 * * *"`, seconds first for six fields)
            or an alias (`@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly`).
        timezone: the IANA zone the schedule is read in.
        catchup: after downtime, create every missed tick (at most `max_catchup`);
            otherwise only the latest.
        max_catchup: bound on missed ticks created at once.
        max_active_runs: at most this many runs of the pipeline run at once; the
            rest wait queued.
        triggers: `lg.on_new_version("dataset:NAME")`, `lg.on_message(url, stream=...)`.
        max_input_age: a run that would consume a named version older than this
            (seconds or "2d") fails before it starts (`on_stale_input="warn"`: runs, warned).
        sla: seconds (or "45m") a run may take from its creation; a run still running
            then, or finishing later, records `sla_missed` once.
        on_success: hook(s) called in the coordinator when a run succeeds.
        on_failure: hook(s) called when a run ends failed or gate_failed.
        on_retry: hook(s) called when any task's attempt fails and is retried.
        on_gate_failed: hook(s) called when a gate node of the run fails.

    Raises:
        DuplicatePipelineError: another pipeline in the same module has this name.
        InvalidPolicyError: an option is invalid (names the pipeline and the option).
    """

    def wrap(func: Callable[..., Any]) -> Pipeline:
        pipeline_name = name if name is not None else func.__name__
        if not isinstance(pipeline_name, str) or not _valid_name(pipeline_name):
            raise InvalidPolicyError.for_field(
                f"pipeline {pipeline_name!r}",
                "name",
                pipeline_name,
                "letters, digits, '_', '-' or '.', starting with a letter",
            )
        defined = _DEFINED.setdefault(func.__module__, {})
        previous = defined.get(pipeline_name)
        if previous is not None and _same_file_other_line(previous.fn, func):
            raise DuplicatePipelineError(
                f"module {func.__module__!r} defines two pipelines named {pipeline_name!r} "
                f"(lines {_line(previous.fn)} and {_line(func)}); give one of them another "
                "name with @lg.pipeline(name=...)."
            )
        owner = f"pipeline {pipeline_name!r}"
        if max_active_runs is not None and (
            isinstance(max_active_runs, bool)
            or not isinstance(max_active_runs, int)
            or max_active_runs < 1
        ):
            raise InvalidPolicyError.for_field(
                owner, "max_active_runs", max_active_runs, "an int >= 1 or None"
            )
        try:
            found = tuple(triggers)
        except TypeError:
            raise InvalidPolicyError.for_field(
                owner,
                "triggers",
                triggers,
                "a list of lg.on_new_version(...) or lg.on_message(...)",
            ) from None
        for trigger in found:
            if not isinstance(trigger, VersionTrigger | MessageTrigger):
                raise InvalidPolicyError.for_field(
                    owner, "triggers", trigger, "lg.on_new_version(...) or lg.on_message(...)"
                )
        if on_stale_input not in ("fail", "warn"):
            raise InvalidPolicyError.for_field(
                owner, "on_stale_input", on_stale_input, "'fail' or 'warn'"
            )
        age = None
        if max_input_age is not None:
            try:
                age = parse_duration(max_input_age)
            except ValueError:
                raise InvalidPolicyError.for_field(
                    owner, "max_input_age", max_input_age, "a duration such as '2d' or 3600"
                ) from None
        sla_seconds = None
        if sla is not None:
            try:
                sla_seconds = parse_duration(sla)
            except ValueError:
                sla_seconds = 0.0
            if sla_seconds <= 0:
                raise InvalidPolicyError.for_field(
                    owner, "sla", sla, "a positive duration such as '45m' or 3600"
                )
        hooks = make_hooks(
            owner,
            on_success=on_success,
            on_failure=on_failure,
            on_retry=on_retry,
            on_gate_failed=on_gate_failed,
        )
        options = PipelineOptions(
            schedule=(
                make_schedule(pipeline_name, schedule, timezone, catchup, max_catchup)
                if schedule is not None
                else None
            ),
            max_active_runs=max_active_runs,
            triggers=found,
            max_input_age=age,
            on_stale_input=on_stale_input,
            sla=sla_seconds,
            hooks=hooks,
        )
        created = Pipeline(func, pipeline_name, description, options)
        defined[pipeline_name] = created
        return created

    if fn is not None:
        return wrap(fn)
    return wrap


def forget_module(module: str) -> None:
    """Drop the record of pipelines defined by `module` before it is executed again."""
    _DEFINED.pop(module, None)


def _valid_name(name: str) -> bool:
    return bool(name) and name[0].isalpha() and all(c.isalnum() or c in "_-." for c in name)


def _same_file_other_line(first: Callable[..., Any], second: Callable[..., Any]) -> bool:
    # Module-level definitions only: factories and test functions define
    # pipelines repeatedly on purpose, and a re-executed notebook cell comes
    # from a new pseudo-file.
    a: CodeType | None = getattr(first, "__code__", None)
    b: CodeType | None = getattr(second, "__code__", None)
    if a is None or b is None or "<locals>" in second.__qualname__:
        return False
    return a.co_filename == b.co_filename and a.co_firstlineno != b.co_firstlineno


def _line(fn: Callable[..., Any]) -> int | str:
    code = getattr(fn, "__code__", None)
    return code.co_firstlineno if code is not None else "?"
