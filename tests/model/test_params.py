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
