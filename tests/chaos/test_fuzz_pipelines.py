"""Fuzz: pipeline definitions through the public API (RELIABILITY.md B1-B3, B9).

Hypothesis builds random DAGs with `@lg.task`, `@lg.pipeline`, `.map`, `after=`
and `.after()` ordering edges and parameters. Valid ones must trace, validate
and plan (topological order, layout, drawings) with the node and edge counts
the generator expects. Each defective definition (a cycle through ordering
edges, a duplicate task or pipeline name, a call that does not fit the task's
signature, a constant that is not JSON, a bad parameter or default, a bad
policy or schedule option, a placeholder used as a value) must raise a
`LockgateError` whose message names the offending task, pipeline or
parameter: never TypeError, KeyError, RecursionError or AttributeError.

Refused definitions are also handed to `lg.run` against a real SQLite home
that already holds one run: at the end that run's record is unchanged and
verifies, and no refused definition created a run.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib.util
import keyword
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import lockgate as lg
from lockgate.errors import CycleError, LockgateError, TracingError
from lockgate.model.drawing import draw as draw_graph
from lockgate.model.layout import layered_layout
from lockgate.service import record

# --- tasks the generated pipelines call ----------------------------------------


@lg.task
def source(seed: int = 0) -> int:
    return seed


@lg.task
def combine(*parts: Any) -> int:
    return len(parts)


@lg.task
def each(item: Any, k: int = 0) -> Any:
    return item


@lg.task
def needs(a: int, b: int) -> int:
    return a + b


# --- valid DAGs ----------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@dataclass(frozen=True)
class NodeSpec:
    data: tuple[int, ...]  # earlier nodes whose outputs are arguments
    after: tuple[int, ...]  # earlier nodes to wait for without data
    mapped: bool
    items: str  # for a map node without data: "param" or "literal"
    literal: Any
    use_param: bool
    method_after: bool  # ordering edges through `.after()` instead of `after=`


@dataclass(frozen=True)
class DagSpec:
    nodes: tuple[NodeSpec, ...]
    returns: str  # "last", "all" or "none"

    @property
    def ids(self) -> list[str]:
        """The node ids tracing gives: the task name, then name_2, name_3..."""
        counts: dict[str, int] = {}
        ids = []
        for node in self.nodes:
            task = "each" if node.mapped else "combine"
            counts[task] = counts.get(task, 0) + 1
            ids.append(task if counts[task] == 1 else f"{task}_{counts[task]}")
        return ids

    def upstream(self, i: int) -> set[int]:
        return set(self.nodes[i].data) | set(self.nodes[i].after)


@st.composite
def dags(draw: st.DrawFn, min_nodes: int = 1) -> DagSpec:
    n = draw(st.integers(min_nodes, 9))
    nodes = []
    for i in range(n):
        earlier = st.integers(0, i - 1) if i else st.nothing()
        mapped = bool(i) and draw(st.booleans()) if i else draw(st.booleans())
        if mapped:
            data = tuple(draw(st.lists(earlier, max_size=1))) if i else ()
        else:
            data = tuple(draw(st.lists(earlier, max_size=3, unique=True))) if i else ()
        after = tuple(draw(st.lists(earlier, max_size=2, unique=True))) if i else ()
        nodes.append(
            NodeSpec(
                data=data,
                after=after,
                mapped=mapped,
                items=draw(st.sampled_from(["param", "literal"])),
                literal=draw(JSON),
                use_param=draw(st.booleans()),
                method_after=draw(st.booleans()),
            )
        )
    return DagSpec(tuple(nodes), draw(st.sampled_from(["last", "all", "none"])))


def body_for(spec: DagSpec, tail: Callable[[list[Any]], Any] | None = None) -> Callable[..., Any]:
    """A pipeline body that makes the calls `spec` describes; `tail` may add a defect."""

    def body(seed: int = 1, items: list = [1, 2]):  # noqa: B006 - a JSON default
        outs: list[Any] = []
        for node in spec.nodes:
            waits = [outs[j] for j in node.after]
            edge = {} if node.method_after else {"after": waits}
            if node.mapped:
                if node.data:
                    over = outs[node.data[0]]
                else:
                    over = items if node.items == "param" else [1, 2, 3]
                out = each.map(over, k=len(outs), **edge)
            else:
                args = [outs[j] for j in node.data]
                if node.use_param:
                    args.append(seed)
                out = combine(*args, node.literal, **edge)
            if node.method_after and waits:
                out.after(*waits)
            outs.append(out)
        if tail is not None:
            extra = tail(outs)
            if extra is not None:
                return extra
        if spec.returns == "last":
            return outs[-1]
        return outs if spec.returns == "all" else None

    return body


def check_valid(spec: DagSpec, name: str) -> list[str]:
    """Trace, validate and plan a valid DAG; return what was wrong."""
    problems: list[str] = []
    pipeline = lg.pipeline(name=name)(body_for(spec))
    graph = pipeline.graph
    ids = spec.ids
    if len(graph) != len(spec.nodes) or set(graph.nodes) != set(ids):
        problems.append(f"{name}: nodes {sorted(graph.nodes)} != expected {ids}")
        return problems
    edges = sum(len(graph.upstream(n)) for n in graph.nodes)
    expected_edges = sum(len(spec.upstream(i)) for i in range(len(ids)))
    if edges != expected_edges:
        problems.append(f"{name}: {edges} edges, expected {expected_edges}")
    for i, node_id in enumerate(ids):
        want = {ids[j] for j in spec.upstream(i)}
        if set(graph.upstream(node_id)) != want:
            problems.append(f"{name}: {node_id} waits for {graph.upstream(node_id)}, not {want}")
        if graph.nodes[node_id].mapped != spec.nodes[i].mapped:
            problems.append(f"{name}: {node_id} mapped={graph.nodes[node_id].mapped}")
    position = {node_id: i for i, node_id in enumerate(graph.order)}
    if sorted(graph.order) != sorted(ids):
        problems.append(f"{name}: order {graph.order} is not a permutation of the nodes")
    elif any(position[u] >= position[n] for n in ids for u in graph.upstream(n)):
        problems.append(f"{name}: order {graph.order} runs a node before its upstream")
    roots = {ids[i] for i in range(len(ids)) if not spec.upstream(i)}
    if set(graph.roots) != roots:
        problems.append(f"{name}: roots {graph.roots} != {sorted(roots)}")
    layout = layered_layout(list(graph.order), [(u, n) for n in ids for u in graph.upstream(n)])
    if set(layout.boxes) != set(ids):
        problems.append(f"{name}: the layout places {sorted(layout.boxes)}")
    for fmt in ("text", "dot", "mermaid"):
        drawn = draw_graph(graph, fmt)
        if any(node_id not in drawn for node_id in ids):
            problems.append(f"{name}: the {fmt} drawing misses a node")
    again = lg.pipeline(name=name)(body_for(spec))
    if again.version != pipeline.version or len(pipeline.version) != 64:
        problems.append(f"{name}: the version is not a stable sha256 ({pipeline.version})")
    bound = pipeline.bind({})
    if pipeline.params_to_json(bound) != {"seed": 1, "items": [1, 2]}:
        problems.append(f"{name}: defaults bound as {bound}")
    return problems


@pytest.mark.scenario("fuzz: pipeline definitions")
def test_valid_random_dags_trace_validate_and_plan(chaos):
    @settings(
        max_examples=chaos.size(120, 2000),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @seed(chaos.seed)
    @given(spec=dags(), n=st.integers(0, 10**6))
    def prop(spec: DagSpec, n: int) -> None:
        try:
            problems = check_valid(spec, f"dag-{n}")
        except Exception as exc:  # a valid definition never raises
            problems = [f"dag-{n} {spec}: {type(exc).__name__}: {exc}"]
        chaos.record(problems)

    prop()
    chaos.check()


# --- defects -------------------------------------------------------------------


@dataclass
class Defect:
    """A broken definition: `define()` returns (pipeline, params) or raises."""

    kind: str
    define: Callable[[], tuple[lg.Pipeline, dict[str, Any]]]
    names: tuple[str, ...]  # what the message must mention
    error: type[LockgateError] = LockgateError


_IDENT = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in ("after", "lg")
)


def _plain(name: str, spec: DagSpec, tail: Callable[[list[Any]], Any]) -> Callable[[], Any]:
    return lambda: (lg.pipeline(name=name)(body_for(spec, tail)), {})


def cycle(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    spec = draw(dags(min_nodes=2))
    ids = spec.ids
    j = draw(st.integers(1, len(ids) - 1))
    i = draw(st.integers(0, j - 1))
    # make j depend on i, then make i wait for j: i -> ... -> j -> i
    nodes = list(spec.nodes)
    node = nodes[j]
    if node.mapped:
        nodes[j] = NodeSpec(node.data, (*node.after, i), *_rest(node))
    else:
        nodes[j] = NodeSpec(
            (*node.data, i) if i not in node.data else node.data, node.after, *_rest(node)
        )
    spec = DagSpec(tuple(nodes), spec.returns)

    def tail(outs: list[Any]) -> None:
        outs[i].after(outs[j])

    return Defect("cycle", _plain(name, spec, tail), (name, ids[i], ids[j]), CycleError)


def _rest(node: NodeSpec) -> tuple[Any, ...]:
    return (node.mapped, node.items, node.literal, node.use_param, node.method_after)


def self_wait(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    spec = draw(dags())
    i = draw(st.integers(0, len(spec.nodes) - 1))

    def tail(outs: list[Any]) -> None:
        outs[i].after(outs[i])

    return Defect("self-wait", _plain(name, spec, tail), (name, spec.ids[i]), TracingError)


def duplicate_task(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    spec = draw(dags())
    clash = draw(st.sampled_from(["combine", "each"]))

    def other(*parts: Any) -> int:  # not the task the spec calls, but the same name
        return -1

    def tail(outs: list[Any]) -> None:
        # the spec may call only the other task: call the original first
        original = combine(outs[-1]) if clash == "combine" else each(outs[-1])
        lg.task(name=clash)(other)(original)

    return Defect("duplicate task name", _plain(name, spec, tail), (name, clash))


def duplicate_pipeline(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    tmp = variant
    first, second = draw(st.lists(_IDENT, min_size=2, max_size=2, unique=True))
    source_text = (
        "import lockgate as lg\n\n"
        "@lg.task\ndef t():\n    return 1\n\n"
        f"@lg.pipeline(name={name!r})\ndef {first}():\n    return t()\n\n"
        f"@lg.pipeline(name={name!r})\ndef {second}():\n    return t()\n"
    )

    def define() -> Any:
        path = tmp / f"{name.replace('-', '_')}.py"
        path.write_text(source_text)
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        return getattr(module, second), {}

    return Defect("duplicate pipeline name", define, (name,))


_BAD_CALLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("missing argument", lambda out: needs(out)),
    ("extra argument", lambda out: needs(out, 1, 2)),
    ("unknown keyword", lambda out: needs(out, 1, zz=3)),
    ("argument given twice", lambda out: needs(out, a=2)),
    ("no arguments", lambda out: needs()),
    ("map over a number", lambda out: needs.map(5, b=out)),
    ("map over a dict", lambda out: needs.map({"a": 1}, b=out)),
    ("map with an unknown keyword", lambda out: each.map([1], zz=out)),
    ("after= a constant", lambda out: source(1, after=[3])),
    ("after= a parameter", lambda out: None),  # filled in below: needs the param placeholder
]


def bad_call(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    spec = draw(dags())
    label, call = variant
    task = (
        "source"
        if "after=" in label
        else ("each" if "unknown keyword" in label and "map" in label else "needs")
    )

    def tail(outs: list[Any]) -> None:
        call(outs[-1])

    if label == "after= a parameter":

        def body(seed: int = 1) -> Any:
            return source(1, after=[seed])

        return Defect(label, lambda: (lg.pipeline(name=name)(body), {}), (name, "source"))
    return Defect(label, _plain(name, spec, tail), (name, task), TracingError)


def _generator() -> Any:
    return (i for i in range(3))


_NOT_JSON: list[Callable[[], Any]] = [
    object,
    lambda: {1, 2},
    lambda: b"bytes",
    lambda: float("nan"),
    lambda: float("inf"),
    lambda: {1: "int key"},
    lambda: {(1, 2): "tuple key"},
    _generator,
    lambda: lambda: 1,
    lambda: dt.date(2026, 1, 1),
    lambda: decimal.Decimal("1.5"),
    lambda: 1j,
    lambda: Path("/tmp"),
    lambda: [1, {"deep": [object()]}],
    lambda: combine,  # a task as a constant
]


def not_json(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    spec = draw(dags())
    make = variant
    as_keyword = draw(st.booleans())

    def tail(outs: list[Any]) -> None:
        value = make()
        if as_keyword:
            each(outs[-1], k=value)
        else:
            combine(outs[-1], value)

    node = "each" if as_keyword else "combine"
    return Defect("non-JSON constant", _plain(name, spec, tail), (name, node), TracingError)


def bad_return(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    spec = draw(dags())
    make = variant
    return Defect(
        "non-JSON return value", _plain(name, spec, lambda outs: [outs[-1], make()]), (name,)
    )


_MISUSE: list[tuple[str, Callable[[Any], Any]]] = [
    ("if", lambda out: 1 if out else 0),
    ("len", len),
    ("iterate", list),
    ("add", lambda out: out + 1),
    ("compare", lambda out: out == 1),
    ("index", lambda out: out["key"]),
    ("attribute", lambda out: out.shape),
    ("int", int),
    ("float", float),
    ("format", lambda out: f"{out}"),
    ("str", lambda out: "prefix-" + str(out)),
    ("in", lambda out: 1 in out),
    ("range", lambda out: range(out)),
]


def misuse(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    spec = draw(dags())
    label, use = variant
    i = draw(st.integers(0, len(spec.nodes) - 1))

    def tail(outs: list[Any]) -> None:
        combine(use(outs[i]))

    return Defect(
        f"placeholder used in {label}", _plain(name, spec, tail), (name, spec.ids[i]), TracingError
    )


_NOT_JSON_DEFAULTS: list[Callable[[], Any]] = [
    object,
    lambda: float("nan"),
    lambda: b"x",
    lambda: {1, 2},
    lambda: [1, object()],
    lambda: {"k": float("inf")},
    lambda: Path("/tmp"),
]

# (annotation source, default) pairs that cannot both hold: the default does not parse
# as the annotated type.
_MISMATCHED: list[tuple[str, Any]] = [
    ("int", "abc"),
    ("int", 1.5),
    ("int", [1]),
    ("float", "nan"),
    ("float", "fast"),
    ("bool", "perhaps"),
    ("bool", 3),
    ("dt.date", "2026-13-01"),
    ("dt.date", 20260101),
    ("dt.datetime", "yesterday"),
    ("list", "[1, 2"),
    ("str", 5),
]


def bad_parameter(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    param = draw(_IDENT)
    style = variant
    namespace: dict[str, Any] = {"combine": combine, "dt": dt}
    if style == "default":
        namespace["DEFAULT"] = draw(st.sampled_from(_NOT_JSON_DEFAULTS))()
        signature = f"{param}=DEFAULT"
    elif style == "mismatch":
        annotation, namespace["DEFAULT"] = draw(st.sampled_from(_MISMATCHED))
        signature = f"{param}: {annotation} = DEFAULT"
    elif style == "varargs":
        signature = f"*{param}"
    elif style == "varkw":
        signature = f"**{param}"
    else:
        signature = f"{param}, /"
    exec(f"def body({signature}):\n    return combine(1)\n", namespace)

    def define() -> Any:
        return lg.pipeline(name=name)(namespace["body"]), {}

    return Defect(f"bad parameter ({style})", define, (name, param))


# Run-time parameter values that do not fit: refused by lg.run before anything is stored.
_BAD_VALUES: list[tuple[str, dict[str, Any]]] = [
    ("unknown name", {"sed": 1}),
    ("non-string name", {1: 2}),
    ("wrong type", {"seed": "many"}),
    ("bool for int", {"seed": True}),
    ("float for int", {"seed": 1.5}),
    ("None", {"seed": None}),
    ("not JSON", {"items": {1, 2}}),
    ("NaN in a list", {"items": [float("nan")]}),
    ("huge float", {"rate": 10**400}),
    ("NaN float", {"rate": float("nan")}),
    ("infinite float", {"rate": float("inf")}),
    ("NaN from text", {"items": '{"a": NaN}'}),
    ("bad date", {"day": "2026-02-30"}),
]


def bad_values(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    label, params = variant

    def body(
        seed: int = 1,
        items: list = [1],  # noqa: B006 - a JSON default
        rate: float = 0.5,
        day: dt.date = dt.date(2026, 1, 1),
    ) -> Any:
        return combine(seed, items, rate, day)

    named = [str(key) for key in params]
    return Defect(
        f"bad value ({label})", lambda: (lg.pipeline(name=name)(body), params), (name, *named)
    )


_BAD_POLICIES: list[tuple[str, Any]] = [
    ("retries", -1),
    ("retries", 1.5),
    ("retries", True),
    ("retries", "3"),
    ("timeout", 0),
    ("timeout", -1),
    ("timeout", "soon"),
    ("timeout", float("nan")),
    ("timeout", True),
    ("retry_delay", -1),
    ("retry_delay", "later"),
    ("backoff", 0.5),
    ("backoff", float("nan")),
    ("max_retry_delay", "x"),
    ("retry_on", int),
    ("retry_on", "ValueError"),
    ("retry_on", ()),
    ("cache", "yes"),
    ("cache", 1),
    ("cache", lg.CachePolicy(expire=0)),
    ("cache", lg.CachePolicy(expire=float("nan"))),
    ("pool", ""),
    ("pool", 3),
    ("version", ""),
    ("version", 3),
    ("resources", {"memory": "lots"}),
    ("resources", {"memory": -1}),
    ("resources", {"memory": 0}),
    ("resources", {"memory": "1.5 parsecs"}),
    ("resources", {"cpu": -1}),
    ("resources", {"gpu": "x"}),
    ("resources", {"cpu": float("nan")}),
    ("resources", {"tpu": True}),
    ("resources", {"tpu": "two"}),
    ("resources", {"": 1}),
    ("resources", {1: 1}),
    ("resources", "cpu=2"),
    ("resources", [("cpu", 1)]),
    ("on_success", "notify"),
    ("on_failure", 3),
    ("on_retry", [None]),
]


def bad_policy(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    option, value = variant
    task_name = draw(_IDENT)

    def define() -> Any:
        def fn(x: int = 0) -> int:
            return x

        bad = lg.task(name=task_name, **{option: value})(fn)
        return lg.pipeline(name=name)(lambda: bad()), {}

    return Defect(f"bad policy {option}={value!r}", define, (task_name, option))


_BAD_TASK_NAMES = ["1bad", "", "a-b", "with space", 3, None.__class__, "é€"]


def bad_task_name(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    value = variant

    def define() -> Any:
        lg.task(name=value)(lambda: 1)
        raise AssertionError("unreachable")

    return Defect("bad task name", define, (repr(value),))


_BAD_PIPELINE_OPTIONS: list[tuple[str, Any]] = [
    ("schedule", "61 * * * *"),
    ("schedule", "* * * *"),
    ("schedule", "*/0 * * * *"),
    ("schedule", "0 0 30 2 *"),
    ("schedule", "@sometimes"),
    ("schedule", ""),
    ("schedule", 5),
    ("timezone", "Mars/Olympus"),
    ("timezone", "Europe"),
    ("timezone", 5),
    ("catchup", "yes"),
    ("max_catchup", 0),
    ("max_catchup", True),
    ("max_active_runs", 0),
    ("max_active_runs", -1),
    ("max_active_runs", 1.5),
    ("max_input_age", "soon"),
    ("max_input_age", -1),
    ("sla", 0),
    ("sla", "soon"),
    ("on_stale_input", "ignore"),
    ("triggers", ["dataset:x"]),
    ("triggers", 5),
    ("triggers", "dataset:x"),
    ("on_success", "page me"),
    ("on_gate_failed", 3),
]


def bad_pipeline_option(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    option, value = variant
    options: dict[str, Any] = {option: value}
    if option in ("timezone", "catchup", "max_catchup"):
        options["schedule"] = "0 2 * * *"

    def define() -> Any:
        return lg.pipeline(name=name, **options)(lambda: combine(1)), {}

    return Defect(f"bad pipeline option {option}={value!r}", define, (name, option))


def bad_pipeline_name(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    value = variant
    return Defect(
        "bad pipeline name",
        lambda: (lg.pipeline(name=value)(lambda: combine(1)), {}),
        (repr(value),),
    )


def nested_pipeline(draw: st.DrawFn, name: str, variant: Any) -> Defect:
    inner = lg.pipeline(name=f"{name}-inner")(lambda: combine(1))
    spec = draw(dags())
    return Defect(
        "pipeline called in a body", _plain(name, spec, lambda outs: inner()), (f"{name}-inner",)
    )


_BAD_PIPELINE_NAMES = ["", "1st", "with space", "a/b", 3, "x\x00", "_x"]


def variants(tmp: Path) -> list[tuple[Callable[..., Defect], Any]]:
    """Every (defect maker, variant) pair; the random parts are drawn per example."""
    found: list[tuple[Callable[..., Defect], Any]] = [
        (cycle, None),
        (self_wait, None),
        (duplicate_task, None),
        (nested_pipeline, None),
        (duplicate_pipeline, tmp),
    ]
    found += [(bad_call, v) for v in _BAD_CALLS]
    found += [(not_json, v) for v in _NOT_JSON]
    found += [(bad_return, v) for v in _NOT_JSON]
    found += [(misuse, v) for v in _MISUSE]
    found += [(bad_parameter, v) for v in ("default", "mismatch", "varargs", "varkw", "positional")]
    found += [(bad_values, v) for v in _BAD_VALUES]
    found += [(bad_policy, v) for v in _BAD_POLICIES]
    found += [(bad_task_name, v) for v in _BAD_TASK_NAMES]
    found += [(bad_pipeline_option, v) for v in _BAD_PIPELINE_OPTIONS]
    found += [(bad_pipeline_name, v) for v in _BAD_PIPELINE_NAMES]
    return found


@st.composite
def defects(draw: st.DrawFn, pairs: list[tuple[Callable[..., Defect], Any]]) -> Defect:
    maker, variant = draw(st.sampled_from(pairs))
    return maker(draw, f"bad-{draw(st.integers(0, 10**6))}", variant)


def judge(defect: Defect, exc: BaseException) -> list[str]:
    """The property: a lockgate error of the expected family naming the object."""
    message = str(exc)
    if not isinstance(exc, LockgateError):
        return [f"{defect.kind}: {type(exc).__name__} escaped: {message[:300]}"]
    if not isinstance(exc, defect.error):
        return [
            f"{defect.kind}: {type(exc).__name__}, not {defect.error.__name__}: {message[:300]}"
        ]
    missing = [n for n in defect.names if n not in message]
    if missing:
        return [f"{defect.kind}: {type(exc).__name__} does not name {missing}: {message[:300]}"]
    return []


@pytest.mark.scenario("fuzz: pipeline definitions")
def test_defective_definitions_are_refused_naming_the_object_and_lose_nothing(
    chaos, workspace, tmp_path
):
    # A real run first: whatever the fuzzer feeds lg.run later must leave it alone.
    @lg.pipeline(name="fuzz-baseline")
    def baseline(seed: int = 2):
        first = source(seed)
        done = combine(first, "x")
        return each.map([1, 2], after=[done])

    first = lg.run(baseline, executor="inline", workspace=workspace).raise_for_status()
    before = record.build(workspace, first.run_id)
    assert record.verify(workspace, first.run_id)["ok"]
    runs_before = len(workspace.metadata.list_runs(limit=10_000))
    pairs = variants(tmp_path)

    def attempt(defect: Defect) -> None:
        try:
            pipeline, params = defect.define()
        except Exception as exc:
            chaos.record(judge(defect, exc))
            return
        try:
            lg.run(pipeline, params, executor="inline", workspace=workspace)
        except Exception as exc:
            chaos.record(judge(defect, exc))
            return
        chaos.record([f"{defect.kind}: lg.run accepted the definition {defect.names}"])

    # Every listed defect at least once (random DAG around it), then random picks.
    for pair in pairs:
        sweep = settings(max_examples=chaos.size(1, 5), deadline=None, database=None)
        sweep(seed(chaos.seed)(given(defects([pair]))(attempt)))()
    fuzz = settings(
        max_examples=chaos.size(100, 2000),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    fuzz(seed(chaos.seed)(given(defects(pairs))(attempt)))()
    after = record.build(workspace, first.run_id)
    check = record.verify(workspace, first.run_id)
    runs_after = len(workspace.metadata.list_runs(limit=10_000))
    problems = []
    if after != before:
        problems.append("the first run's record changed while bad definitions were refused")
    if not check["ok"]:
        problems.append(f"the first run's record no longer verifies: {check['problems']}")
    if runs_after != runs_before:
        problems.append(f"refused definitions created {runs_after - runs_before} run(s)")
    chaos.record(problems, verified=1 if check["ok"] else 0)
    chaos.check()
