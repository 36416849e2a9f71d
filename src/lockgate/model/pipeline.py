"""Pipelines: a function whose body wires tasks, traced once into a Graph.

The graph does not depend on parameter values (the body sees placeholders),
so one pipeline version covers every parameter set and can be drawn, diffed
and validated before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from types import CodeType
from typing import Any, overload

from lockgate.errors import DuplicatePipelineError, InvalidPolicyError, TracingError
from lockgate.model.graph import Graph
from lockgate.model.params import ParamSpec, bind_params, parse_assignments, read_params
from lockgate.model.tracing import GraphBuilder

# Pipelines defined per module, to catch two with one name in one module even
# when the second definition shadows the first's variable.
_DEFINED: dict[str, dict[str, Pipeline]] = {}


class Pipeline:
    """A traced pipeline. Create one with `@lg.pipeline`."""

    def __init__(self, fn: Callable[..., Any], name: str, description: str | None) -> None:
        self.fn = fn
        self.name = name
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
    *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Turn a function whose body calls tasks into a pipeline.

    Use as `@lg.pipeline` or `@lg.pipeline(name=...)`. Parameters of the
    function are the pipeline's parameters; their annotations (or defaults)
    give the types used to parse `-p NAME=VALUE`.

    Raises:
        DuplicatePipelineError: another pipeline in the same module has this name.
        InvalidPolicyError: the name is not valid.
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
        created = Pipeline(func, pipeline_name, description)
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
