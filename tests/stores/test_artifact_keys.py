"""Artifact ids and names (RELIABILITY B7): hostile keys fail before any I/O."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockgate.errors import InvalidArtifactKey
from lockgate.ports.artifacts import URI_PREFIX
from lockgate.stores.artifacts.keys import MAX_NAME_LENGTH, parse_artifact_id, validate_name

HEX = "0123456789abcdef" * 4

B7 = [
    "../../etc/passwd",
    "/etc/passwd",
    "..%2f..%2f",
    "a/../../b",
    "\\..\\..\\",
    "a\x00b",
    "file:///etc/",
    "http:///#/../../",
    "\uff0e\uff0e/",  # fullwidth full stops: look like "../"
    "a" * 5000,
    "/".join(["a" * 128] * 9),  # every segment fine, the whole too long
]


@pytest.mark.parametrize("key", B7, ids=range(len(B7)))
def test_b7_inputs_are_not_names(key: str) -> None:
    with pytest.raises(InvalidArtifactKey, match="is not a valid artifact key"):
        validate_name(key)


@pytest.mark.parametrize("key", B7, ids=range(len(B7)))
def test_b7_inputs_are_not_artifact_ids(key: str) -> None:
    with pytest.raises(InvalidArtifactKey, match="is not a valid artifact key"):
        parse_artifact_id(key)


def test_messages_quote_the_key_and_say_what_is_allowed() -> None:
    with pytest.raises(InvalidArtifactKey) as caught:
        validate_name("../../etc/passwd")
    assert str(caught.value) == (
        "'../../etc/passwd' is not a valid artifact key "
        "(allowed: [a-z0-9][a-z0-9._-]{0,127} path segments)"
    )
    with pytest.raises(InvalidArtifactKey) as caught:
        parse_artifact_id("../../etc/passwd")
    assert str(caught.value) == (
        "'../../etc/passwd' is not a valid artifact key "
        "(expected lockgate://artifacts/sha256/<64 hex digits>)"
    )


def test_huge_keys_make_short_messages() -> None:
    with pytest.raises(InvalidArtifactKey) as caught:
        validate_name("x" * 100_000)
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    "name", ["a", "datasets/transcripts", "model/support-bot/v3", "0.1_b-c", "x" * 128]
)
def test_well_formed_names_pass_unchanged(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "a//b", "a/", "A", "ab/x" + "y" * 128, "a b", "a\n", "é", "a:b", "-a", "_a"],
)
def test_malformed_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidArtifactKey):
        validate_name(name)


def test_name_length_limit_is_inclusive() -> None:
    longest = "/".join(["a" * 127] * 8)
    assert len(longest) == MAX_NAME_LENGTH - 1
    assert validate_name(longest + "b") == longest + "b"
    with pytest.raises(InvalidArtifactKey):
        validate_name(longest + "bc")


@pytest.mark.parametrize("text", [URI_PREFIX + HEX, "sha256:" + HEX, HEX])
def test_the_three_id_forms_give_the_digest(text: str) -> None:
    assert parse_artifact_id(text) == HEX


@pytest.mark.parametrize(
    "text",
    [
        HEX.upper(),
        HEX[:-1],
        HEX + "0",
        HEX + "\n",
        " " + HEX,
        "sha256:" + HEX + "/../x",
        URI_PREFIX + "../" + HEX,
        "lockgate://artifacts/sha512/" + HEX,
        "sha256:" + HEX[:-2] + "%41",
        "\uff10" + HEX[1:],  # fullwidth zero
    ],
)
def test_near_miss_ids_are_rejected(text: str) -> None:
    with pytest.raises(InvalidArtifactKey):
        parse_artifact_id(text)


def test_non_strings_are_rejected() -> None:
    for value in (None, 123, b"sha256:" + HEX.encode()):
        with pytest.raises(InvalidArtifactKey):
            parse_artifact_id(value)  # type: ignore[arg-type]
        with pytest.raises(InvalidArtifactKey):
            validate_name(value)  # type: ignore[arg-type]


tricky_text = st.text(
    alphabet=st.sampled_from(list("az09._-/%\\:\x00 \uff0e\u2024\u212a\u0430A")), max_size=24
)


@settings(max_examples=400)
@given(key=tricky_text | st.text(max_size=40))
def test_accepted_names_cannot_leave_their_directory(key: str) -> None:
    try:
        name = validate_name(key)
    except InvalidArtifactKey:
        return
    joined = posixpath.join("/store", name)
    assert posixpath.normpath(joined) == joined  # nothing to collapse: no "..", ".", "//"
    assert joined.startswith("/store/")
    assert name.isascii() and "\\" not in name and "%" not in name


@settings(max_examples=300)
@given(prefix=st.sampled_from(["", "sha256:", URI_PREFIX]), digest=st.text(max_size=70))
def test_accepted_ids_are_exactly_64_lowercase_hex(prefix: str, digest: str) -> None:
    try:
        parsed = parse_artifact_id(prefix + digest)
    except InvalidArtifactKey:
        return
    assert parsed == digest
    assert len(parsed) == 64 and set(parsed) <= set("0123456789abcdef")
