"""Named versions: datasets, models and prompts that are versioned by content.

A task returns `Dataset("transcripts", rows)` (or `Model`, `Prompt`) to store
its value as the next version of that name; the same content returns the
existing version, so retries and re-runs never create duplicates. A pipeline
consumes a version with `Dataset.ref("transcripts")` (the latest, resolved
once when the run is created and recorded with it) or `version=5`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from lockgate.errors import DefinitionError

KINDS = ("dataset", "model", "prompt")
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")


def check_name(kind: str, name: object) -> str:
    """Validate a version name (`transcripts`, `support-bot`).

    Raises:
        DefinitionError: not lowercase letters, digits, '.', '_' or '-' (max 128).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise DefinitionError(
            f"{kind} name {name!r} is invalid: use lowercase letters, digits, '.', '_' and "
            "'-', starting with a letter or digit, at most 128 characters (e.g. 'support-bot')"
        )
    return name


@dataclass(frozen=True, slots=True)
class VersionRef:
    """A named version a pipeline consumes: `kind:name@version` (latest when None)."""

    kind: str
    name: str
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" + (f"@{self.version}" if self.version else "")


@dataclass(frozen=True)
class Named:
    """A task output to store as a new version of a named dataset, model or prompt."""

    kind: ClassVar[str] = ""
    name: str
    value: Any
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.kind, self.name)
        if not isinstance(self.metadata, dict):
            raise DefinitionError(f"{self.kind} {self.name!r}: metadata must be a dict")

    @classmethod
    def ref(cls, name: str, version: int | None = None) -> VersionRef:
        """Consume version `version` (default: the latest when the run starts)."""
        check_name(cls.kind, name)
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, int) or version < 1
        ):
            raise DefinitionError(
                f"{cls.kind} {name!r}: version must be a positive int, got {version!r}"
            )
        return VersionRef(cls.kind, name, version)


@dataclass(frozen=True)
class Dataset(Named):
    """A dataset version: `return lg.Dataset("transcripts", rows)`."""

    kind: ClassVar[str] = "dataset"


@dataclass(frozen=True)
class Model(Named):
    """A model version: `return lg.Model("support-bot", estimator)`."""

    kind: ClassVar[str] = "model"


@dataclass(frozen=True)
class Prompt(Named):
    """A prompt version: `return lg.Prompt("answer", text)`."""

    kind: ClassVar[str] = "prompt"

    def __post_init__(self) -> None:
        Named.__post_init__(self)
        if not isinstance(self.value, str):
            raise DefinitionError(f"prompt {self.name!r}: the value must be the prompt text (str)")


def parse_version_ref(text: str) -> VersionRef:
    """Parse `model:support-bot@3` or `dataset:transcripts` (latest).

    Raises:
        DefinitionError: not of that form.
    """
    kind, sep, rest = text.partition(":")
    name, at, number = rest.partition("@")
    if not sep or kind not in KINDS or (at and not number.isdigit()):
        raise DefinitionError(
            f"{text!r} is not a version reference; expected KIND:NAME[@VERSION] with KIND one "
            "of dataset, model, prompt (e.g. model:support-bot@3)"
        )
    return VersionRef(kind, check_name(kind, name), int(number) if at else None)
