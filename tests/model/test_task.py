"""Tasks: options are validated at definition, versions track source, calls outside pipelines."""

from __future__ import annotations

import pytest

import lockgate as lg
from lockgate.errors import InvalidPolicyError, TracingError
from lockgate.model.task import source_version


def test_bare_decorator_keeps_function_behaviour_outside_pipelines():
    @lg.task
    def add(a: int, b: int = 1) -> int:
        return a + b

    assert isinstance(add, lg.Task)
    assert add.name == "add"
    assert add(2, b=3) == 5
    assert add.__doc__ is None and add.__name__ == "add"


def test_options_are_recorded():
    @lg.task(
        name="fit",
        retries=2,
        retry_delay="500ms",
        backoff=3,
        max_retry_delay="1m",
        retry_on=(ValueError,),
        timeout="30s",
        cache=True,
        pool="gpu",
        resources={"cpu": 2, "gpu": 1, "memory": "4GiB"},
    )
    def train(x):
        return x

    spec = train.spec
    assert spec.name == "fit"
    assert spec.retry.retries == 2 and spec.retry.max_attempts == 3
    assert spec.retry.delay == 0.5 and spec.retry.backoff == 3.0 and spec.retry.max_delay == 60
    assert spec.retry.retry_on == (ValueError,)
    assert spec.timeout == 30.0
    assert spec.cache == lg.CachePolicy()
    assert spec.pool == "gpu"
    assert spec.resources.cpu == 2 and spec.resources.gpu == 1
    assert spec.resources.memory == 4 * 2**30


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retries": True}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"retry_delay": -2}, "retry_delay"),
        ({"backoff": 0.5}, "backoff"),
        ({"retry_on": "ValueError"}, "retry_on"),
        ({"resources": {"memory": "lots"}}, "resources['memory']"),
        ({"resources": {"cpu": -1}}, "resources['cpu']"),
        ({"resources": ["cpu"]}, "resources"),
        ({"cache": "yes"}, "cache"),
        ({"pool": ""}, "pool"),
        ({"name": "not valid"}, "name"),
    ],
)
def test_invalid_policy_names_task_and_field(options, field):
    with pytest.raises(InvalidPolicyError) as info:

        @lg.task(**{"name": "train", **options})
        def train(x):
            return x

    message = str(info.value)
    assert field in message
    assert "train" in message or "not valid" in message
    assert isinstance(info.value, ValueError)


def test_reserved_parameter_name_is_refused():
    with pytest.raises(InvalidPolicyError, match="reserved"):

        @lg.task
        def step(after):
            return after


def test_version_changes_with_body_not_with_decorator_options():
    def make(retries, body):
        namespace: dict = {}
        source = f"def f(x):\n    return x {body}\n"
        exec(compile(source, "<test>", "exec"), namespace)
        return lg.task(retries=retries)(namespace["f"])

    assert make(0, "+ 1").version == make(0, "+ 1").version
    assert make(0, "+ 1").version != make(0, "+ 2").version


def test_source_version_ignores_decorators_and_follows_edits(tmp_path):
    first = tmp_path / "mod_a.py"
    first.write_text("import lockgate as lg\n@lg.task(retries=1)\ndef f(x):\n    return x\n")
    second = tmp_path / "mod_b.py"
    second.write_text("import lockgate as lg\n\n@lg.task(retries=5)\ndef f(x):\n    return x\n")
    third = tmp_path / "mod_c.py"
    third.write_text("import lockgate as lg\n@lg.task\ndef f(x):\n    return x * 2\n")
    import importlib.util

    def load(path):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.f

    a, b, c = load(first), load(second), load(third)
    assert a.version == b.version
    assert a.version != c.version
    assert a.version == source_version(a.fn)


def test_explicit_version_wins():
    @lg.task(version="v7")
    def f(x):
        return x

    assert f.version == "v7"


def test_task_called_with_placeholder_outside_pipeline_is_refused():
    @lg.task
    def produce():
        return 1

    @lg.task
    def consume(x):
        return x

    leaked = []

    @lg.pipeline
    def p():
        value = produce()
        leaked.append(value)
        return consume(value)

    _ = p.graph
    with pytest.raises(TracingError, match="outside a pipeline body"):
        consume(leaked[0])
    with pytest.raises(TracingError, match="outside a pipeline body"):
        consume([leaked[0]])


def test_map_outside_pipeline_calls_each_item():
    @lg.task
    def double(x, k=2):
        return x * k

    assert double.map([1, 2, 3], k=3) == [3, 6, 9]


def test_closure_values_are_part_of_the_version():
    def factory(k, helper):
        @lg.task(name="scale")
        def scale(x):
            return helper(x) * k

        return scale

    def ident(x):
        return x

    assert factory(2, ident).version == factory(2, ident).version
    assert factory(2, ident).version != factory(3, ident).version
    assert factory({"a": 1}, ident).version != factory({"a": 2}, ident).version
