"""The Graph: a pipeline's nodes and edges, validated, ordered and hashed.

A Graph is immutable once built. Its version is the sha256 of a canonical
JSON encoding that includes every node's task code version, so changing a
task's source, an argument or an edge gives a new pipeline version.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lockgate.errors import CycleError, GraphError
from lockgate.model.refs import NodeRef, ParamRef, encode, walk_refs
from lockgate.model.versions import VersionRef

if TYPE_CHECKING:
    from lockgate.model.task import Task


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One task invocation in a graph.

    Attributes:
        id: stable, readable id: the task name, `name_2` for its second call.
        task: the task it invokes.
        args: positional argument templates.
        kwargs: keyword argument templates.
        mapped: a map node calls the task once per item of `args[0]`.
        after: ids of nodes that must finish first without passing data.
    """

    id: str
    task: Task
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    mapped: bool = False
    after: tuple[str, ...] = ()

    @property
    def data_inputs(self) -> tuple[str, ...]:
        """Ids of nodes whose outputs this node consumes, in argument order, unique."""
        seen: dict[str, None] = {}
        for ref in walk_refs((self.args, self.kwargs)):
            if isinstance(ref, NodeRef):
                seen.setdefault(ref.node, None)
        return tuple(seen)

    @property
    def upstream(self) -> tuple[str, ...]:
        """Ids of every node this one waits for (data inputs, then `after`)."""
        return tuple(dict.fromkeys(self.data_inputs + self.after))

    @property
    def versions(self) -> tuple[VersionRef, ...]:
        """The named versions (datasets, models, prompts) this node consumes."""
        found = (r for r in walk_refs((self.args, self.kwargs)) if isinstance(r, VersionRef))
        return tuple(dict.fromkeys(found))

    @property
    def params(self) -> tuple[str, ...]:
        """Names of the pipeline parameters this node reads."""
        names = (r.name for r in walk_refs((self.args, self.kwargs)) if isinstance(r, ParamRef))
        return tuple(dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON data for this node (what is hashed and stored)."""
        return {
            "id": self.id,
            "task": self.task.name,
            "task_version": self.task.version,
            "target": self.task.target,
            "args": encode(list(self.args)),
            "kwargs": encode(dict(self.kwargs)),
            "mapped": self.mapped,
            "after": list(self.after),
        }


class Graph:
    """A validated DAG of nodes, in a deterministic topological order."""

    def __init__(self, pipeline: str, nodes: Mapping[str, Node], output: Any = None) -> None:
        """Validate and build the graph.

        Raises:
            GraphError: a node refers to a node that does not exist.
            CycleError: the edges form a cycle.
        """
        self.pipeline = pipeline
        self.nodes: dict[str, Node] = dict(nodes)
        self.output = output
        self._downstream: dict[str, list[str]] = {node_id: [] for node_id in self.nodes}
        # Each node's upstream walks its arguments; done once here, not per question.
        self._upstream: dict[str, tuple[str, ...]] = {
            node_id: node.upstream for node_id, node in self.nodes.items()
        }
        for node in self.nodes.values():
            for up in self._upstream[node.id]:
                if up not in self.nodes:
                    raise GraphError(
                        f"pipeline {pipeline!r}: node {node.id!r} depends on {up!r}, "
                        "which is not a node of this pipeline; pass the placeholder returned "
                        "by a task call made in the same pipeline body."
                    )
                self._downstream[up].append(node.id)
        for ref in walk_refs(output):
            if isinstance(ref, NodeRef) and ref.node not in self.nodes:
                raise GraphError(f"pipeline {pipeline!r} returns unknown node {ref.node!r}")
        self.order: tuple[str, ...] = self._topological_order()

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return (self.nodes[node_id] for node_id in self.order)

    def upstream(self, node_id: str) -> tuple[str, ...]:
        """Ids of the nodes `node_id` waits for."""
        return self._upstream[node_id]

    def downstream(self, node_id: str) -> tuple[str, ...]:
        """Ids of the nodes that wait for `node_id`."""
        return tuple(self._downstream[node_id])

    def descendants(self, node_id: str) -> list[str]:
        """Every node reachable downstream of `node_id`, in topological order."""
        found: set[str] = set()
        stack = list(self._downstream[node_id])
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(self._downstream[current])
        return [n for n in self.order if n in found]

    @cached_property
    def versions(self) -> tuple[VersionRef, ...]:
        """Every named version the graph consumes, once each, in node order."""
        return tuple(dict.fromkeys(v for node in self for v in node.versions))

    @cached_property
    def roots(self) -> tuple[str, ...]:
        """Nodes with nothing upstream."""
        return tuple(n for n in self.order if not self._upstream[n])

    def to_dict(self) -> dict[str, Any]:
        """Canonical JSON data: what is hashed into the version and stored."""
        return {
            "pipeline": self.pipeline,
            "nodes": [self.nodes[n].to_dict() for n in self.order],
            "output": encode(self.output),
        }

    @cached_property
    def version(self) -> str:
        """sha256 hex of the canonical encoding, without import paths: the pipeline version.

        Where a task is imported from (`target`) is left out: a file loaded as
        `pipelines` by one process and as `pipelines_3f2a…` by another (whose
        sys.modules already had a `pipelines`) is the same code.
        """
        data = self.to_dict()
        data["nodes"] = [{k: v for k, v in n.items() if k != "target"} for n in data["nodes"]]
        encoded = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()

    def _topological_order(self) -> tuple[str, ...]:
        # Kahn's algorithm, taking ready nodes in trace order so the order is
        # stable and reads like the pipeline body. A heap of trace positions keeps
        # it O(E + V log V): re-sorting the ready list was quadratic for a wide fan-out.
        ids = list(self.nodes)
        position = {node_id: i for i, node_id in enumerate(ids)}
        waiting = {node_id: len(self._upstream[node_id]) for node_id in ids}
        ready = [position[n] for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            current = ids[heapq.heappop(ready)]
            order.append(current)
            for down in self._downstream[current]:
                waiting[down] -= 1
                if waiting[down] == 0:
                    heapq.heappush(ready, position[down])
        if len(order) != len(self.nodes):
            raise CycleError(self._describe_cycle(set(self.nodes) - set(order)))
        return tuple(order)

    def _describe_cycle(self, stuck: set[str]) -> str:
        # Walk upstream inside the stuck set until a node repeats: that is a cycle.
        start = next(n for n in self.nodes if n in stuck)
        path = [start]
        while True:
            node = self.nodes[path[-1]]
            nxt = next(u for u in node.upstream if u in stuck)
            if nxt in path:
                cycle = [*path[path.index(nxt) :], nxt]
                break
            path.append(nxt)
        cycle.reverse()  # upstream walk -> read it in execution direction
        edges = []
        for a, b in itertools.pairwise(cycle):
            kind = (
                "after="
                if a in self.nodes[b].after and a not in self.nodes[b].data_inputs
                else "data"
            )
            edges.append(f"{a} -> {b} ({kind})")
        return (
            f"pipeline {self.pipeline!r} has a cycle: {' -> '.join(cycle)}. "
            f"Edges: {'; '.join(edges)}. A pipeline must be a DAG: remove one of the "
            "after= ordering edges in this cycle."
        )
