"""Pipeline parameters: read from the signature, parsed from `-p k=v`, stored as JSON.

A parameter's type comes from its annotation, or from its default when there is
none. Supported: str, int, float, bool, date, datetime, list, dict (as JSON),
`lg.Secret`, Optional[...] of those. Values are stored as JSON and turned back
into their type when a run hands them to a task.

A `lg.Secret` parameter takes a string (the value, or `env:VAR`) and reaches
tasks as a `Secret`; what a run stores is `Secret.stored` (the reference, or
the marker `<secret>`), so its value never reaches the database, and messages
here never quote it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lockgate.errors import DefinitionError, ParameterError
from lockgate.model.secrets import Secret

_MISSING = inspect.Parameter.empty
_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One pipeline parameter."""

    name: str
    kind: str  # str | int | float | bool | date | datetime | json | any | secret
    optional: bool
    default: Any = _MISSING

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is _MISSING

    def describe(self) -> str:
        """`name: type = default`, for help and error messages."""
        text = f"{self.name}: {self.kind}{' | None' if self.optional else ''}"
        if not self.required:
            text += f" = {self.default!r}"
        return text

    def parse(self, pipeline: str, raw: str) -> Any:
        """Parse a command-line string into this parameter's type."""
        if self.optional and raw.strip().lower() in ("none", "null"):
            return None
        if self.kind == "secret":
            return Secret(raw, owner=self._owner(pipeline))
        try:
            return _PARSERS[self.kind](raw)
        except (ValueError, TypeError) as exc:
            raise ParameterError(
                f"pipeline {pipeline!r}: parameter {self.name!r} expects {self.kind}, "
                f"got {raw!r} ({exc}). Example: -p {self.name}={_EXAMPLES[self.kind]}"
            ) from None

    def coerce(self, pipeline: str, value: Any) -> Any:
        """Check a Python value for this parameter; parse it if given as a string."""
        if value is None and self.optional:
            return value
        if self.kind == "secret":
            if isinstance(value, Secret):
                return value
            return Secret(value, owner=self._owner(pipeline))
        if isinstance(value, str) and self.kind not in ("str", "any"):
            return self.parse(pipeline, value)
        ok = {
            "str": lambda v: isinstance(v, str),
            "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "float": _is_finite_number,
            "bool": lambda v: isinstance(v, bool),
            "date": lambda v: isinstance(v, dt.date) and not isinstance(v, dt.datetime),
            "datetime": lambda v: isinstance(v, dt.datetime),
            "json": _is_json,
            "any": _is_json,
        }[self.kind](value)
        if not ok:
            raise ParameterError(
                f"pipeline {pipeline!r}: parameter {self.name!r} expects {self.kind}, "
                f"got {type(value).__name__} {value!r}"
            )
        return float(value) if self.kind == "float" else value

    def _owner(self, pipeline: str) -> str:
        return f"secret parameter {self.name!r} of pipeline {pipeline!r}"

    def to_json(self, value: Any) -> Any:
        """The JSON form stored with the run (for a secret: its reference or `<secret>`)."""
        if isinstance(value, Secret):
            return value.stored
        if isinstance(value, dt.date):
            return value.isoformat()
        return value

    def from_json(self, value: Any) -> Any:
        """Inverse of `to_json`."""
        if value is None:
            return None
        if self.kind == "secret":
            return Secret.from_stored(str(value), owner=f"secret parameter {self.name!r}")
        if self.kind == "date":
            return dt.date.fromisoformat(value)
        if self.kind == "datetime":
            return dt.datetime.fromisoformat(value)
        return value


def _parse_bool(raw: str) -> bool:
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean (true/false, yes/no, 1/0)")


def _parse_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def _parse_json(raw: str) -> Any:
    return json.loads(raw, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _parse_any(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


_PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": _parse_float,
    "bool": _parse_bool,
    "date": dt.date.fromisoformat,
    "datetime": dt.datetime.fromisoformat,
    "json": _parse_json,
    "any": _parse_any,
}
_EXAMPLES = {
    "str": "text",
    "int": "3",
    "float": "0.1",
    "bool": "true",
    "date": "2026-11-25",
    "datetime": "2026-11-25T02:00:00+00:00",
    "json": "'[1, 2]'",
    "any": "value",
    "secret": "env:API_KEY",
}
_KINDS: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    dt.date: "date",
    dt.datetime: "datetime",
    list: "json",
    dict: "json",
    tuple: "json",
    Secret: "secret",
}


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _kind_of(annotation: Any, default: Any) -> tuple[str, bool]:
    if annotation is _MISSING or annotation is Any:
        if default is _MISSING or default is None:
            return "any", default is None
        return _KINDS.get(type(default), "any"), False
    optional = False
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if len(members) != 1:
            return "any", optional
        annotation = members[0]
        origin = typing.get_origin(annotation)
    if origin is not None:
        annotation = origin
    return _KINDS.get(annotation, "any"), optional


def read_params(fn: Callable[..., Any], pipeline: str) -> tuple[ParamSpec, ...]:
    """Read a pipeline function's parameters from its signature and annotations."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    specs = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise DefinitionError(
                f"pipeline {pipeline!r}: parameter {param.name!r} must be an ordinary named "
                "parameter (no *args, **kwargs or positional-only), so runs can pass it by name"
            )
        kind, optional = _kind_of(hints.get(param.name, _MISSING), param.default)
        default = param.default
        if kind == "secret" and default is not _MISSING and default is not None:
            try:
                default = ParamSpec(param.name, kind, optional).coerce(pipeline, default)
            except ParameterError as exc:
                raise DefinitionError(f"the default of {exc}") from None
        spec = ParamSpec(param.name, kind, optional, default)
        if (
            not spec.required
            and spec.default is not None
            and not _is_json(spec.to_json(spec.default))
        ):
            raise DefinitionError(
                f"pipeline {pipeline!r}: the default of parameter {param.name!r} "
                f"({spec.default!r}) must be JSON-like so runs can store it"
            )
        if not spec.required and spec.default is not None and kind not in ("any", "secret"):
            try:
                spec.coerce(pipeline, spec.default)
            except ParameterError:
                raise DefinitionError(
                    f"pipeline {pipeline!r}: the default of parameter {param.name!r} "
                    f"({spec.default!r}) is not a {spec.kind}, its annotated type; "
                    "fix the default or the annotation"
                ) from None
        specs.append(spec)
    return tuple(specs)


def parse_assignments(pipeline: str, assignments: Sequence[str]) -> dict[str, str]:
    """Split `["day=2026-11-24", "lr=0.1"]` into a dict of raw strings."""
    raw: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ParameterError(
                f"pipeline {pipeline!r}: -p {item!r} is not of the form NAME=VALUE "
                "(example: -p day=2026-11-24)"
            )
        raw[name.strip()] = value
    return raw


def bind_params(
    pipeline: str,
    specs: Sequence[ParamSpec],
    given: Mapping[str, Any],
    *,
    from_cli: bool = False,
) -> dict[str, Any]:
    """Check `given` against the parameters and fill in defaults.

    Args:
        pipeline: the pipeline's name, for messages.
        specs: its parameters.
        given: values by name; strings are parsed to the parameter's type.
        from_cli: every value is a raw command-line string.

    Raises:
        ParameterError: a name is unknown, a required one is missing, or a value
            does not fit its type.
    """
    by_name = {spec.name: spec for spec in specs}
    unknown = [name for name in given if name not in by_name]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(str(name), list(by_name), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        known = ", ".join(s.describe() for s in specs) or "none"
        raise ParameterError(
            f"pipeline {pipeline!r} has no parameter {name!r}.{hint} Its parameters: {known}."
        )
    values: dict[str, Any] = {}
    missing = []
    for spec in specs:
        if spec.name in given:
            value = given[spec.name]
            values[spec.name] = (
                spec.parse(pipeline, value) if from_cli else spec.coerce(pipeline, value)
            )
        elif spec.required:
            missing.append(spec)
        else:
            values[spec.name] = spec.default
    if missing:
        flags = " ".join(f"-p {s.name}={_EXAMPLES[s.kind]}" for s in missing)
        raise ParameterError(
            f"pipeline {pipeline!r} needs parameter(s) "
            f"{', '.join(repr(s.name) for s in missing)}, which have no default. "
            f"Pass them, e.g. {flags}"
        )
    return values


def literal_secrets(values: Mapping[str, Any]) -> list[str]:
    """Names of the secret parameters in `values` given as literals (not `env:VAR`).

    Their values live only in the memory of the process that started the run;
    whatever reads the run's parameters back from the database gets `<secret>`.
    """
    return [n for n, v in values.items() if isinstance(v, Secret) and v.reference is None]


def unavailable_secrets(values: Mapping[str, Any]) -> list[str]:
    """Names of the secret parameters in `values` whose literal value was not kept."""
    return [n for n, v in values.items() if isinstance(v, Secret) and not v.available]
