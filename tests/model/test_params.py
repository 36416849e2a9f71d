"""Pipeline parameters: types from the signature, -p parsing, clear errors."""

from __future__ import annotations

import datetime as dt

import pytest

import lockgate as lg
from lockgate.errors import DefinitionError, ParameterError


@lg.task
def use(*values):
    return values


@lg.pipeline
def typed(
    day: str,
    lr: float = 0.1,
    epochs: int = 3,
    dry_run: bool = False,
    when: dt.date = dt.date(2026, 11, 25),
    tags: list[str] | None = None,
    limit: int | None = None,
):
    return use(day, lr, epochs, dry_run, when, tags, limit)


def test_cli_values_parse_to_annotated_types():
    values = typed.bind_cli(
        [
            "day=2026-11-24",
            "lr=0.5",
            "epochs=7",
            "dry_run=yes",
            "when=2026-01-02",
            'tags=["a","b"]',
            "limit=none",
        ]
    )
    assert values == {
        "day": "2026-11-24",
        "lr": 0.5,
        "epochs": 7,
        "dry_run": True,
        "when": dt.date(2026, 1, 2),
        "tags": ["a", "b"],
        "limit": None,
    }


def test_defaults_fill_in():
    values = typed.bind_cli(["day=x"])
    assert values["lr"] == 0.1 and values["epochs"] == 3 and values["tags"] is None


def test_unknown_parameter_suggests_the_close_name():
    with pytest.raises(ParameterError) as info:
        typed.bind_cli(["day=x", "epoch=3"])
    message = str(info.value)
    assert "no parameter 'epoch'" in message
    assert "Did you mean 'epochs'?" in message


def test_unparsable_value_names_parameter_type_and_example():
    with pytest.raises(ParameterError) as info:
        typed.bind_cli(["day=x", "lr=fast"])
    message = str(info.value)
    assert "'lr' expects float" in message and "'fast'" in message
    assert "-p lr=0.1" in message


def test_missing_required_parameter():
    with pytest.raises(ParameterError) as info:
        typed.bind_cli([])
    assert "needs parameter(s) 'day'" in str(info.value)
    assert "-p day=" in str(info.value)


def test_malformed_assignment():
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        typed.bind_cli(["day"])


def test_python_values_are_checked_and_strings_parsed():
    assert typed.bind({"day": "d", "lr": "0.2", "epochs": 2})["lr"] == 0.2
    with pytest.raises(ParameterError, match="'epochs' expects int"):
        typed.bind({"day": "d", "epochs": 2.5})
    with pytest.raises(ParameterError, match="'dry_run' expects bool"):
        typed.bind({"day": "d", "dry_run": 1})


def test_json_round_trip_restores_types():
    values = typed.bind({"day": "d"})
    stored = typed.params_to_json(values)
    assert stored["when"] == "2026-11-25"
    assert typed.params_from_json(stored) == values


def test_untyped_parameters_take_their_type_from_the_default():
    @lg.pipeline
    def p(n=3, name="x"):
        return use(n, name)

    assert p.bind_cli(["n=4", "name=y"]) == {"n": 4, "name": "y"}


def test_var_args_are_refused_at_definition():
    with pytest.raises(DefinitionError, match="ordinary named parameter"):

        @lg.pipeline
        def p(*days):
            return use(days)


def test_non_json_default_is_refused():
    with pytest.raises(DefinitionError, match="JSON-like"):

        @lg.pipeline
        def p(x=object()):  # noqa: B008
            return use(x)


# Regressions found by tests/chaos/test_fuzz_pipelines.py.


def test_a_default_that_is_not_of_the_annotated_type_fails_at_definition():
    with pytest.raises(DefinitionError, match=r"pipeline 'p'.*parameter 'n'.*not a int"):

        @lg.pipeline
        def p(n: int = "many"):
            return use(n)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**400, "NaN"])
def test_float_parameters_refuse_non_finite_and_overflowing_values(value):
    @lg.pipeline
    def p(rate: float = 0.5):
        return use(rate)

    with pytest.raises(ParameterError, match="parameter 'rate'"):
        p.bind({"rate": value})


def test_json_parameters_refuse_nan_written_as_text():
    @lg.pipeline
    def p(items: list = [1]):  # noqa: B006
        return use(items)

    with pytest.raises(ParameterError, match=r"parameter 'items'.*NaN is not JSON"):
        p.bind({"items": '{"a": NaN}'})


def test_a_parameter_name_that_is_not_a_string_is_a_parameter_error():
    @lg.pipeline
    def p(n: int = 1):
        return use(n)

    with pytest.raises(ParameterError, match="has no parameter 1"):
        p.bind({1: 2})
