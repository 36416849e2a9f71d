"""Graphs drawn as text, DOT and Mermaid show every node and edge."""

from __future__ import annotations

import lockgate as lg
from lockgate.model.drawing import draw


@lg.task
def a():
    return 1


@lg.task
def b(x):
    return x


@lg.pipeline
def p(items: list = [1, 2]):  # noqa: B006
    first = a()
    second = b(first)
    mapped = b.map(items, after=[second])
    return mapped


def test_text_lists_nodes_in_order_with_inputs():
    text = draw(p.graph, "text")
    lines = text.splitlines()
    assert lines[0].startswith("pipeline p  version ")
    assert lines[1].strip() == "a"
    assert lines[2].strip() == "b  <- a"
    assert lines[3].strip() == "b_2 (b) [map]  after b"


def test_dot_has_data_and_dashed_ordering_edges():
    dot = draw(p.graph, "dot")
    assert '"a" -> "b";' in dot
    assert '"b" -> "b_2" [style=dashed];' in dot
    assert "peripheries=2" in dot
    assert dot.startswith('digraph "p" {') and dot.rstrip().endswith("}")


def test_mermaid_has_every_edge():
    mermaid = draw(p.graph, "mermaid")
    assert mermaid.splitlines()[0] == "flowchart LR"
    assert "n0 --> n1" in mermaid
    assert "n1 -.-> n2" in mermaid
    assert 'n2[["b_2 (b) [map]"]]' in mermaid
