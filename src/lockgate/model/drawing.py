"""Draw a Graph as text, Graphviz DOT or Mermaid. Pure string building."""

from __future__ import annotations

from lockgate.model.graph import Graph

FORMATS = ("text", "dot", "mermaid")


def _label(graph: Graph, node_id: str) -> str:
    node = graph.nodes[node_id]
    suffix = " [map]" if node.mapped else ""
    task = "" if node.task.name == node_id else f" ({node.task.name})"
    return f"{node_id}{task}{suffix}"


def to_text(graph: Graph) -> str:
    """One line per node in execution order, with what it waits for."""
    lines = [f"pipeline {graph.pipeline}  version {graph.version[:12]}  ({len(graph)} nodes)"]
    for node in graph:
        parts = []
        if node.data_inputs:
            parts.append("<- " + ", ".join(node.data_inputs))
        ordering = [a for a in node.after if a not in node.data_inputs]
        if ordering:
            parts.append("after " + ", ".join(ordering))
        lines.append(f"  {_label(graph, node.id)}" + (f"  {'  '.join(parts)}" if parts else ""))
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT; ordering-only edges are dashed, map nodes are double boxes."""
    lines = [f"digraph {_quote(graph.pipeline)} {{", "  rankdir=LR;", "  node [shape=box];"]
    for node in graph:
        shape = ", peripheries=2" if node.mapped else ""
        lines.append(f"  {_quote(node.id)} [label={_quote(_label(graph, node.id))}{shape}];")
    for node in graph:
        for up in node.data_inputs:
            lines.append(f"  {_quote(up)} -> {_quote(node.id)};")
        for up in node.after:
            if up not in node.data_inputs:
                lines.append(f"  {_quote(up)} -> {_quote(node.id)} [style=dashed];")
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(graph: Graph) -> str:
    """A Mermaid flowchart; ordering-only edges are dotted."""
    ids = {node_id: f"n{i}" for i, node_id in enumerate(graph.order)}
    lines = ["flowchart LR"]
    for node in graph:
        text = _label(graph, node.id).replace('"', "'")
        shape = f'[["{text}"]]' if node.mapped else f'["{text}"]'
        lines.append(f"  {ids[node.id]}{shape}")
    for node in graph:
        for up in node.data_inputs:
            lines.append(f"  {ids[up]} --> {ids[node.id]}")
        for up in node.after:
            if up not in node.data_inputs:
                lines.append(f"  {ids[up]} -.-> {ids[node.id]}")
    return "\n".join(lines)


def draw(graph: Graph, fmt: str) -> str:
    """Draw `graph` in `fmt`, one of FORMATS."""
    return {"text": to_text, "dot": to_dot, "mermaid": to_mermaid}[fmt](graph)
