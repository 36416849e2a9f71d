"""Turn a node's argument templates into invocation arguments.

Node outputs become `Load`s (the worker fetches them by hash), parameters
become their values, literals stay as they are. A map node's width and its
i-th item are computed here too, from refs alone: the coordinator never
loads task data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from lockgate.model.graph import Node
from lockgate.model.refs import NodeRef, ParamRef, Ref, substitute
from lockgate.model.versions import VersionRef
from lockgate.ports.artifacts import ArtifactRef
from lockgate.ports.executor import Load

# A whole node's output, or the item outputs of a map node in order.
Outputs = Callable[[str], "ArtifactRef | list[ArtifactRef]"]


class MapWidthError(Exception):
    """A map node's items are not a list; the message says what they are."""


def _load(node_id: str, output: ArtifactRef | list[ArtifactRef]) -> Any:
    if isinstance(output, list):
        return [
            Load(ref, what=f"item {i} of the output of node {node_id!r}")
            for i, ref in enumerate(output)
        ]
    return Load(output, what=f"output of node {node_id!r}")


def resolve(
    template: Any,
    outputs: Outputs,
    params: Mapping[str, Any],
    versions: Mapping[VersionRef, ArtifactRef] | None = None,
) -> Any:
    """Replace refs in `template` by `Load`s and parameter values."""

    def one(ref: Ref) -> Any:
        if isinstance(ref, NodeRef):
            return _load(ref.node, outputs(ref.node))
        if isinstance(ref, ParamRef):
            return params[ref.name]
        return Load((versions or {})[ref], what=str(ref))

    return substitute(template, one)


def map_width(
    node: Node,
    outputs: Outputs,
    params: Mapping[str, Any],
    versions: Mapping[VersionRef, ArtifactRef] | None = None,
) -> int:
    """How many items the map node `node` iterates over.

    Raises:
        MapWidthError: the items are not a list or tuple.
    """
    items = node.args[0]
    if isinstance(items, VersionRef):
        ref = (versions or {})[items]
        if ref.length is None:
            raise MapWidthError(
                f"{node.task.name}.map() iterates over {items}, which is a {ref.type_name}, "
                "not a list or tuple"
            )
        return ref.length
    if isinstance(items, NodeRef):
        output = outputs(items.node)
        if isinstance(output, list):
            return len(output)
        if output.length is None:
            raise MapWidthError(
                f"{node.task.name}.map() iterates over the output of node {items.node!r}, "
                f"which is a {output.type_name}, not a list or tuple; return a list from "
                f"{items.node!r}."
            )
        return output.length
    if isinstance(items, ParamRef):
        value = params[items.name]
        if not isinstance(value, list | tuple):
            raise MapWidthError(
                f"{node.task.name}.map() iterates over parameter {items.name!r}, which is "
                f"{type(value).__name__} {value!r}, not a list; pass a JSON list such as "
                f"-p {items.name}='[1, 2]'."
            )
        return len(value)
    return len(items)


def map_item(
    node: Node,
    index: int,
    outputs: Outputs,
    params: Mapping[str, Any],
    versions: Mapping[VersionRef, ArtifactRef] | None = None,
) -> Any:
    """The first argument of item `index` of map node `node`."""
    items = node.args[0]
    if isinstance(items, VersionRef):
        return Load((versions or {})[items], index=index, what=f"item {index} of {items}")
    if isinstance(items, NodeRef):
        output = outputs(items.node)
        what = f"item {index} of the output of node {items.node!r}"
        if isinstance(output, list):
            return Load(output[index], what=what)
        return Load(output, index=index, what=what)
    if isinstance(items, ParamRef):
        return params[items.name][index]
    return resolve(items[index], outputs, params, versions)


def loads_in(value: Any) -> Iterator[Load]:
    """Every `Load` in invocation arguments."""
    if isinstance(value, Load):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from loads_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from loads_in(item)
