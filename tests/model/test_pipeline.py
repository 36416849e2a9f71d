"""Pipelines trace into graphs; misuse of placeholders fails with advice."""

from __future__ import annotations

import pytest

import lockgate as lg
from lockgate.errors import (
    CycleError,
    DuplicatePipelineError,
    GraphError,
    InvalidPolicyError,
    TracingError,
)
from lockgate.model.refs import NodeRef, ParamRef


@lg.task
def ingest(day: str) -> list:
    return [day]


@lg.task
def featurize(rows: list) -> list:
    return rows


@lg.task
def train(x, lr: float = 0.1):
    return (x, lr)


def test_trace_records_nodes_edges_and_params():
    @lg.pipeline
    def nightly(day: str = "2026-11-25", lr: float = 0.1):
        rows = ingest(day)
        x = featurize(rows)
        return train(x, lr=lr)

    graph = nightly.graph
    assert list(graph.order) == ["ingest", "featurize", "train"]
    assert graph.nodes["ingest"].args == (ParamRef("day"),)
    assert graph.nodes["featurize"].args == (NodeRef("ingest"),)
    assert graph.nodes["train"].kwargs == {"lr": ParamRef("lr")}
    assert graph.upstream("train") == ("featurize",)
    assert graph.downstream("ingest") == ("featurize",)
    assert graph.output == NodeRef("train")
    assert [p.name for p in nightly.params] == ["day", "lr"]


def test_repeated_calls_get_readable_stable_ids():
    @lg.pipeline
    def p():
        a = featurize([1])
        b = featurize([2])
        c = featurize([3])
        return [a, b, c]

    assert list(p.graph.order) == ["featurize", "featurize_2", "featurize_3"]


def test_version_is_stable_and_changes_with_structure():
    def build(extra: bool):
        @lg.pipeline(name="p")
        def p(day: str = "x"):
            rows = ingest(day)
            if extra:  # plain Python bool, decided before tracing
                rows = featurize(rows)
            return rows

        return p

    assert build(False).version == build(False).version
    assert build(False).version != build(True).version
    assert len(build(False).version) == 64


def test_version_does_not_depend_on_parameter_values():
    @lg.pipeline
    def p(day: str = "a"):
        return ingest(day)

    assert p.version == p.version
    assert p.graph.nodes["ingest"].args == (ParamRef("day"),)


@pytest.mark.parametrize(
    ("body", "operation"),
    [
        (lambda rows: rows if rows else None, "control flow"),
        (lambda rows: [r for r in rows], "for loop"),
        (lambda rows: len(rows), "len()"),
        (lambda rows: bool(rows), "control flow"),
        (lambda rows: rows + 1, "arithmetic"),
        (lambda rows: rows["key"], "indexing"),
        (lambda rows: f"{rows}", "formatting"),
        (lambda rows: rows.shape, "attribute access"),
        (lambda rows: rows == [], "comparison"),
    ],
)
def test_placeholder_in_python_operations_is_refused(body, operation):
    @lg.pipeline
    def p(day: str = "x"):
        rows = ingest(day)
        return body(rows)

    with pytest.raises(TracingError) as info:
        _ = p.graph
    message = str(info.value)
    assert "node 'ingest'" in message
    assert operation in message
    assert "pipeline 'p'" in message


def test_parameter_in_control_flow_names_the_parameter():
    @lg.pipeline
    def p(day: str = "x"):
        if day:
            return ingest(day)
        return None

    with pytest.raises(TracingError, match="parameter 'day'"):
        _ = p.graph


def test_cycle_through_after_is_refused_with_the_path():
    @lg.pipeline
    def p():
        a = ingest("d")
        b = featurize(a)
        c = featurize(b)
        a.after(c)
        return c

    with pytest.raises(CycleError) as info:
        _ = p.graph
    message = str(info.value)
    assert "ingest -> featurize -> featurize_2 -> ingest" in message
    assert "after=" in message


def test_after_adds_ordering_edges_without_data():
    @lg.pipeline
    def p():
        a = ingest("d")
        b = ingest("e", after=[a])
        return b

    graph = p.graph
    assert graph.nodes["ingest_2"].after == ("ingest",)
    assert graph.nodes["ingest_2"].data_inputs == ()
    assert list(graph.order) == ["ingest", "ingest_2"]


def test_after_rejects_non_placeholders():
    @lg.pipeline
    def p():
        return ingest("d", after=["ingest"])

    with pytest.raises(TracingError, match="after= takes task outputs"):
        _ = p.graph


def test_wrong_call_signature_is_a_tracing_error():
    @lg.pipeline
    def p():
        return train(1, 2, 3)

    with pytest.raises(TracingError, match="does not match its signature"):
        _ = p.graph


def test_non_json_constant_is_refused_with_advice():
    @lg.pipeline
    def p():
        return train(object())

    with pytest.raises(TracingError, match="JSON-like"):
        _ = p.graph


def test_map_records_a_mapped_node():
    @lg.pipeline
    def p(days: list = ["a", "b"]):  # noqa: B006 - a JSON default
        rows = featurize.map(days)
        return train(rows)

    graph = p.graph
    assert graph.nodes["featurize"].mapped
    assert graph.nodes["featurize"].args == (ParamRef("days"),)
    assert graph.upstream("train") == ("featurize",)


def test_calling_a_pipeline_directly_explains_how_to_run_it():
    @lg.pipeline
    def p():
        return ingest("x")

    with pytest.raises(TracingError, match=r"lg\.run"):
        p()


def test_duplicate_pipeline_names_in_one_module(tmp_path):
    source = tmp_path / "dupes.py"
    source.write_text(
        "import lockgate as lg\n"
        "@lg.task\ndef t():\n    return 1\n"
        "@lg.pipeline(name='nightly')\ndef a():\n    return t()\n"
        "@lg.pipeline(name='nightly')\ndef b():\n    return t()\n"
    )
    import importlib.util

    spec = importlib.util.spec_from_file_location("dupes_mod", source)
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(DuplicatePipelineError) as info:
        spec.loader.exec_module(module)
    assert "nightly" in str(info.value)
    assert "lines" in str(info.value)


def test_version_is_the_same_when_one_file_is_imported_under_two_module_names(tmp_path):
    # A server whose sys.modules already holds another `pipelines` loads the
    # project's file as `pipelines_<hash>`; runs queued by a CLI that loaded it
    # as `pipelines` must still match the server's version.
    import importlib.util
    import sys

    source = tmp_path / "pipelines.py"
    source.write_text(
        "import lockgate as lg\n\n"
        "@lg.task\ndef hello(name: str) -> str:\n    return name\n\n"
        "@lg.pipeline\ndef greet(name: str = 'x'):\n    return hello(name)\n"
    )
    graphs = []
    for module_name in ("lg_version_probe_a", "lg_version_probe_b"):
        spec = importlib.util.spec_from_file_location(module_name, source)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            graphs.append(module.greet.graph)
        finally:
            sys.modules.pop(module_name, None)
    first, second = graphs
    assert first.nodes["hello"].task.target != second.nodes["hello"].task.target
    assert first.version == second.version


# Regressions found by tests/chaos/test_fuzz_pipelines.py.


def test_two_tasks_with_one_name_in_a_pipeline_are_refused():
    @lg.task(name="featurize")
    def other(rows: list) -> list:
        return rows[:1]

    @lg.pipeline
    def p(day: str = "x"):
        return other(featurize(ingest(day)))

    with pytest.raises(GraphError, match="task name 'featurize' is defined twice in pipeline 'p'"):
        _ = p.graph


def test_calling_one_task_twice_is_still_fine():
    @lg.pipeline
    def p():
        return [featurize([1]), featurize([2])]

    assert list(p.graph.order) == ["featurize", "featurize_2"]


@pytest.mark.parametrize("constant", [{1: "a"}, {(1, 2): "a"}, [{"ok": {2: "no"}}]])
def test_dict_constants_need_string_keys(constant):
    @lg.pipeline
    def p():
        return featurize(constant)

    with pytest.raises(TracingError, match=r"pipeline 'p', node 'featurize'.*JSON-like"):
        _ = p.graph


def test_str_of_a_placeholder_is_refused_not_baked_into_the_graph():
    @lg.pipeline
    def p():
        rows = ingest("x")
        return featurize(["prefix-" + str(rows)])

    with pytest.raises(TracingError, match=r"node 'ingest' in str\(\)"):
        _ = p.graph


def test_triggers_that_are_not_a_list_name_the_pipeline():
    with pytest.raises(InvalidPolicyError, match="pipeline 'p': triggers=5"):
        lg.pipeline(name="p", triggers=5)(lambda: ingest("x"))
