"""A layered (Sugiyama-style) layout of a DAG, for drawing run and lineage graphs.

Pure arithmetic on node ids and edges, no drawing: the web UI turns the
positions into SVG. Layers come from the longest path from a source (so every
edge points to a later layer); nodes within a layer are ordered by a few
barycenter sweeps (each node moves towards the mean position of its
neighbours in the layer before, then after), which removes most crossings in
the shapes pipelines have. Edges spanning several layers get no dummy nodes:
that keeps the cost at O(sweeps x (V + E) log V), so a 2,000-node run lays
out in milliseconds, at the price of a few more crossings on long edges.

Invariants: the same input gives the same layout (ties break by input
order), and for every edge (u, v), layer(u) < layer(v).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lockgate.errors import CycleError, GraphError

#: Down-then-up sweeps; more rarely improves pipeline-shaped graphs.
SWEEPS = 4


@dataclass(frozen=True, slots=True)
class Box:
    """Where one node is drawn: its layer, rank within the layer, and top-left corner."""

    layer: int
    rank: int
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Layout:
    """Positions of every node, left to right by layer, and the drawing's size."""

    boxes: dict[str, Box]
    width: float
    height: float
    node_width: float
    node_height: float

    @property
    def layers(self) -> int:
        """How many layers the graph has (0 when empty)."""
        return 1 + max((b.layer for b in self.boxes.values()), default=-1)


def layer_of(nodes: Sequence[str], edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """The longest-path layer of each node: 0 for sources, else 1 + its deepest parent.

    Raises:
        GraphError: an edge names an unknown node.
        CycleError: the edges form a cycle.
    """
    index = {node: i for i, node in enumerate(nodes)}
    children: dict[str, list[str]] = {node: [] for node in nodes}
    waiting = dict.fromkeys(nodes, 0)
    for up, down in edges:
        if up not in index or down not in index:
            missing = up if up not in index else down
            raise GraphError(f"layout: edge {up!r} -> {down!r} names unknown node {missing!r}")
        children[up].append(down)
        waiting[down] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = [node for node in nodes if waiting[node] == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for child in children[node]:
            layer[child] = max(layer[child], layer[node] + 1)
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if done != len(nodes):
        stuck = sorted((n for n in nodes if waiting[n] > 0), key=index.__getitem__)
        raise CycleError(f"layout: the edges form a cycle through {', '.join(stuck[:5])}")
    return layer


def order_layers(
    layer: dict[str, int], nodes: Sequence[str], edges: Sequence[tuple[str, str]]
) -> list[list[str]]:
    """Nodes of each layer in drawing order, after barycenter sweeps."""
    count = 1 + max(layer.values(), default=-1)
    layers: list[list[str]] = [[] for _ in range(count)]
    for node in nodes:
        layers[layer[node]].append(node)
    parents: dict[str, list[str]] = {node: [] for node in nodes}
    children: dict[str, list[str]] = {node: [] for node in nodes}
    for up, down in edges:
        parents[down].append(up)
        children[up].append(down)
    rank = {node: i for group in layers for i, node in enumerate(group)}
    for _ in range(SWEEPS):
        for group in layers[1:]:
            _sort_by_barycenter(group, parents, rank)
        for group in reversed(layers[:-1]):
            _sort_by_barycenter(group, children, rank)
    return layers


def _sort_by_barycenter(
    group: list[str], neighbours: dict[str, list[str]], rank: dict[str, int]
) -> None:
    # A node without neighbours on that side keeps its current rank as its key,
    # so it stays put instead of drifting to one end.
    def key(node: str) -> tuple[float, int]:
        around = neighbours[node]
        if not around:
            return (float(rank[node]), rank[node])
        return (sum(rank[n] for n in around) / len(around), rank[node])

    group.sort(key=key)
    for i, node in enumerate(group):
        rank[node] = i


def layered_layout(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]],
    *,
    node_width: float = 160.0,
    node_height: float = 32.0,
    gap_x: float = 56.0,
    gap_y: float = 14.0,
    margin: float = 8.0,
) -> Layout:
    """Lay `nodes` out left to right in layers, each layer a column.

    Args:
        nodes: node ids; their order breaks ties (pass a topological order).
        edges: (upstream, downstream) pairs; duplicates are harmless.

    Raises:
        GraphError: an edge names an unknown node, or the edges form a cycle.
    """
    unique = list(dict.fromkeys(edges))
    layer = layer_of(nodes, unique)
    columns = order_layers(layer, nodes, unique)
    boxes: dict[str, Box] = {}
    for number, column in enumerate(columns):
        for rank, node in enumerate(column):
            x = margin + number * (node_width + gap_x)
            y = margin + rank * (node_height + gap_y)
            boxes[node] = Box(number, rank, x, y)
    tallest = max((len(c) for c in columns), default=0)
    width = 2 * margin + len(columns) * node_width + max(0, len(columns) - 1) * gap_x
    height = 2 * margin + tallest * node_height + max(0, tallest - 1) * gap_y
    return Layout(boxes, width, height, node_width, node_height)
