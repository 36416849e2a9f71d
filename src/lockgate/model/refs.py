"""Arguments as recorded in a graph: literals, node outputs and pipeline params.

A pipeline body runs once, at trace time, with placeholders instead of values.
Each task call records its arguments as a *template*: plain JSON-like data in
which `NodeRef` and `ParamRef` stand for values that exist only at run time.
Templates are hashed into the pipeline version and stored with the graph, so
constants must be JSON-like.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lockgate.errors import TracingError
from lockgate.model.versions import VersionRef


@dataclass(frozen=True, slots=True)
class NodeRef:
    """The output of node `node` (a list of item outputs if it is a map node)."""

    node: str


@dataclass(frozen=True, slots=True)
class ParamRef:
    """The value of pipeline parameter `name`."""

    name: str


Ref = NodeRef | ParamRef | VersionRef
_REF_TYPES = (NodeRef, ParamRef, VersionRef)


def walk_refs(template: Any) -> Iterator[Ref]:
    """Yield every ref in `template`, depth first, in order."""
    if isinstance(template, _REF_TYPES):
        yield template
    elif isinstance(template, list | tuple):
        for item in template:
            yield from walk_refs(item)
    elif isinstance(template, dict):
        for item in template.values():
            yield from walk_refs(item)


def substitute(template: Any, resolve: Callable[[Ref], Any]) -> Any:
    """Return `template` with every ref replaced by `resolve(ref)`."""
    if isinstance(template, _REF_TYPES):
        return resolve(template)
    if isinstance(template, list):
        return [substitute(item, resolve) for item in template]
    if isinstance(template, tuple):
        return tuple(substitute(item, resolve) for item in template)
    if isinstance(template, dict):
        return {key: substitute(item, resolve) for key, item in template.items()}
    return template


def encode(template: Any) -> Any:
    """Turn a template into canonical JSON data (refs and tuples tagged)."""
    if isinstance(template, NodeRef):
        return {"$ref": template.node}
    if isinstance(template, ParamRef):
        return {"$param": template.name}
    if isinstance(template, VersionRef):
        return {"$version": [template.kind, template.name, template.version]}
    if isinstance(template, tuple):
        return {"$tuple": [encode(item) for item in template]}
    if isinstance(template, list):
        return [encode(item) for item in template]
    if isinstance(template, dict):
        return {key: encode(item) for key, item in template.items()}
    return template


def decode(data: Any) -> Any:
    """Inverse of `encode`."""
    if isinstance(data, list):
        return [decode(item) for item in data]
    if isinstance(data, dict):
        if len(data) == 1:
            ((key, value),) = data.items()
            if key == "$ref":
                return NodeRef(value)
            if key == "$param":
                return ParamRef(value)
            if key == "$tuple":
                return tuple(decode(item) for item in value)
            if key == "$version":
                return VersionRef(*value)
        return {key: decode(item) for key, item in data.items()}
    return data


def check_literal(value: Any, where: Callable[[], str]) -> None:
    """Raise TracingError unless `value` (refs aside) is JSON-like.

    Args:
        value: a template.
        where: builds the description of the argument for the message, lazily.
    """
    if value is None or isinstance(value, str | bool | int | NodeRef | ParamRef | VersionRef):
        return
    if isinstance(value, float):
        if math.isfinite(value):
            return
    elif isinstance(value, list | tuple):
        for item in value:
            check_literal(item, where)
        return
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                break
            check_literal(item, where)
        else:
            return
    raise TracingError(
        f"{where()} is a constant of type {type(value).__name__}: constants in a pipeline "
        "body must be JSON-like (str, int, finite float, bool, None, lists, tuples, dicts "
        "with str keys) so the graph can be hashed and stored. Build the object inside a "
        "task, or pass it in as the output of another task."
    )
