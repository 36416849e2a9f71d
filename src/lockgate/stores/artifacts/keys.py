"""Artifact identifiers and names: what a key may look like, checked before any I/O.

Owns the grammar of artifact ids (`lockgate://artifacts/sha256/<hex>`,
`sha256:<hex>` or a bare digest) and of future named keys
(`[a-z0-9][a-z0-9._-]{0,127}` segments joined by `/`).

Invariants:
- Validation is pure string matching against ASCII-only patterns; nothing
  here touches a filesystem, so a hostile key is rejected before any call
  that could resolve it.
- Input is never normalised (no URL-decoding, no Unicode folding, no path
  collapsing): a key is accepted exactly as written or not at all, so no
  decoding step can turn an accepted key into a traversal later.
- Blob paths are derived from a validated digest only, never from a name.
"""

from __future__ import annotations

import re

from lockgate.errors import InvalidArtifactKey
from lockgate.ports.artifacts import URI_PREFIX

__all__ = ["MAX_NAME_LENGTH", "parse_artifact_id", "validate_name"]

# `[0-9a-f]` and `[a-z0-9]` are literal ASCII ranges; there is no IGNORECASE
# flag, so look-alikes such as the Kelvin sign or fullwidth dots cannot match.
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SEGMENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")

_ID_PREFIXES = (URI_PREFIX, "sha256:")

#: Longest accepted name, in characters (segments are at most 128 each).
MAX_NAME_LENGTH = 1024

# Messages quote the key; an attacker-sized key must not make a huge message.
_MAX_QUOTED = 120


def _quote(text: object) -> str:
    shown = repr(text)
    if len(shown) > _MAX_QUOTED:
        shown = shown[: _MAX_QUOTED - 4] + "...'"
    return shown


def parse_artifact_id(text: str) -> str:
    """Return the sha256 hex digest that an artifact id names.

    Accepts `lockgate://artifacts/sha256/<hex>`, `sha256:<hex>` or a bare
    digest, where `<hex>` is exactly 64 lowercase hex digits.

    Args:
        text: the id as a user, URL or database row gave it.

    Returns:
        The 64-character lowercase hex digest.

    Raises:
        InvalidArtifactKey: `text` is anything else (checked without I/O).
    """
    if isinstance(text, str):
        candidate = text
        for prefix in _ID_PREFIXES:
            if text.startswith(prefix):
                candidate = text[len(prefix) :]
                break
        # fullmatch, not match + `$`: `$` would accept a trailing newline.
        if _HEX64.fullmatch(candidate):
            return candidate
    raise InvalidArtifactKey(
        f"{_quote(text)} is not a valid artifact key (expected {URI_PREFIX}<64 hex digits>)"
    )


def validate_name(key: str) -> str:
    """Check a named artifact key and return it unchanged.

    A name is one or more `/`-separated segments, each matching
    `[a-z0-9][a-z0-9._-]{0,127}`, at most `MAX_NAME_LENGTH` characters in
    all. Because a segment must start with a letter or digit, `.` and `..`
    can never be segments; empty segments (a leading `/`, `//`, a trailing
    `/`) are rejected too, as are backslashes, NUL, `%`, `:` and any
    non-ASCII character.

    Args:
        key: the name, e.g. `datasets/transcripts`.

    Returns:
        `key`, unchanged.

    Raises:
        InvalidArtifactKey: the key could escape the store or is malformed
            (checked without I/O).
    """
    if (
        isinstance(key, str)
        and 0 < len(key) <= MAX_NAME_LENGTH
        and all(_SEGMENT.fullmatch(segment) for segment in key.split("/"))
    ):
        return key
    raise InvalidArtifactKey(
        f"{_quote(key)} is not a valid artifact key "
        "(allowed: [a-z0-9][a-z0-9._-]{0,127} path segments)"
    )
