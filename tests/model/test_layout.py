"""The layered DAG layout: layers by longest path, crossings reduced, deterministic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lockgate.errors import CycleError, GraphError
from lockgate.model.layout import layer_of, layered_layout


def crossings(layout, edges):
    """Pairs of edges between the same two layers whose ends swap order."""
    boxes = layout.boxes
    count = 0
    for i, (a, b) in enumerate(edges):
        for c, d in edges[i + 1 :]:
            if boxes[a].layer != boxes[c].layer or boxes[b].layer != boxes[d].layer:
                continue
            first = boxes[a].rank - boxes[c].rank
            second = boxes[b].rank - boxes[d].rank
            count += first * second < 0
    return count


def test_layers_follow_the_longest_path():
    nodes = ["ingest", "features", "train", "evaluate", "report"]
    edges = [
        ("ingest", "features"),
        ("features", "train"),
        ("train", "evaluate"),
        ("features", "evaluate"),
        ("ingest", "report"),
    ]
    assert layer_of(nodes, edges) == {
        "ingest": 0,
        "features": 1,
        "train": 2,
        "evaluate": 3,
        "report": 1,
    }


def test_barycenter_ordering_untangles_a_crossed_pair():
    # Input order puts b's child first and a's child second: drawn naively the
    # two edges cross; the sweeps put each child level with its parent.
    nodes = ["a", "b", "child_of_b", "child_of_a"]
    edges = [("a", "child_of_a"), ("b", "child_of_b")]
    layout = layered_layout(nodes, edges)
    assert crossings(layout, edges) == 0
    assert layout.boxes["child_of_a"].y == layout.boxes["a"].y


def test_positions_size_and_determinism():
    nodes = ["s", "m1", "m2", "m3", "t"]
    edges = [("s", "m1"), ("s", "m2"), ("s", "m3"), ("m1", "t"), ("m2", "t"), ("m3", "t")]
    layout = layered_layout(nodes, edges, node_width=100, node_height=20, gap_x=50, gap_y=10)
    assert layout.layers == 3
    assert [layout.boxes[n].x for n in ("s", "m1", "t")] == [8, 158, 308]
    assert sorted(layout.boxes[n].y for n in ("m1", "m2", "m3")) == [8, 38, 68]
    assert layout.width == 2 * 8 + 3 * 100 + 2 * 50
    assert layout.height == 2 * 8 + 3 * 20 + 2 * 10
    assert layered_layout(nodes, edges, node_width=100, node_height=20, gap_x=50, gap_y=10) == (
        layout
    )


def test_empty_graph():
    layout = layered_layout([], [])
    assert layout.boxes == {} and layout.layers == 0


def test_unknown_node_and_cycle_are_refused():
    with pytest.raises(GraphError, match="unknown node 'ghost'"):
        layered_layout(["a"], [("a", "ghost")])
    with pytest.raises(CycleError, match="cycle through a, b"):
        layered_layout(["a", "b"], [("a", "b"), ("b", "a")])


def test_two_thousand_nodes_lay_out():
    # A map-shaped run: one source fanning out to 1,998 items joined by one sink.
    nodes = ["src", *(f"item-{i}" for i in range(1998)), "sink"]
    edges = [("src", f"item-{i}") for i in range(1998)]
    edges += [(f"item-{i}", "sink") for i in range(1998)]
    layout = layered_layout(nodes, edges)
    assert layout.layers == 3 and len(layout.boxes) == 2000
    assert len({(b.x, b.y) for b in layout.boxes.values()}) == 2000


@st.composite
def dags(draw):
    size = draw(st.integers(min_value=1, max_value=25))
    nodes = [f"n{i}" for i in range(size)]
    pairs = [(i, j) for i in range(size) for j in range(i + 1, size)]
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=60)) if pairs else []
    order = draw(st.permutations(nodes))
    return order, [(nodes[i], nodes[j]) for i, j in chosen]


@given(dags())
def test_every_edge_points_right_and_no_two_nodes_overlap(dag):
    nodes, edges = dag
    layout = layered_layout(nodes, edges)
    for up, down in edges:
        assert layout.boxes[up].layer < layout.boxes[down].layer
        assert layout.boxes[up].x < layout.boxes[down].x
    assert len({(b.x, b.y) for b in layout.boxes.values()}) == len(nodes)
    for box in layout.boxes.values():
        assert box.x + layout.node_width <= layout.width
        assert box.y + layout.node_height <= layout.height
