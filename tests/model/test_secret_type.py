"""`lg.Secret`: redacted when printed, stored as a reference or a marker, never hashed."""

from __future__ import annotations

import pickle

import pytest

import lockgate as lg
from lockgate.engine.cache import cache_inputs, cache_key
from lockgate.errors import (
    DefinitionError,
    ParameterError,
    SecretNotSetError,
    SecretUnavailableError,
)
from lockgate.model.secrets import MARKER, Secret, redact, revealed_values

VALUE = "hunter2-abcdef"


def test_printing_a_secret_shows_no_value():
    secret = Secret(VALUE)
    logged = "%s" % secret  # noqa: UP031 - how logging formats its arguments
    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", logged, str([secret])]
    assert all(VALUE not in text for text in shown)
    assert repr(secret) == "Secret('<redacted>')" and str(secret) == "<redacted>"
    assert secret.reveal() == VALUE


def test_an_env_reference_is_shown_and_stored_as_is_and_read_when_revealed():
    secret = Secret("env:API_KEY")
    assert repr(secret) == "Secret('env:API_KEY')" and secret.stored == "env:API_KEY"
    assert secret.reveal({"API_KEY": VALUE}) == VALUE
    with pytest.raises(SecretNotSetError, match="environment variable API_KEY"):
        secret.reveal({})


def test_a_literal_is_stored_as_the_marker_and_comes_back_unavailable():
    stored = Secret(VALUE).stored
    assert stored == MARKER
    back = Secret.from_stored(stored, owner="secret parameter 'api_key'")
    assert not back.available
    with pytest.raises(SecretUnavailableError, match="secret parameter 'api_key'"):
        back.reveal()
    assert Secret.from_stored("env:K").reveal({"K": "v"}) == "v"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (123, "takes a string"),
        ("", "is empty"),
        (MARKER, "the marker lockgate records"),
        ("env:1BAD", "not a valid reference"),
    ],
)
def test_bad_sources_are_refused(source, message):
    with pytest.raises(ParameterError, match=message):
        Secret(source)


def test_a_secret_survives_the_trip_to_a_worker():
    assert pickle.loads(pickle.dumps(Secret(VALUE))).reveal() == VALUE
    assert not pickle.loads(pickle.dumps(Secret.from_stored(MARKER))).available


def test_redacting_and_scrub_values():
    values = revealed_values([Secret(VALUE), {"k": Secret("abc")}, Secret("env:UNSET_X")])
    assert values == (VALUE,)  # too short and unset ones are left out
    assert redact(f"key={VALUE}!", values) == "key=<redacted>!"


@lg.task
def fetch(api_key: lg.Secret, limit: int) -> int:
    return limit


@lg.pipeline
def nightly(api_key: lg.Secret, limit: int = 10, backup: lg.Secret | None = None):
    return fetch(api_key, limit)


def test_parameters_typed_secret_bind_parse_and_store_without_the_value():
    assert [s.kind for s in nightly.params] == ["secret", "int", "secret"]
    bound = nightly.bind_cli([f"api_key={VALUE}"])
    assert isinstance(bound["api_key"], Secret) and bound["api_key"].reveal() == VALUE
    assert bound["backup"] is None
    assert nightly.params_to_json(bound) == {"api_key": MARKER, "limit": 10, "backup": None}
    assert nightly.bind({"api_key": "env:K"})["api_key"].stored == "env:K"


def test_cache_inputs_hold_the_stored_form_not_the_value():
    one = cache_inputs(fetch, (Secret(VALUE), 3), {})
    other = cache_inputs(fetch, (Secret("another-value"), 3), {})
    assert VALUE not in str(one) and one["args"][0] == {"$secret": MARKER}
    assert cache_key(one) == cache_key(other)
    env = cache_inputs(fetch, (Secret("env:K"), 3), {})
    assert env["args"][0] == {"$secret": "env:K"} and cache_key(env) != cache_key(one)


def test_a_secret_default_must_be_a_string():
    def bad(api_key: lg.Secret = 5):  # type: ignore[assignment]
        return None

    with pytest.raises(DefinitionError, match="the default of secret parameter 'api_key'"):
        lg.pipeline(bad)
