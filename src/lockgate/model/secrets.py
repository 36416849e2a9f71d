"""Secrets: values lockgate passes to the code that needs them and never stores or prints.

A `Secret` holds its *source*: the value itself, or `env:VAR`, a reference
read from the environment of the process that calls `reveal()`. Its `repr`
and `str` show the reference or `<redacted>`, never a literal value, so an
accidental print, log line or f-string does not leak it.

What lockgate records for a secret is `Secret.stored`: the `env:VAR`
reference as given, or the marker `<secret>` for a literal. No digest of the
value is stored either: secrets are often short enough that a hash is a
dictionary lookup away from the value. A secret rebuilt from its stored form
(`Secret.from_stored`) is *unavailable* when it was a literal; revealing it
raises `SecretUnavailableError`.

Used for `lg.Secret` pipeline parameters (`model/params.py`) and for the
secrets of `[[alerts]]` rules.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from lockgate.errors import ParameterError, SecretNotSetError, SecretUnavailableError

#: What lockgate records in place of a secret given as a literal value.
MARKER = "<secret>"
#: What repr/str, error texts and scrubbed output show in place of a literal.
REDACTED = "<redacted>"
_ENV = "env:"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Secret:
    """A secret value: a literal, or `env:VAR` read when revealed. Never printed.

    As a pipeline parameter type (`def nightly(api_key: lg.Secret)`), a run
    takes the value itself or `env:VAR`; tasks receive a `Secret` and call
    `reveal()` where the value is needed:

        @lg.task
        def fetch(api_key: lg.Secret) -> list:
            return client(token=api_key.reveal()).get()

    Attributes:
        owner: what the secret belongs to, for error messages (such as
            "secret parameter 'api_key' of pipeline 'nightly'").
    """

    __slots__ = ("_source", "owner")

    def __init__(self, source: str, *, owner: str = "a secret") -> None:
        """Wrap `source`: the value itself, or `env:VAR`.

        Raises:
            ParameterError: `source` is not a string, or `env:` names no valid variable.
        """
        if not isinstance(source, str):
            raise ParameterError(  # the value itself stays out of the message
                f"{owner} takes a string (the value itself, or env:VAR), "
                f"got {type(source).__name__}"
            )
        if not source or source == MARKER:
            what = f"{MARKER!r}, the marker lockgate records in its place" if source else "empty"
            raise ParameterError(
                f"{owner} is {what}; pass the value itself, or env:VAR to read it from "
                "the environment where it is used"
            )
        if source.startswith(_ENV) and not _ENV_NAME.fullmatch(source[len(_ENV) :]):
            raise ParameterError(
                f"{owner}: {source!r} is not a valid reference; write env:VARIABLE_NAME "
                "(letters, digits and '_', not starting with a digit)"
            )
        self._source = source
        self.owner = owner

    @classmethod
    def from_stored(cls, stored: str, *, owner: str = "a secret") -> Secret:
        """The secret as lockgate recorded it: an `env:VAR` reference, or unavailable."""
        secret = cls.__new__(cls)
        secret._source = stored if stored.startswith(_ENV) else MARKER
        secret.owner = owner
        return secret

    @property
    def reference(self) -> str | None:
        """`env:VAR` when the secret is read from the environment, else None."""
        return self._source if self._source.startswith(_ENV) else None

    @property
    def stored(self) -> str:
        """What lockgate records: the `env:VAR` reference, or `<secret>` for a literal."""
        return self.reference or MARKER

    @property
    def available(self) -> bool:
        """False for a literal secret rebuilt from its stored marker: its value is gone."""
        return self._source != MARKER

    def reveal(self, env: Mapping[str, str] | None = None) -> str:
        """The secret's value: the literal, or the variable read from `env` (default: os.environ).

        Raises:
            SecretNotSetError: an `env:VAR` secret whose variable is unset or empty.
            SecretUnavailableError: a literal that lockgate did not keep (a resumed run).
        """
        if not self.available:
            raise SecretUnavailableError(
                f"the value of {self.owner} was given as a literal, which lockgate never "
                "stores; pass it again, or start runs with an env:VAR reference"
            )
        reference = self.reference
        if reference is None:
            return self._source
        name = reference[len(_ENV) :]
        value = (os.environ if env is None else env).get(name)
        if not value:
            raise SecretNotSetError(
                f"environment variable {name} (named by {self.owner}) is not set or empty "
                f"in this process (pid {os.getpid()}); set it in the environment of the "
                "process that reads it"
            )
        return value

    def __repr__(self) -> str:
        return f"Secret({self.__str__()!r})"

    def __str__(self) -> str:
        return self.reference or REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._source == self._source

    def __hash__(self) -> int:
        return hash((Secret, self._source))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled only to reach a worker over a private pipe (or Ray's object
        # store): the value must survive that trip, or the task cannot use it.
        return (_rebuild, (self._source, self.owner))


def _rebuild(source: str, owner: str) -> Secret:
    if source == MARKER:
        return Secret.from_stored(source, owner=owner)
    return Secret(source, owner=owner)


def secrets_in(value: Any) -> Iterator[Secret]:
    """Every `Secret` in invocation arguments or a task's output (lists, tuples, dicts, sets)."""
    if isinstance(value, Secret):
        yield value
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from secrets_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from secrets_in(key)
            yield from secrets_in(item)


#: Shorter values are not scrubbed from output: replacing every "ab" in a log
#: would mangle it, and a value that short protects nothing.
MIN_SCRUBBED = 4


def revealed_values(value: Any) -> tuple[str, ...]:
    """The values of the secrets in `value` that can be revealed here, for scrubbing.

    Secrets that cannot be revealed (unset variable, unavailable literal) are
    left out, as are values shorter than `MIN_SCRUBBED`; longest first, so a
    value that contains another is replaced whole.
    """
    found = set()
    for secret in secrets_in(value):
        try:
            text = secret.reveal()
        except (SecretNotSetError, SecretUnavailableError):
            continue
        if len(text) >= MIN_SCRUBBED:
            found.add(text)
    return tuple(sorted(found, key=len, reverse=True))


def redact(text: str, values: tuple[str, ...]) -> str:
    """`text` with every one of `values` replaced by `<redacted>`."""
    for value in values:
        text = text.replace(value, REDACTED)
    return text
